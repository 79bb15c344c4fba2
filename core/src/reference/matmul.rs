/// C = op(A)·op(B) for one dense row-major matrix pair; op(A) is M×K, op(B) K×N.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f64],
    b: &[f64],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
) -> Vec<f64> {
    let at = |r: usize, c: usize| if trans_a { a[c * m + r] } else { a[r * k + c] };
    let bt = |r: usize, c: usize| if trans_b { b[c * k + r] } else { b[r * n + c] };
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|kk| at(i, kk) * bt(kk, j)).sum();
        }
    }
    out
}

/// Gradients of `C = A·Bᵀ` (a linear layer with W stored out×in):
/// given dC (M×N), returns (dA = dC·B, dB = dCᵀ·A).
pub fn matmul_nt_backward(
    a: &[f64],
    b: &[f64],
    dc: &[f64],
    m: usize,
    n: usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    (
        matmul(dc, b, m, k, n, false, false),
        matmul(dc, a, n, k, m, true, false),
    )
}

/// x rounded to the nearest f16 (±inf beyond its range), as a mixed-precision
/// product sees its operands.
pub fn round_to_half(x: f64) -> f64 {
    half::f16::from_f64(x).to_f64()
}
