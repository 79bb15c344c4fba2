//! The exact integer hash of `shaders/counter_rng.wgsl`, so tests (and anyone
//! reproducing a run) can regenerate the GPU's random numbers on the CPU.

fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The hash of draw `i` of a run (counted from its first sequence; the
/// shaders build the same 64-bit index from the key's third word).
fn hash(i: u64, salt: u32, key: [u32; 2], stream: u32) -> u32 {
    let mut mixed = pcg(salt ^ pcg(key[0] ^ pcg(key[1] ^ pcg(stream))));
    let high = (i >> 32) as u32;
    if high != 0 {
        mixed = pcg(mixed ^ pcg(high));
    }
    pcg(i as u32 ^ mixed)
}

/// Uniform in (0, 1], as the shader computes it.
pub fn uniform(i: u64, salt: u32, key: [u32; 2], stream: u32) -> f64 {
    ((hash(i, salt, key, stream) >> 8) + 1) as f64 / 16_777_216.0
}

/// The shader's `randn` in f64, for a tensor whose sequences start at the run's first.
pub fn randn(n: usize, key: [u32; 2], stream: u32, std: f64) -> Vec<f64> {
    randn_at(0, n, key, stream, std)
}

/// The shader's `randn` in f64 for `n` values from Box-Muller pair
/// `first_pair` of the run on (a later batch: its first sequence times the
/// pairs per sequence).
pub fn randn_at(first_pair: u64, n: usize, key: [u32; 2], stream: u32, std: f64) -> Vec<f64> {
    let mut out = vec![0.0; n];
    for k in 0..n.div_ceil(2) {
        let pair = first_pair + k as u64;
        let radius = (-2.0 * uniform(pair, 0x9e37_79b9, key, stream).ln()).sqrt();
        let angle = std::f64::consts::TAU * uniform(pair, 0x85eb_ca6b, key, stream);
        out[2 * k] = std * radius * angle.cos();
        if 2 * k + 1 < n {
            out[2 * k + 1] = std * radius * angle.sin();
        }
    }
    out
}

/// The shader's dropout scale per element: 0 or 1/(1 − p).
pub fn dropout_factors(n: usize, key: [u32; 2], stream: u32, p: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            // The shader compares the f32 uniform with the f32 p.
            let u = uniform(i as u64, 0xc2b2_ae35, key, stream) as f32;
            if u <= p as f32 {
                0.0
            } else {
                1.0 / (1.0 - p as f32) as f64
            }
        })
        .collect()
}

/// The Gumbel noise `sample_rows` (shaders/sampling.wgsl) adds to element i
/// of the run's logits.
pub fn gumbel(i: u64, key: [u32; 2], stream: u32) -> f64 {
    let u = ((hash(i, 0x27d4_eb2f, key, stream) >> 8) as f64 + 0.5) / 16_777_216.0;
    -(-u.ln()).ln()
}
