// Counter-based random numbers, generated where they are used so a training
// step needs no upload of noise. Element i of a draw is a pure function of
// (i, stream, key): key (3 words) comes from the `rng_key` tensor, which the
// CPU rewrites before each step (seed and step number, then the index of
// the tensor's first sequence in the run: 0 but for a sampler's later
// batches); stream is a static per-call constant so that two draws in one
// step are independent.
// The hash (counter_rng.wgsl) is exact on every adapter; Box-Muller's
// log/cos are f32 and may differ in the last ulp between adapters.
//
// dropout_forward / dropout_backward regenerate the same keep-mask from the
// hash instead of storing it: y = x·keep/(1−p), dx = dy·keep/(1−p).

struct Params {
    n: u32,
    stream: u32,
    scale: f32,         // randn: standard deviation; dropout: drop probability p
    per_sequence: u32,  // draws per sequence of the tensor (randn: pairs)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rng_key: array<u32>;    // (3): seed, step, first sequence
@group(0) @binding(2) var<storage, read> x: array<f32>;          // (n) dropout input / upstream gradient
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // (n)

// #include counter_rng.wgsl

// Uniform in (0, 1]: draw i of this call with the given salt.
fn unit_uniform(i: u32, salt: u32) -> f32 {
    let key = vec3<u32>(rng_key[0], rng_key[1], rng_key[2]);
    return unit_uniform_of(counter_hash(key, p.stream, i, salt, p.per_sequence));
}

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// out[i] = scale · N(0, 1). Pair k gives elements 2k and 2k+1 (Box-Muller).
// Grid: grid_1d(ceil(ceil(n / 2) / 256)).
@compute @workgroup_size(256)
fn randn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat(wid, nwg, lid);
    if (2u * k >= p.n) {
        return;
    }
    let radius = sqrt(-2.0 * log(unit_uniform(k, 0x9e3779b9u)));
    let angle = 6.283185307179586 * unit_uniform(k, 0x85ebca6bu);
    out[2u * k] = p.scale * radius * cos(angle);
    if (2u * k + 1u < p.n) {
        out[2u * k + 1u] = p.scale * radius * sin(angle);
    }
}

fn keep_factor(i: u32) -> f32 {
    if (unit_uniform(i, 0xc2b2ae35u) <= p.scale) {
        return 0.0;
    }
    return 1.0 / (1.0 - p.scale);
}

// out = x · keep / (1 − p). Grid: grid_1d(ceil(n / 256)).
@compute @workgroup_size(256)
fn dropout_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        out[i] = x[i] * keep_factor(i);
    }
}

// out = dy · keep / (1 − p), the same mask as the forward of this step.
@compute @workgroup_size(256)
fn dropout_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        out[i] = x[i] * keep_factor(i);
    }
}
