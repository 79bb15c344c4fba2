// Mixed precision: the half copy of a weight that the matmuls read as B
// (shaders/matmul.wgsl, OperandB = f16), refreshed from the f32 master at the
// start of every forward. Its backward is the identity: gradients flow into
// the f32 master's gradient, which AdamW applies to the master.
//
// `Half` is f32 in this file as written (so it validates without f16) and f16
// in the variant the runtime compiles on adapters with SHADER_F16.

alias Half = f32;

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weight: array<f32>;        // (n) the f32 master
@group(0) @binding(2) var<storage, read_write> weight_half: array<Half>;  // (n) its half copy

// Grid: grid_1d(ceil(n / 256)).
@compute @workgroup_size(256)
fn half_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i < p.n) {
        weight_half[i] = Half(weight[i]);
    }
}
