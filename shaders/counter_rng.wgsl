// Counter-based random numbers, a library: random.wgsl, reveal.wgsl and
// sampling.wgsl each name it with `// #include counter_rng.wgsl`, which the
// runtime (core/src/gpu/shader.rs) replaces with this file, so the three
// draw with one hash. Draw i is a pure function of (i, salt, key, stream):
// key is a kernel's `rng_key` tensor (seed, step, the index of the tensor's
// first sequence in the run), stream a per-call constant. The integer hash is
// exact on every adapter; core/src/reference/random.rs is its CPU twin.

// PCG output permutation (O'Neill), used as a 32-bit mixing function.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// a·b in 64 bits as (low word, high word), from 16-bit halves.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let low = a0 * b0;
    let cross = (low >> 16u) + ((a0 * b1) & 0xffffu) + ((a1 * b0) & 0xffffu);
    let high = a1 * b1 + ((a0 * b1) >> 16u) + ((a1 * b0) >> 16u) + (cross >> 16u);
    return vec2<u32>((low & 0xffffu) | (cross << 16u), high);
}

// The counter hash of draw i of a dispatch, counted from the run's first
// sequence: key.z is how many sequences of `per_sequence` draws come before
// the dispatch's first, so a sequence draws the same numbers however a run is
// cut into batches. The run index is 64-bit; one below 2^32 hashes as
// (i, salt, key, stream) did before runs had offsets.
fn counter_hash(key: vec3<u32>, stream: u32, i: u32, salt: u32, per_sequence: u32) -> u32 {
    let before = mul_wide(key.z, per_sequence);
    let lo = before.x + i;
    let hi = before.y + select(0u, 1u, lo < i);
    var mixed = pcg(salt ^ pcg(key.x ^ pcg(key.y ^ pcg(stream))));
    if (hi != 0u) {
        mixed = pcg(mixed ^ pcg(hi));
    }
    return pcg(lo ^ mixed);
}

// Uniform in (0, 1] from a hash's top 24 bits, never 0 (log stays finite).
fn unit_uniform_of(hash: u32) -> f32 {
    return f32((hash >> 8u) + 1u) * (1.0 / 16777216.0);
}
