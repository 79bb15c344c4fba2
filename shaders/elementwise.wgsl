// Element-wise utilities over flat arrays. Grid: grid_1d(ceil(n / 256)); the
// flat index is folded over workgroups x and y to pass 65,535 workgroups.

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // (n)
@group(0) @binding(2) var<storage, read> y: array<f32>;        // (n)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (n)

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// out = alpha
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.alpha;
    }
}

// out = alpha * x + beta * out   (beta = 0 never reads out)
@compute @workgroup_size(256)
fn axpby(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        var v = p.alpha * x[i];
        if (p.beta != 0.0) {
            v += p.beta * out[i];
        }
        out[i] = v;
    }
}

// out = alpha * x + beta * y
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.alpha * x[i] + p.beta * y[i];
    }
}

// out = alpha * x * y
@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.alpha * x[i] * y[i];
    }
}
