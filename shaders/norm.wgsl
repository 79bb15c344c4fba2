// Normalisation over the last dimension, without affine parameters (the
// AdaLN modulation that follows is the affine). One 256-thread workgroup per
// row; row statistics by a fixed tree over the workgroup (deterministic).
//
//   RMSNorm:   y = x · rstd,            rstd = 1/sqrt(mean(x²) + eps)
//              dx = rstd · (dy − ŷ · mean(dy·ŷ)),               ŷ = y
//   LayerNorm: y = (x − μ) · rstd,      rstd = 1/sqrt(mean((x − μ)²) + eps)
//              dx = rstd · (dy − mean(dy) − ŷ · mean(dy·ŷ))
// Backward entries add into dx when `accumulate` is set: the residual
// stream's gradient is the sum of the skip path and the normalised path.
// Grid: grid_1d(rows).

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (rows, cols)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;    // (rows, cols)
@group(0) @binding(3) var<storage, read_write> mean: array<f32>; // (rows) LayerNorm only
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>; // (rows)
@group(0) @binding(5) var<storage, read> mean_in: array<f32>;    // (rows) saved by layernorm_forward
@group(0) @binding(6) var<storage, read> rstd_in: array<f32>;    // (rows) saved by the forward
@group(0) @binding(7) var<storage, read> dy: array<f32>;         // (rows, cols)
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;   // (rows, cols)

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;
var<workgroup> partial2: array<f32, 256>;

// Sums `partial` and `partial2` over the workgroup; results in slot 0.
fn tree_sum2(lid: u32) {
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
            partial2[lid] += partial2[lid + stride];
        }
    }
    workgroupBarrier();
}

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256)
fn rmsnorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_of(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var ss = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        let v = x[base + c];
        ss += v * v;
    }
    partial[lid.x] = ss;
    partial2[lid.x] = 0.0;
    tree_sum2(lid.x);
    let inv = inverseSqrt(partial[0] / f32(p.cols) + p.eps);
    for (var c = lid.x; c < p.cols; c += WG) {
        y[base + c] = x[base + c] * inv;
    }
    if (lid.x == 0u) {
        rstd[r] = inv;
    }
}

@compute @workgroup_size(256)
fn rmsnorm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_of(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let inv = rstd_in[r];
    var s = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        s += dy[base + c] * x[base + c] * inv;
    }
    partial[lid.x] = s;
    partial2[lid.x] = 0.0;
    tree_sum2(lid.x);
    let mean_dy_y = partial[0] / f32(p.cols);
    for (var c = lid.x; c < p.cols; c += WG) {
        let y_hat = x[base + c] * inv;
        var g = inv * (dy[base + c] - y_hat * mean_dy_y);
        if (p.accumulate != 0u) {
            g += dx[base + c];
        }
        dx[base + c] = g;
    }
}

@compute @workgroup_size(256)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_of(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var s = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        s += x[base + c];
    }
    partial[lid.x] = s;
    partial2[lid.x] = 0.0;
    tree_sum2(lid.x);
    let mu = partial[0] / f32(p.cols);
    workgroupBarrier();
    // Second pass over the centred values: no cancellation in the variance.
    var ss = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        let v = x[base + c] - mu;
        ss += v * v;
    }
    partial[lid.x] = ss;
    tree_sum2(lid.x);
    let inv = inverseSqrt(partial[0] / f32(p.cols) + p.eps);
    for (var c = lid.x; c < p.cols; c += WG) {
        y[base + c] = (x[base + c] - mu) * inv;
    }
    if (lid.x == 0u) {
        mean[r] = mu;
        rstd[r] = inv;
    }
}

@compute @workgroup_size(256)
fn layernorm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_of(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let mu = mean_in[r];
    let inv = rstd_in[r];
    var s_dy = 0.0;
    var s_dyy = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        let g = dy[base + c];
        s_dy += g;
        s_dyy += g * (x[base + c] - mu) * inv;
    }
    partial[lid.x] = s_dy;
    partial2[lid.x] = s_dyy;
    tree_sum2(lid.x);
    let mean_dy = partial[0] / f32(p.cols);
    let mean_dy_y = partial2[0] / f32(p.cols);
    for (var c = lid.x; c < p.cols; c += WG) {
        let y_hat = (x[base + c] - mu) * inv;
        var g = inv * (dy[base + c] - mean_dy - y_hat * mean_dy_y);
        if (p.accumulate != 0u) {
            g += dx[base + c];
        }
        dx[base + c] = g;
    }
}
