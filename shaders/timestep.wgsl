// Sinusoidal timestep features (DiT convention): for t in 1..T and
// i < half = dim/2, freq_i = exp(−ln(max_period)·i/half),
// features = [cos(t·freq), sin(t·freq)] (a zero last column for odd dim).
//
// The features of every t are computed once on the CPU in f64 and kept as a
// (T + 1, dim) table; this kernel gathers the rows of the batch's timesteps.
// Why a table: arguments reach 1000 radians, where f32 sin/cos differ between
// adapters by up to ~1e-3 (Vulkan and WebGPU only bound their error inside
// [−π, π]); the table makes the features bit-identical on every adapter, the
// browser included. Timesteps are integers, so there is no backward.

struct Params {
    batch: u32,
    dim: u32,
    max_t: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> timesteps: array<u32>;  // (B)
@group(0) @binding(2) var<storage, read> table: array<f32>;      // (T + 1, dim)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // (B, dim)

// Grid: grid_1d(ceil(B·dim / 256)).
@compute @workgroup_size(256)
fn timestep_embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= p.batch * p.dim) {
        return;
    }
    let t = min(timesteps[i / p.dim], p.max_t);
    out[i] = table[t * p.dim + i % p.dim];
}
