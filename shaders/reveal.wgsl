// Per-step ops of the hybrid (CANDI-style) diffusion sampler: each noisy row
// draws a token from the model's tempered distribution, and a random share of
// the noisy rows is revealed (frozen to its draw) at every step.
// tempered_softmax, at temperature τ = 1 / inv_temperature:
//   probs[r, v] = exp(logits[r, v]/τ − m_r) / Σ_w exp(logits[r, w]/τ − m_r),
//   m_r = max_w logits[r, w]/τ   (subtracting the row max keeps exp finite).
//   One 256-thread workgroup per row, fixed-order tree reductions (the result
//   does not depend on scheduling), any vocab size. Grid: grid_1d(rows).
// reveal, with p = step[0] the reveal probability of this step:
//   revealed[r] == 0:  u = uniform in (0, 1] of the counter hash of
//                      (r, REVEAL_SALT, key, stream) of counter_rng.wgsl
//                      (r counted from the run's first sequence of `seq` rows);
//                      if u <= p (f32): revealed[r] = 1, frozen[r] = drawn[r].
//   revealed[r] != 0:  drawn[r] = frozen[r], confidence[r] = 1
//   so after the call drawn holds the display token of every row; p = 1
//   reveals every row, p = 0 none. One thread per row.
//   Grid: grid_1d(ceil(rows / 256)).
// reveal_ranked, most confident first: in each sequence of `seq` rows
//   (one workgroup), of its H noisy rows the k = H − floor(H·(1 − p) + 0.5)
//   with the highest confidence (ties: the lower row) are revealed, so the
//   noisy share shrinks by (t − s)/t per step as under `reveal`, in
//   expectation there and exactly here. Rows revealed before show their
//   token as in `reveal`. Grid: grid_1d(rows / seq).
//   With block = n > 0 the sequence is cut into blocks of n rows, counted
//   from its block_origin (the first row the caller left to denoise, as
//   LLaDA counts its blocks from the answer's start), and a row in an
//   earlier block outranks every row of a later one, confidence ranking
//   within a block (semi-autoregressive decoding); n = 1 is left to right.

struct Params {
    rows: u32,
    vocab: u32,           // tempered_softmax only
    inv_temperature: f32, // tempered_softmax only
    stream: u32,          // reveal only
    seq: u32,             // rows per sequence
    block: u32,           // reveal_ranked only: rows per block, 0 = one block
}

@group(0) @binding(0) var<uniform> p: Params;
// tempered_softmax
@group(0) @binding(1) var<storage, read> logits: array<f32>;         // (rows, V)
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;    // (rows, V)
// reveal
@group(0) @binding(3) var<storage, read> rng_key: array<u32>;        // (3): seed, step, first sequence
@group(0) @binding(4) var<storage, read> step: array<f32>;           // (≥ 1): [0] = p, written by the CPU each step
@group(0) @binding(5) var<storage, read_write> drawn: array<u32>;    // (rows) this step's draw; out: the display token
@group(0) @binding(6) var<storage, read_write> confidence: array<f32>; // (rows) out: 1 on revealed rows
@group(0) @binding(7) var<storage, read_write> frozen: array<u32>;   // (rows) the token a revealed row is frozen to
@group(0) @binding(8) var<storage, read_write> revealed: array<f32>; // (rows) 1 = revealed/frozen, 0 = still noisy
// reveal_ranked
@group(0) @binding(9) var<storage, read> block_origin: array<u32>;   // (rows / seq) first row of each sequence's first block

const WG: u32 = 256u;

// #include workgroup_reduce.wgsl

@compute @workgroup_size(256)
fn tempered_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wid.y * nwg.x + wid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.vocab;
    var m = -3.0e38;
    for (var v = lid.x; v < p.vocab; v += WG) {
        m = max(m, logits[base + v] * p.inv_temperature);
    }
    let top = workgroup_max(lid.x, m);
    var s = 0.0;
    for (var v = lid.x; v < p.vocab; v += WG) {
        s += exp(logits[base + v] * p.inv_temperature - top);
    }
    let inv_total = 1.0 / workgroup_sum(lid.x, s);
    for (var v = lid.x; v < p.vocab; v += WG) {
        probs[base + v] = exp(logits[base + v] * p.inv_temperature - top) * inv_total;
    }
}

// #include counter_rng.wgsl

// The salt of the reveal draws: xxHash's PRIME32_5, distinct from the salts
// of random.wgsl and sampling.wgsl so a reveal never reuses their numbers.
const REVEAL_SALT: u32 = 0x165667b1u;

fn reveal_uniform(i: u32) -> f32 {
    let key = vec3<u32>(rng_key[0], rng_key[1], rng_key[2]);
    return unit_uniform_of(counter_hash(key, p.stream, i, REVEAL_SALT, p.seq));
}

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn reveal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    if (revealed[r] == 0.0) {
        if (reveal_uniform(r) <= step[0]) {
            revealed[r] = 1.0;
            frozen[r] = drawn[r];
        }
    } else {
        drawn[r] = frozen[r];
        confidence[r] = 1.0;
    }
}

// revealed[r] = 2 marks a row chosen in this call: still noisy to the other
// threads' ranking (which reads every row of the sequence), frozen after it.
const CHOSEN: f32 = 2.0;

// The block of row i of its sequence, counted from row `origin` (all rows
// are one block when p.block = 0; rows before the origin, known to the
// caller and never ranked, fall in block 0).
fn block_of(i: u32, origin: u32) -> u32 {
    return select(0u, (i - origin) / max(p.block, 1u), p.block != 0u && i >= origin);
}

// Whether row j of the sequence at base ranks before row i: an earlier block,
// then a higher confidence, then the lower row.
fn outranks(base: u32, origin: u32, j: u32, i: u32) -> bool {
    let bj = block_of(j, origin);
    let bi = block_of(i, origin);
    if (bj != bi) {
        return bj < bi;
    }
    let cj = confidence[base + j];
    let ci = confidence[base + i];
    return cj > ci || (cj == ci && j < i);
}

@compute @workgroup_size(256)
fn reveal_ranked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = (wid.y * nwg.x + wid.x) * p.seq;
    if (base >= p.rows) {
        return;
    }
    var noisy = 0.0;
    for (var i = lid.x; i < p.seq; i += WG) {
        if (revealed[base + i] == 0.0) {
            noisy += 1.0;
        }
    }
    let total = workgroup_sum(lid.x, noisy);
    let k = u32(total - floor(total * (1.0 - step[0]) + 0.5));
    let origin = block_origin[base / p.seq];
    for (var i = lid.x; i < p.seq; i += WG) {
        let r = base + i;
        if (revealed[r] != 0.0) {
            drawn[r] = frozen[r];
            confidence[r] = 1.0;
            continue;
        }
        var rank = 0u;
        for (var j = 0u; j < p.seq; j++) {
            if (revealed[base + j] != 1.0 && outranks(base, origin, j, i)) {
                rank += 1u;
            }
        }
        if (rank < k) {
            revealed[r] = CHOSEN;
        }
    }
    storageBarrier();
    workgroupBarrier();
    for (var i = lid.x; i < p.seq; i += WG) {
        let r = base + i;
        if (revealed[r] == CHOSEN) {
            revealed[r] = 1.0;
            frozen[r] = drawn[r];
        }
    }
}
