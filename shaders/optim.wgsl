// Global gradient-norm clipping and AdamW, with no CPU round trip: the norm,
// the clip factor and the skip flag live in the `stats` tensor; the
// learning rate and bias corrections of the step in the `step` tensor (which
// the CPU rewrites before each submission).
//
//   clip_scale (one thread):
//     norm = sqrt(stats[sumsq]) / loss_scale
//     factor = min(1, max_norm/(norm + 1e-6)) / loss_scale   (max_norm = 0: 1/loss_scale)
//     skip = norm not finite (overflow in f16, or a NaN anywhere): the step is
//     not applied and stats[skipped] counts it.
//   adamw (PyTorch's torch.optim.AdamW, decoupled decay):
//     g' = g·factor;  p ← p·(1 − lr·wd);  m ← β1 m + (1 − β1) g';  v ← β2 v + (1 − β2) g'²
//     p ← p − (lr/bc1) · m / (sqrt(v)/sqrt(bc2) + eps),   bc_i = 1 − β_i^t
//   update_loss_scale (one thread, f16 only): halve on overflow, double after
//     `growth_interval` clean steps.

struct Params {
    n: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    max_norm: f32,
    growth_interval: u32,
    // Slots of stats.
    sumsq_slot: u32,
    norm_slot: u32,
    factor_slot: u32,
    skip_slot: u32,
    skipped_slot: u32,
    loss_scale_slot: u32,
    clean_steps_slot: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>; // (slots) clip_scale, update_loss_scale
@group(0) @binding(2) var<storage, read> stats_in: array<f32>;    // (slots) adamw
@group(0) @binding(3) var<storage, read> step: array<f32>;        // (3): lr, 1 − β1^t, 1 − β2^t
@group(0) @binding(4) var<storage, read_write> param: array<f32>; // (n)
@group(0) @binding(5) var<storage, read> grad: array<f32>;        // (n)
@group(0) @binding(6) var<storage, read_write> m1: array<f32>;    // (n) first moment
@group(0) @binding(7) var<storage, read_write> m2: array<f32>;    // (n) second moment

fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(1)
fn clip_scale() {
    let scale = stats[p.loss_scale_slot];
    let norm = sqrt(stats[p.sumsq_slot]) / scale;
    stats[p.norm_slot] = norm;
    var factor = 1.0;
    if (p.max_norm > 0.0) {
        factor = min(1.0, p.max_norm / (norm + 1e-6));
    }
    stats[p.factor_slot] = factor / scale;
    if (is_finite(norm)) {
        stats[p.skip_slot] = 0.0;
    } else {
        stats[p.skip_slot] = 1.0;
        stats[p.skipped_slot] += 1.0;
    }
}

// Grid: grid_1d(ceil(n / 256)).
@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= p.n || stats_in[p.skip_slot] != 0.0) {
        return;
    }
    let lr = step[0];
    let g = grad[i] * stats_in[p.factor_slot];
    let m = p.beta1 * m1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * m2[i] + (1.0 - p.beta2) * g * g;
    m1[i] = m;
    m2[i] = v;
    let decayed = param[i] * (1.0 - lr * p.weight_decay);
    param[i] = decayed - (lr / step[1]) * m / (sqrt(v) / sqrt(step[2]) + p.eps);
}

@compute @workgroup_size(1)
fn update_loss_scale() {
    if (stats[p.skip_slot] != 0.0) {
        stats[p.loss_scale_slot] = max(stats[p.loss_scale_slot] * 0.5, 1.0);
        stats[p.clean_steps_slot] = 0.0;
        return;
    }
    let clean = stats[p.clean_steps_slot] + 1.0;
    if (clean >= f32(p.growth_interval)) {
        stats[p.loss_scale_slot] = min(stats[p.loss_scale_slot] * 2.0, 65536.0);
        stats[p.clean_steps_slot] = 0.0;
    } else {
        stats[p.clean_steps_slot] = clean;
    }
}
