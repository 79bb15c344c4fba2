// Weighted losses, normalised by the weight sum W = Σ_r weight[r] (weight 1:
// the position counts; 0: excluded, e.g. a prompt). Scalars live in a small
// `stats` tensor at slots chosen by the caller; nothing is read back.
//
//   mse:  Σ_r w_r Σ_c (pred − target)² / (d·W)
//         dpred = g·2·w_r·(pred − target)/(d·W),  dtarget = −dpred
//   ce:   Σ_r w_r (lse_r − logits[r, t_r]) / W,   lse_r = log Σ_v exp(logits[r, v])
//         dlogits = g·w_r/W·(softmax(logits[r]) − onehot(t_r))
// where g = loss_weight · stats[loss_scale_slot] (the dynamic loss scale of
// mixed precision; 1 in f32). Row sums go through reduce.wgsl's fixed-order
// sum_all, then `normalize` divides by W.

struct Params {
    rows: u32,
    cols: u32,            // d for mse, V for ce
    weight_sum_slot: u32,
    loss_scale_slot: u32,
    loss_weight: f32,
    num_slot: u32,        // normalize: numerator
    out_slot: u32,        // normalize: result
    divisor: f32,         // normalize: extra divisor (d for mse, 1 for ce)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;          // (rows, cols) mse: prediction; ce: logits
@group(0) @binding(2) var<storage, read> target_x: array<f32>;      // (rows, d) mse target
@group(0) @binding(3) var<storage, read> weight: array<f32>;        // (rows)
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>; // (rows) weighted per-row loss
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;   // (slots)
@group(0) @binding(6) var<storage, read_write> dpred: array<f32>;   // (rows, cols)
@group(0) @binding(7) var<storage, read_write> dtarget: array<f32>; // (rows, d)
@group(0) @binding(8) var<storage, read> targets: array<u32>;       // (rows) ce class ids
@group(0) @binding(9) var<storage, read_write> lse: array<f32>;     // (rows) ce log-sum-exp

const WG: u32 = 256u;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// One thread per row. Grid: grid_1d(ceil(rows / 256)).
@compute @workgroup_size(256)
fn mse_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let diff = pred[r * p.cols + c] - target_x[r * p.cols + c];
        s += diff * diff;
    }
    row_loss[r] = weight[r] * s;
}

// One thread. stats[W] = divisor: a fixed normaliser in place of Σ weight
// (masked-diffusion ELBOs average over every position, weighted or not).
@compute @workgroup_size(1)
fn set_weight_sum() {
    stats[p.weight_sum_slot] = p.divisor;
}

// One thread. stats[out] = stats[num] / (divisor · max(W, 1e-12)).
@compute @workgroup_size(1)
fn normalize() {
    stats[p.out_slot] = stats[p.num_slot] / (p.divisor * max(stats[p.weight_sum_slot], 1e-12));
}

fn gradient_factor() -> f32 {
    return p.loss_weight * stats[p.loss_scale_slot] / max(stats[p.weight_sum_slot], 1e-12);
}

// Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn mse_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let g = 2.0 * gradient_factor() * weight[i / p.cols] / f32(p.cols) * (pred[i] - target_x[i]);
    dpred[i] = g;
    dtarget[i] = -g;
}

// #include workgroup_reduce.wgsl

// One workgroup per row: stable log-sum-exp, then the weighted row loss.
// Grid: grid_1d(rows).
@compute @workgroup_size(256)
fn ce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wid.y * nwg.x + wid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var m = -3.4e38;
    for (var v = lid.x; v < p.cols; v += WG) {
        m = max(m, pred[base + v]);
    }
    let row_max = workgroup_max(lid.x, m);
    var s = 0.0;
    for (var v = lid.x; v < p.cols; v += WG) {
        s += exp(pred[base + v] - row_max);
    }
    let total = workgroup_sum(lid.x, s);
    if (lid.x == 0u) {
        let l = row_max + log(total);
        lse[r] = l;
        row_loss[r] = weight[r] * (l - pred[base + min(targets[r], p.cols - 1u)]);
    }
}

// Grid: grid_1d(ceil(rows·V / 256)).
@compute @workgroup_size(256)
fn ce_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.cols) {
        return;
    }
    let r = i / p.cols;
    let v = i % p.cols;
    var g = exp(pred[i] - lse[r]);
    if (v == targets[r]) {
        g -= 1.0;
    }
    dpred[i] = gradient_factor() * weight[r] * g;
}
