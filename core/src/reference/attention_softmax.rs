use std::ops::Range;

use super::attention::{HeadLayout, Part};

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Softmax probabilities of query i over keys within `half_window` (None: all).
fn probabilities(
    q: &[f64],
    k: &[f64],
    i: usize,
    n: usize,
    dh: usize,
    half_window: Option<usize>,
) -> Vec<(usize, f64)> {
    let scale = 1.0 / (dh as f64).sqrt();
    let keys: Vec<usize> = (0..n)
        .filter(|&j| half_window.is_none_or(|w| i.abs_diff(j) <= w))
        .collect();
    let scores: Vec<f64> = keys
        .iter()
        .map(|&j| scale * dot(&q[i * dh..][..dh], &k[j * dh..][..dh]))
        .collect();
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
    let total: f64 = e.iter().sum();
    keys.into_iter()
        .zip(e)
        .map(|(j, x)| (j, x / total))
        .collect()
}

/// Softmax attention of heads `heads` (other heads' columns 0).
pub fn forward(
    qkv: &[f64],
    batch: usize,
    l: HeadLayout,
    heads: Range<usize>,
    half_window: Option<usize>,
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
            for i in 0..n {
                for (j, p) in probabilities(&q, &k, i, n, dh, half_window) {
                    for c in 0..dh {
                        out[l.out(b, i, h, c)] += p * v[j * dh + c];
                    }
                }
            }
        }
    }
    out
}

/// dqkv of [`forward`].
pub fn backward(
    qkv: &[f64],
    dout: &[f64],
    batch: usize,
    l: HeadLayout,
    heads: Range<usize>,
    half_window: Option<usize>,
) -> Vec<f64> {
    let (n, dh) = (l.seq, l.head_dim);
    let scale = 1.0 / (dh as f64).sqrt();
    let mut dqkv = vec![0.0; qkv.len()];
    for b in 0..batch {
        for h in heads.clone() {
            let (q, k, v) = (
                l.head_matrix(qkv, Part::Q, b, h),
                l.head_matrix(qkv, Part::K, b, h),
                l.head_matrix(qkv, Part::V, b, h),
            );
            for i in 0..n {
                let g: Vec<f64> = (0..dh).map(|c| dout[l.out(b, i, h, c)]).collect();
                let probs = probabilities(&q, &k, i, n, dh, half_window);
                let dp: Vec<f64> = probs
                    .iter()
                    .map(|&(j, _)| dot(&g, &v[j * dh..][..dh]))
                    .collect();
                let big_d: f64 = probs.iter().zip(&dp).map(|((_, p), d)| p * d).sum();
                for ((j, p), d) in probs.into_iter().zip(dp) {
                    let ds = p * (d - big_d);
                    for c in 0..dh {
                        dqkv[l.qkv(Part::Q, b, i, h, c)] += scale * ds * k[j * dh + c];
                        dqkv[l.qkv(Part::K, b, j, h, c)] += scale * ds * q[i * dh + c];
                        dqkv[l.qkv(Part::V, b, j, h, c)] += p * g[c];
                    }
                }
            }
        }
    }
    dqkv
}
