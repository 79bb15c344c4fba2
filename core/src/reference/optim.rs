/// Result of the clip computation: (norm, factor, skip).
pub fn clip(grads: &[&[f64]], max_norm: f64, loss_scale: f64) -> (f64, f64, bool) {
    let sumsq: f64 = grads.iter().flat_map(|g| g.iter()).map(|v| v * v).sum();
    let norm = sumsq.sqrt() / loss_scale;
    let factor = if max_norm > 0.0 {
        (max_norm / (norm + 1e-6)).min(1.0)
    } else {
        1.0
    };
    (norm, factor / loss_scale, !norm.is_finite())
}

/// PyTorch's AdamW step t (1-based) on (p, m, v) in place, gradient pre-scaled by `factor`.
#[allow(clippy::too_many_arguments)]
pub fn adamw(
    p: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    lr: f64,
    (b1, b2): (f64, f64),
    eps: f64,
    wd: f64,
    t: i32,
    factor: f64,
) {
    let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    for i in 0..p.len() {
        let gi = g[i] * factor;
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        p[i] *= 1.0 - lr * wd;
        p[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
    }
}
