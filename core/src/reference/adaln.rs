//! AdaLN modulation and gating; `m` is (B, stride), activations (B·L, d).

pub fn modulate(
    m: &[f64],
    x: &[f64],
    seq: usize,
    d: usize,
    stride: usize,
    shift: usize,
    scale: usize,
) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let base = (i / d / seq) * stride + i % d;
            x[i] * (1.0 + m[base + scale]) + m[base + shift]
        })
        .collect()
}

/// (dx, dm) of [`modulate`]; dm is zero outside the shift and scale blocks.
#[allow(clippy::too_many_arguments)]
pub fn modulate_backward(
    m: &[f64],
    x: &[f64],
    dy: &[f64],
    seq: usize,
    d: usize,
    stride: usize,
    shift: usize,
    scale: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; x.len()];
    let mut dm = vec![0.0; m.len()];
    for i in 0..x.len() {
        let base = (i / d / seq) * stride + i % d;
        dx[i] = dy[i] * (1.0 + m[base + scale]);
        dm[base + scale] += dy[i] * x[i];
        dm[base + shift] += dy[i];
    }
    (dx, dm)
}

/// h + gate·y.
pub fn gate(
    m: &[f64],
    y: &[f64],
    h: &[f64],
    seq: usize,
    d: usize,
    stride: usize,
    gate: usize,
) -> Vec<f64> {
    (0..y.len())
        .map(|i| h[i] + m[(i / d / seq) * stride + i % d + gate] * y[i])
        .collect()
}

/// (dy, dm) of [`gate`] given dh; dm is zero outside the gate block.
pub fn gate_backward(
    m: &[f64],
    y: &[f64],
    dh: &[f64],
    seq: usize,
    d: usize,
    stride: usize,
    gate: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut dy = vec![0.0; y.len()];
    let mut dm = vec![0.0; m.len()];
    for i in 0..y.len() {
        let at = (i / d / seq) * stride + i % d + gate;
        dy[i] = dh[i] * m[at];
        dm[at] += dh[i] * y[i];
    }
    (dy, dm)
}
