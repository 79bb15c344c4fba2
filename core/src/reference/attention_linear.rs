use std::ops::Range;

use super::attention::{HeadLayout, Part};

fn phi(x: f64) -> f64 {
    if x > 0.0 { x + 1.0 } else { x.exp() }
}

fn phi_grad(x: f64) -> f64 {
    if x > 0.0 { 1.0 } else { x.exp() }
}

/// Linear attention of heads `heads`; other heads' columns of the result stay 0.
pub fn forward(
    qkv: &[f64],
    batch: usize,
    l: HeadLayout,
    heads: Range<usize>,
    eps: f64,
) -> Vec<f64> {
    let (n, dh) = (l.seq, l.head_dim);
    let mut out = vec![0.0; batch * n * l.d];
    for b in 0..batch {
        for h in heads.clone() {
            let (q, k, v) = (
                l.head_matrix(qkv, Part::Q, b, h),
                l.head_matrix(qkv, Part::K, b, h),
                l.head_matrix(qkv, Part::V, b, h),
            );
            let mut s = vec![0.0; dh * dh];
            let mut z = vec![0.0; dh];
            for j in 0..n {
                for a in 0..dh {
                    z[a] += phi(k[j * dh + a]);
                    for e in 0..dh {
                        s[a * dh + e] += phi(k[j * dh + a]) * v[j * dh + e];
                    }
                }
            }
            for i in 0..n {
                let fq: Vec<f64> = (0..dh).map(|a| phi(q[i * dh + a])).collect();
                let den = fq.iter().zip(&z).map(|(x, y)| x * y).sum::<f64>() + eps;
                for e in 0..dh {
                    out[l.out(b, i, h, e)] =
                        (0..dh).map(|a| fq[a] * s[a * dh + e]).sum::<f64>() / den;
                }
            }
        }
    }
    out
}

/// dqkv of [`forward`] for the handled heads (other columns 0).
pub fn backward(
    qkv: &[f64],
    dout: &[f64],
    batch: usize,
    l: HeadLayout,
    heads: Range<usize>,
    eps: f64,
) -> Vec<f64> {
    let (n, dh) = (l.seq, l.head_dim);
    let out = forward(qkv, batch, l, heads.clone(), eps);
    let mut dqkv = vec![0.0; qkv.len()];
    for b in 0..batch {
        for h in heads.clone() {
            let (q, k, v) = (
                l.head_matrix(qkv, Part::Q, b, h),
                l.head_matrix(qkv, Part::K, b, h),
                l.head_matrix(qkv, Part::V, b, h),
            );
            let fq: Vec<f64> = q.iter().map(|&x| phi(x)).collect();
            let fk: Vec<f64> = k.iter().map(|&x| phi(x)).collect();
            let mut s = vec![0.0; dh * dh];
            let mut z = vec![0.0; dh];
            for j in 0..n {
                for a in 0..dh {
                    z[a] += fk[j * dh + a];
                    for e in 0..dh {
                        s[a * dh + e] += fk[j * dh + a] * v[j * dh + e];
                    }
                }
            }
            let (mut ds, mut dz) = (vec![0.0; dh * dh], vec![0.0; dh]);
            for i in 0..n {
                let den = (0..dh).map(|a| fq[i * dh + a] * z[a]).sum::<f64>() + eps;
                let g: Vec<f64> = (0..dh).map(|e| dout[l.out(b, i, h, e)]).collect();
                let o: Vec<f64> = (0..dh).map(|e| out[l.out(b, i, h, e)]).collect();
                let dden = -g.iter().zip(&o).map(|(x, y)| x * y).sum::<f64>() / den;
                for a in 0..dh {
                    let dphi =
                        (0..dh).map(|e| s[a * dh + e] * g[e] / den).sum::<f64>() + z[a] * dden;
                    dqkv[l.qkv(Part::Q, b, i, h, a)] = dphi * phi_grad(q[i * dh + a]);
                    dz[a] += fq[i * dh + a] * dden;
                    for e in 0..dh {
                        ds[a * dh + e] += fq[i * dh + a] * g[e] / den;
                    }
                }
            }
            for j in 0..n {
                for c in 0..dh {
                    let dk = (0..dh).map(|e| ds[c * dh + e] * v[j * dh + e]).sum::<f64>() + dz[c];
                    dqkv[l.qkv(Part::K, b, j, h, c)] = dk * phi_grad(k[j * dh + c]);
                    dqkv[l.qkv(Part::V, b, j, h, c)] =
                        (0..dh).map(|a| ds[a * dh + c] * fk[j * dh + a]).sum();
                }
            }
        }
    }
    dqkv
}
