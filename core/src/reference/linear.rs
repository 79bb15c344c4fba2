use super::matmul::{matmul, matmul_nt_backward};

/// y = x·Wᵀ + b for x (rows, d_in), W (d_out, d_in).
pub fn forward(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    rows: usize,
    d_in: usize,
    d_out: usize,
) -> Vec<f64> {
    let mut y = matmul(x, w, rows, d_out, d_in, false, true);
    for r in 0..rows {
        for c in 0..d_out {
            y[r * d_out + c] += b[c];
        }
    }
    y
}

/// (dx, dW, db) of [`forward`].
pub fn backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    rows: usize,
    d_in: usize,
    d_out: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (dx, dw) = matmul_nt_backward(x, w, dy, rows, d_out, d_in);
    let db = sum_rows(dy, 1, rows, d_out);
    (dx, dw, db)
}

/// Σ over rows of x (groups, rows, cols) -> (groups, cols).
pub fn sum_rows(x: &[f64], groups: usize, rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; groups * cols];
    for g in 0..groups {
        for r in 0..rows {
            for c in 0..cols {
                out[g * cols + c] += x[(g * rows + r) * cols + c];
            }
        }
    }
    out
}
