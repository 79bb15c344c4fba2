/// DiT's sinusoidal features of t: [cos(t·f_i), sin(t·f_i)], f_i = exp(−ln(P)·i/half).
pub fn sinusoid(t: f64, dim: usize, max_period: f64) -> Vec<f64> {
    let half = dim / 2;
    let mut out = vec![0.0; dim];
    for i in 0..half {
        let arg = t * (-(max_period.ln()) * i as f64 / half as f64).exp();
        out[i] = arg.cos();
        out[half + i] = arg.sin();
    }
    out
}

/// Rows t = 0..=max_t of [`sinusoid`].
pub fn sinusoid_table(max_t: usize, dim: usize, max_period: f64) -> Vec<f64> {
    (0..=max_t)
        .flat_map(|t| sinusoid(t as f64, dim, max_period))
        .collect()
}
