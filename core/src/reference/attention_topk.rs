use std::ops::Range;

use super::attention::{HeadLayout, Part};

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Indices of the `keep` largest scores, best first; ties: the lower index first.
pub fn select(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(keep);
    order
}

/// Per (b, h, i): the kept keys and their probabilities.
pub struct Selection {
    pub kept: Vec<Vec<usize>>,
    pub prob: Vec<Vec<f64>>,
}

fn head_forward(q: &[f64], k: &[f64], n: usize, dh: usize, topk: usize) -> Selection {
    let scale = 1.0 / (dh as f64).sqrt();
    let mut sel = Selection {
        kept: Vec::new(),
        prob: Vec::new(),
    };
    for i in 0..n {
        let scores: Vec<f64> = (0..n)
            .map(|j| scale * dot(&q[i * dh..][..dh], &k[j * dh..][..dh]))
            .collect();
        let kept = select(&scores, topk.min(n));
        let m = scores[kept[0]];
        let e: Vec<f64> = kept.iter().map(|&j| (scores[j] - m).exp()).collect();
        let total: f64 = e.iter().sum();
        sel.prob.push(e.iter().map(|x| x / total).collect());
        sel.kept.push(kept);
    }
    sel
}

/// Top-k attention of heads `heads` (other heads' columns 0), and the selections.
pub fn forward(
    qkv: &[f64],
    batch: usize,
    l: HeadLayout,
    heads: Range<usize>,
    topk: usize,
) -> (Vec<f64>, Vec<Selection>) {
    let (n, dh) = (l.seq, l.head_dim);
    let mut out = vec![0.0; batch * n * l.d];
    let mut selections = Vec::new();
    for b in 0..batch {
        for h in heads.clone() {
            let (q, k, v) = (
                l.head_matrix(qkv, Part::Q, b, h),
                l.head_matrix(qkv, Part::K, b, h),
                l.head_matrix(qkv, Part::V, b, h),
            );
            let sel = head_forward(&q, &k, n, dh, topk);
            for i in 0..n {
                for c in 0..dh {
                    out[l.out(b, i, h, c)] = sel.kept[i]
                        .iter()
                        .zip(&sel.prob[i])
                        .map(|(&j, p)| p * v[j * dh + c])
                        .sum();
                }
            }
            selections.push(sel);
        }
    }
    (out, selections)
}

/// dqkv of [`forward`] (gradient through the kept entries only).
pub fn backward(
    qkv: &[f64],
    dout: &[f64],
    batch: usize,
    l: HeadLayout,
    heads: Range<usize>,
    topk: usize,
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
            let sel = head_forward(&q, &k, n, dh, topk);
            for i in 0..n {
                let g: Vec<f64> = (0..dh).map(|c| dout[l.out(b, i, h, c)]).collect();
                let dp: Vec<f64> = sel.kept[i]
                    .iter()
                    .map(|&j| dot(&g, &v[j * dh..][..dh]))
                    .collect();
                let weighted: f64 = dp.iter().zip(&sel.prob[i]).map(|(a, p)| a * p).sum();
                for (m, &j) in sel.kept[i].iter().enumerate() {
                    let p = sel.prob[i][m];
                    let ds = p * (dp[m] - weighted);
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
