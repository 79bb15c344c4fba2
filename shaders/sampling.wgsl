// Decoding during sampling: per row of logits, a token and its probability
// (the confidence the demos shade positions by).
// argmax_rows:
//   tokens[r] = argmax_v logits[r, v]   (ties: the lower id)
//   confidence[r] = softmax(logits[r])[tokens[r]] = 1 / Σ_v exp(logits[r, v] − max)
// sample_rows, at temperature τ = 1 / inv_temperature and nucleus mass top_p
// (Gumbel-max over the nucleus):
//   q = softmax(logits[r] / τ)
//   θ = the largest probability with Σ_{v: q_v ≥ θ} q_v ≥ top_p (0 at top_p = 1),
//       found by bisection on its bits: no sort, and ties at θ all stay in
//   N = {v : q_v ≥ θ}, the smallest set of likeliest tokens holding top_p
//   tokens[r] = argmax_{v ∈ N} (logits[r, v] / τ + g[r, v]),  g = −log(−log u),
//   u uniform in (0, 1) from the counter hash of (r·V + v, key, stream),
//   r·V + v counted from the run's first sequence
//   confidence[r] = q[tokens[r]] / Σ_{v ∈ N} q_v
// so tokens[r] is a draw from q restricted to N, reproducible from the key.
// One 256-thread workgroup per row, fixed reduction trees. Grid: grid_1d(rows).

struct Params {
    rows: u32,
    vocab: u32,
    inv_temperature: f32, // sample_rows only
    stream: u32,          // sample_rows only
    top_p: f32,           // sample_rows only; 1 keeps every token
    per_sequence: u32,    // sample_rows only: draws (rows · V) per sequence
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;         // (rows, V)
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>;   // (rows)
@group(0) @binding(3) var<storage, read_write> confidence: array<f32>; // (rows)
@group(0) @binding(4) var<storage, read> rng_key: array<u32>;        // (3) sample_rows only: seed, step, first sequence

const WG: u32 = 256u;
var<workgroup> best_value: array<f32, 256>;
var<workgroup> best_index: array<u32, 256>;

// The workgroup's best (value, index) into slot 0, by a fixed-order tree as
// workgroup_reduce.wgsl's. Called from uniform control flow (r is the same
// for the whole workgroup).
fn reduce_best(t: u32) {
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (t < stride) {
            let other = best_value[t + stride];
            let other_index = best_index[t + stride];
            // Ties: the lower id.
            if (other > best_value[t] || (other == best_value[t] && other_index < best_index[t])) {
                best_value[t] = other;
                best_index[t] = other_index;
            }
        }
    }
    workgroupBarrier();
}

// #include workgroup_reduce.wgsl

@compute @workgroup_size(256)
fn argmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wid.y * nwg.x + wid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.vocab;
    var v_best = -3.0e38;
    var i_best = 0u;
    for (var v = lid.x; v < p.vocab; v += WG) {
        let x = logits[base + v];
        if (x > v_best) {
            v_best = x;
            i_best = v;
        }
    }
    best_value[lid.x] = v_best;
    best_index[lid.x] = i_best;
    reduce_best(lid.x);
    let m = best_value[0];
    var s = 0.0;
    for (var v = lid.x; v < p.vocab; v += WG) {
        s += exp(logits[base + v] - m);
    }
    let z = workgroup_sum(lid.x, s);
    if (lid.x == 0u) {
        tokens[r] = best_index[0];
        confidence[r] = 1.0 / z;
    }
}

// #include counter_rng.wgsl

const GUMBEL_SALT: u32 = 0x27d4eb2fu;

fn gumbel(i: u32) -> f32 {
    let key = vec3<u32>(rng_key[0], rng_key[1], rng_key[2]);
    let h = counter_hash(key, p.stream, i, GUMBEL_SALT, p.per_sequence);
    // Uniform strictly inside (0, 1): both logs stay finite.
    let u = (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
    return -log(-log(u));
}

// Bisection steps over the bits of a probability in [0, 1]: the bits of a
// positive f32 order as the values do, and 0x3F800001 < 2^30.
const THRESHOLD_STEPS: u32 = 30u;

@compute @workgroup_size(256)
fn sample_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
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
    let inv_z = 1.0 / workgroup_sum(lid.x, s);
    var threshold = 0.0;
    if (p.top_p < 1.0) {
        // Invariant: the mass at or above bits `lo` reaches top_p, at `hi` it
        // does not (no probability exceeds 1).
        var lo = 0u;
        var hi = 0x3F800001u;
        for (var step = 0u; step < THRESHOLD_STEPS; step++) {
            let mid = lo + (hi - lo) / 2u;
            let theta = bitcast<f32>(mid);
            var mass = 0.0;
            for (var v = lid.x; v < p.vocab; v += WG) {
                let q = exp(logits[base + v] * p.inv_temperature - top) * inv_z;
                mass += select(0.0, q, q >= theta);
            }
            if (workgroup_sum(lid.x, mass) >= p.top_p) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        threshold = bitcast<f32>(lo);
    }
    var v_best = -3.0e38;
    var i_best = 0u;
    var kept = 0.0;
    for (var v = lid.x; v < p.vocab; v += WG) {
        let x = logits[base + v] * p.inv_temperature;
        let q = exp(x - top) * inv_z;
        let score = x + gumbel(base + v);
        if (q >= threshold) {
            kept += q;
            if (score > v_best) {
                v_best = score;
                i_best = v;
            }
        }
    }
    best_value[lid.x] = v_best;
    best_index[lid.x] = i_best;
    reduce_best(lid.x);
    let nucleus = workgroup_sum(lid.x, kept);
    if (lid.x == 0u) {
        let chosen = best_index[0];
        tokens[r] = chosen;
        confidence[r] = exp(logits[base + chosen] * p.inv_temperature - top) * inv_z / nucleus;
    }
}
