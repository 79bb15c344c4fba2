// Gaussian diffusion on embeddings, per sequence b (rows = B·L):
//   q_sample_forward:  x_t = a[b]·z0 + s[b]·eps, with (a, s) = (sqrt(ab_t), sqrt(1 − ab_t)) per
//                      sequence (z0 = signal_scale·x0), written by the CPU for each step's timesteps.
//   q_sample_backward: dx0 (+)= a[b]·dx_t  (eps is a constant; the embedding
//                      behind x0 is learned, so its gradient flows through here too).
//   q_sample_backward_both: dx0 (+)= a[b]·dx_t and deps = s[b]·dx_t, for blends
//                      whose second input is learned too (the output prior's readout
//                      u = α·z0_pred + β[b]·x_t).
//   ddim_step:         the deterministic (eta = 0) DDIM update from x_t and the
//                      model's x0 estimate to x_{t'}, coefficients per sequence:
//                      eps_hat = (x_t − a_t·x0_hat)/s_t;  x_{t'} = a_t'·x0_hat + s_t'·eps_hat.
//   infill_blend:      x = known ? a·x0_known + s·eps : x, per row (positions held known).
//   q_sample_held_forward:  x_t = known ? z0 : a[b]·z0 + s[b]·eps, per row: training with
//                      known positions held clean (an instruction's prompt), the noise unseen there.
//   q_sample_held_backward: dz0 (+)= (known ? 1 : a[b])·dx_t.
//   mask_forward:      x_t = known ? z0 : m, with m (d) the unit-RMS mask row: masked
//                      diffusion's input, every corrupted position the same learned vector.
//   mask_backward:     dz0 (+)= known ? dx_t : 0;  masked_rows = known ? 0 : dx_t, whose
//                      column sums (ops::reduce::sum_rows) are dm.

struct Params {
    rows: u32,        // B·L
    seq: u32,         // L (row r belongs to sequence r / seq)
    cols: u32,        // d
    accumulate: u32,  // q_sample_backward: add into dx0
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coef: array<f32>;        // (B, 4): a_t, s_t, a_t', s_t'
@group(0) @binding(2) var<storage, read> x0: array<f32>;          // (rows, d) clean / estimated x0, or dx_t in backward
@group(0) @binding(3) var<storage, read> noise: array<f32>;       // (rows, d) eps, x_t for ddim_step; (d) m for mask_forward
@group(0) @binding(4) var<storage, read_write> out: array<f32>;   // (rows, d)
@group(0) @binding(5) var<storage, read> known: array<f32>;       // (rows) 1 = position held known
@group(0) @binding(6) var<storage, read_write> masked_rows: array<f32>; // (rows, d) mask_backward's dx_t at masked rows
@group(0) @binding(7) var<storage, read_write> d_noise: array<f32>; // (rows, d) q_sample_backward_both's deps

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// Grid for every entry point: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn q_sample_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let b = i / p.cols / p.seq;
    out[i] = coef[4u * b] * x0[i] + coef[4u * b + 1u] * noise[i];
}

// out[i] (+)= a[b]·dx_t[i], dx_t bound at binding 2: both q_sample backwards' dx0.
fn add_dx0(i: u32, b: u32) {
    var v = coef[4u * b] * x0[i];
    if (p.accumulate != 0u) {
        v += out[i];
    }
    out[i] = v;
}

// out = dx0 (+)= a·dx_t, with dx_t bound at binding 2.
@compute @workgroup_size(256)
fn q_sample_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    add_dx0(i, i / p.cols / p.seq);
}

// out = dx0 (+)= a·dx_t and d_noise = s·dx_t, with dx_t bound at binding 2.
@compute @workgroup_size(256)
fn q_sample_backward_both(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let b = i / p.cols / p.seq;
    add_dx0(i, b);
    d_noise[i] = coef[4u * b + 1u] * x0[i];
}

// out = x_{t'}, with x0_hat at binding 2 and x_t at binding 3.
@compute @workgroup_size(256)
fn ddim_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let b = i / p.cols / p.seq;
    let a_t = coef[4u * b];
    let s_t = coef[4u * b + 1u];
    let eps_hat = (noise[i] - a_t * x0[i]) / s_t;
    out[i] = coef[4u * b + 2u] * x0[i] + coef[4u * b + 3u] * eps_hat;
}

// Known rows of out are replaced by a·x0 + s·eps (clean when s = 0, a = 1).
@compute @workgroup_size(256)
fn infill_blend(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let r = i / p.cols;
    if (known[r] != 0.0) {
        let b = r / p.seq;
        out[i] = coef[4u * b] * x0[i] + coef[4u * b + 1u] * noise[i];
    }
}

// Known rows hold the clean z0; the others are noised as in q_sample_forward.
@compute @workgroup_size(256)
fn q_sample_held_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let r = i / p.cols;
    if (known[r] != 0.0) {
        out[i] = x0[i];
    } else {
        let b = r / p.seq;
        out[i] = coef[4u * b] * x0[i] + coef[4u * b + 1u] * noise[i];
    }
}

// out = dz0 (+)= (known ? 1 : a)·dx_t, with dx_t bound at binding 2.
@compute @workgroup_size(256)
fn q_sample_held_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let r = i / p.cols;
    var v = x0[i];
    if (known[r] == 0.0) {
        v *= coef[4u * (r / p.seq)];
    }
    if (p.accumulate != 0u) {
        v += out[i];
    }
    out[i] = v;
}

// Known rows hold the clean z0; the others the mask row.
@compute @workgroup_size(256)
fn mask_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    if (known[i / p.cols] != 0.0) {
        out[i] = x0[i];
    } else {
        out[i] = noise[i % p.cols];
    }
}

// out = dz0 (+)= known ? dx_t : 0 and masked_rows = known ? 0 : dx_t, with dx_t bound at binding 2.
@compute @workgroup_size(256)
fn mask_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let held = known[i / p.cols] != 0.0;
    var v = select(0.0, x0[i], held);
    if (p.accumulate != 0u) {
        v += out[i];
    }
    out[i] = v;
    masked_rows[i] = select(x0[i], 0.0, held);
}
