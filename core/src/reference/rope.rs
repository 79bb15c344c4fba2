use super::attention::{HeadLayout, Part};

/// (cos, sin) of θ = pos · base^(−2c/head_dim), each (max_seq, head_dim/2).
pub fn angle_table(max_seq: usize, head_dim: usize, base: f64) -> (Vec<f64>, Vec<f64>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(max_seq * half);
    let mut sin = Vec::with_capacity(max_seq * half);
    for pos in 0..max_seq {
        for c in 0..half {
            let theta = pos as f64 * base.powf(-2.0 * c as f64 / head_dim as f64);
            cos.push(theta.cos());
            sin.push(theta.sin());
        }
    }
    (cos, sin)
}

/// Rotates q and k of heads `heads` of a (batch, seq, 3d) buffer by `direction`·θ.
pub fn rotate(
    qkv: &[f64],
    batch: usize,
    l: HeadLayout,
    heads: std::ops::Range<usize>,
    base: f64,
    direction: f64,
) -> Vec<f64> {
    let half = l.head_dim / 2;
    let (cos, sin) = angle_table(l.seq, l.head_dim, base);
    let mut out = qkv.to_vec();
    for b in 0..batch {
        for i in 0..l.seq {
            for h in heads.clone() {
                for part in [Part::Q, Part::K] {
                    for c in 0..half {
                        let (a, z) = (l.qkv(part, b, i, h, c), l.qkv(part, b, i, h, c + half));
                        let (cs, sn) = (cos[i * half + c], direction * sin[i * half + c]);
                        out[a] = qkv[a] * cs - qkv[z] * sn;
                        out[z] = qkv[z] * cs + qkv[a] * sn;
                    }
                }
            }
        }
    }
    out
}
