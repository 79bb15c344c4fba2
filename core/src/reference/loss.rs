/// Σ_r w_r Σ_c (p − t)² / (d·W).
pub fn mse(pred: &[f64], target: &[f64], weight: &[f64], d: usize) -> f64 {
    let wsum: f64 = weight.iter().sum::<f64>().max(1e-12);
    pred.iter()
        .zip(target)
        .enumerate()
        .map(|(i, (p, t))| weight[i / d] * (p - t) * (p - t))
        .sum::<f64>()
        / (d as f64 * wsum)
}

pub fn mse_backward(pred: &[f64], target: &[f64], weight: &[f64], d: usize, g: f64) -> Vec<f64> {
    let wsum: f64 = weight.iter().sum::<f64>().max(1e-12);
    pred.iter()
        .zip(target)
        .enumerate()
        .map(|(i, (p, t))| g * 2.0 * weight[i / d] * (p - t) / (d as f64 * wsum))
        .collect()
}

fn lse(row: &[f64]) -> f64 {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Σ_r w_r (lse_r − logit[r, t_r]) / W.
pub fn ce(logits: &[f64], targets: &[u32], weight: &[f64], vocab: usize) -> f64 {
    let wsum: f64 = weight.iter().sum::<f64>().max(1e-12);
    logits
        .chunks(vocab)
        .zip(targets)
        .zip(weight)
        .map(|((row, &t), w)| w * (lse(row) - row[t as usize]))
        .sum::<f64>()
        / wsum
}

pub fn ce_backward(
    logits: &[f64],
    targets: &[u32],
    weight: &[f64],
    vocab: usize,
    g: f64,
) -> Vec<f64> {
    let wsum: f64 = weight.iter().sum::<f64>().max(1e-12);
    let mut out = Vec::with_capacity(logits.len());
    for ((row, &t), w) in logits.chunks(vocab).zip(targets).zip(weight) {
        let l = lse(row);
        out.extend(row.iter().enumerate().map(|(v, x)| {
            g * w / wsum * ((x - l).exp() - if v == t as usize { 1.0 } else { 0.0 })
        }));
    }
    out
}
