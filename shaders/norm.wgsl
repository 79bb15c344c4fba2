// RMSNorm over the last dimension, without affine parameters: the embedding
// table's unit rows (the blocks' norms are fused with their modulation in
// adaln.wgsl). One 256-thread workgroup per row; row statistics by a fixed
// tree over the workgroup (deterministic).
//
//   y = x · rstd,   rstd = 1/sqrt(mean(x²) + eps)
//   dx = rstd · (dy − ŷ · mean(dy·ŷ)),   ŷ = y
// Grid: grid_1d(rows).

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (rows, cols)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;    // (rows, cols)
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>; // (rows)
@group(0) @binding(4) var<storage, read> rstd_in: array<f32>;    // (rows) saved by the forward
@group(0) @binding(5) var<storage, read> dy: array<f32>;         // (rows, cols)
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;   // (rows, cols)

const WG: u32 = 256u;

// #include workgroup_reduce.wgsl

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
    let inv = inverseSqrt(workgroup_sum(lid.x, ss) / f32(p.cols) + p.eps);
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
    let mean_dy_y = workgroup_sum(lid.x, s) / f32(p.cols);
    for (var c = lid.x; c < p.cols; c += WG) {
        let y_hat = x[base + c] * inv;
        dx[base + c] = inv * (dy[base + c] - y_hat * mean_dy_y);
    }
}
