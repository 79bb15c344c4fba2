/// y = x / sqrt(mean(x²) + eps) per row; also returns rstd per row.
pub fn rmsnorm(x: &[f64], cols: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mut y = Vec::with_capacity(x.len());
    let mut rstd = Vec::new();
    for row in x.chunks(cols) {
        let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / cols as f64 + eps).sqrt();
        y.extend(row.iter().map(|v| v * r));
        rstd.push(r);
    }
    (y, rstd)
}

pub fn rmsnorm_backward(x: &[f64], dy: &[f64], cols: usize, eps: f64) -> Vec<f64> {
    let (y, rstd) = rmsnorm(x, cols, eps);
    let mut dx = Vec::with_capacity(x.len());
    for (r, inv) in rstd.iter().enumerate() {
        let (yr, gr) = (&y[r * cols..][..cols], &dy[r * cols..][..cols]);
        let m = yr.iter().zip(gr).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        dx.extend(yr.iter().zip(gr).map(|(yv, g)| inv * (g - yv * m)));
    }
    dx
}

/// y = (x − μ)/sqrt(var + eps) per row; also returns (mean, rstd) per row.
pub fn layernorm(x: &[f64], cols: usize, eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut mean, mut rstd) = (Vec::with_capacity(x.len()), Vec::new(), Vec::new());
    for row in x.chunks(cols) {
        let mu = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / cols as f64;
        let r = 1.0 / (var + eps).sqrt();
        y.extend(row.iter().map(|v| (v - mu) * r));
        mean.push(mu);
        rstd.push(r);
    }
    (y, mean, rstd)
}

pub fn layernorm_backward(x: &[f64], dy: &[f64], cols: usize, eps: f64) -> Vec<f64> {
    let (y, _, rstd) = layernorm(x, cols, eps);
    let mut dx = Vec::with_capacity(x.len());
    for (r, inv) in rstd.iter().enumerate() {
        let (yr, gr) = (&y[r * cols..][..cols], &dy[r * cols..][..cols]);
        let mean_g = gr.iter().sum::<f64>() / cols as f64;
        let mean_gy = yr.iter().zip(gr).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        dx.extend(
            yr.iter()
                .zip(gr)
                .map(|(yv, g)| inv * (g - mean_g - yv * mean_gy)),
        );
    }
    dx
}
