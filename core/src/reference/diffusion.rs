//! Per-sequence affine maps of the diffusion process, in f64. `coef` is
//! (B, 4): a_t, s_t, a_t', s_t'.

pub fn q_sample(coef: &[f64], x0: &[f64], eps: &[f64], seq: usize, cols: usize) -> Vec<f64> {
    (0..x0.len())
        .map(|i| {
            let b = i / cols / seq;
            coef[4 * b] * x0[i] + coef[4 * b + 1] * eps[i]
        })
        .collect()
}

pub fn q_sample_backward(coef: &[f64], dx_t: &[f64], seq: usize, cols: usize) -> Vec<f64> {
    (0..dx_t.len())
        .map(|i| coef[4 * (i / cols / seq)] * dx_t[i])
        .collect()
}

/// d eps of `q_sample`: `s[b]·dx_t`.
pub fn q_sample_backward_noise(coef: &[f64], dx_t: &[f64], seq: usize, cols: usize) -> Vec<f64> {
    (0..dx_t.len())
        .map(|i| coef[4 * (i / cols / seq) + 1] * dx_t[i])
        .collect()
}

/// x_t with known rows (`known[r] != 0`) held at the clean z0.
pub fn q_sample_held(
    coef: &[f64],
    z0: &[f64],
    eps: &[f64],
    known: &[f64],
    seq: usize,
    cols: usize,
) -> Vec<f64> {
    let noised = q_sample(coef, z0, eps, seq, cols);
    (0..z0.len())
        .map(|i| {
            if known[i / cols] != 0.0 {
                z0[i]
            } else {
                noised[i]
            }
        })
        .collect()
}

pub fn q_sample_held_backward(
    coef: &[f64],
    known: &[f64],
    dx_t: &[f64],
    seq: usize,
    cols: usize,
) -> Vec<f64> {
    let noised = q_sample_backward(coef, dx_t, seq, cols);
    (0..dx_t.len())
        .map(|i| {
            if known[i / cols] != 0.0 {
                dx_t[i]
            } else {
                noised[i]
            }
        })
        .collect()
}

/// Masked diffusion's input: z0 at known rows, the mask row `m` (cols) elsewhere.
pub fn mask_input(z0: &[f64], m: &[f64], known: &[f64], cols: usize) -> Vec<f64> {
    (0..z0.len())
        .map(|i| {
            if known[i / cols] != 0.0 {
                z0[i]
            } else {
                m[i % cols]
            }
        })
        .collect()
}

/// Back through [`mask_input`]: (dz0, dm).
pub fn mask_input_backward(dx_t: &[f64], known: &[f64], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut dm = vec![0.0; cols];
    let dz0 = (0..dx_t.len())
        .map(|i| {
            if known[i / cols] != 0.0 {
                dx_t[i]
            } else {
                dm[i % cols] += dx_t[i];
                0.0
            }
        })
        .collect();
    (dz0, dm)
}

pub fn ddim_step(coef: &[f64], x0_hat: &[f64], x_t: &[f64], seq: usize, cols: usize) -> Vec<f64> {
    (0..x_t.len())
        .map(|i| {
            let c = &coef[4 * (i / cols / seq)..];
            let eps_hat = (x_t[i] - c[0] * x0_hat[i]) / c[1];
            c[2] * x0_hat[i] + c[3] * eps_hat
        })
        .collect()
}
