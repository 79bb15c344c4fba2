// Top-k attention, bidirectional, for the handled heads. Per (b, h, query i):
//   s_ij = q_i·k_j · scale over all keys j; keep the K = min(topk, L) largest
//   (ties: the lower key index wins); p = softmax over the kept scores;
//   out_i = Σ_kept p_ij v_j.
// The forward streams over keys (staged in tiles shared by the workgroup's
// 64 queries), keeping the running top-K in registers: the L×L score matrix
// never exists; what is stored for the backward is O(L·K), the kept indices
// and their probabilities. The list is sorted by (score descending, key
// ascending) and a score enters through an insertion network: a compare and
// a conditional move per slot, unrolled over the constant TOPK_MAX slots, so
// the list stays in registers with no data-dependent index. Keys arrive in
// ascending order, so a new key goes behind every equal score, and the
// entries behind it keep their order as they move down. The kept set is
// therefore the first K keys of that order.
// TOPK_MAX (the register capacity) and HEAD_DIM_MAX are re-valued per variant
// by the Rust side to the smallest of 8/16/32/64 (16/32/64) that fits; head
// vectors are HEAD_DIM_MAX / 4 vec4s, zero past head_dim, so loops over them
// run a constant number of times (registers on GPUs, and few loop iterations
// on lavapipe, whose llvmpipe ends an invocation's loops after 65,535).
//
// Backward (only through kept entries):
//   dp_ij = dout_i·v_j;  ds_ij = p_ij (dp_ij − Σ_m p_im dp_im)
//   dq_i = scale Σ_kept ds_ij k_j
//   dk_j = scale Σ_{i keeps j} ds_ij q_i;  dv_j = Σ_{i keeps j} p_ij dout_i
// dk/dv are a scatter seen from the queries; here they are a gather, one
// thread per key: the workgroup stages the kept lists, ds and p of 8 queries
// at a time with their q and dout rows, and each key sums what those queries
// kept of it, in query order (deterministic, no atomics). Known cost:
// O(L²·K / 4) index compares in topk_backward_key (vec4 compares).

struct Params {
    batch: u32,
    seq: u32,
    d: u32,
    head_dim: u32,
    head_start: u32,
    head_count: u32,
    keep: u32,     // K = min(topk, seq)
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;          // (B·L, 3d) q, k after RoPE
@group(0) @binding(2) var<storage, read_write> out: array<f32>;    // (B·L, d)
@group(0) @binding(3) var<storage, read_write> kept: array<u32>;   // (B, head_count, L, K) key indices, best first
@group(0) @binding(4) var<storage, read_write> prob: array<f32>;   // (B, head_count, L, K)
@group(0) @binding(5) var<storage, read> dout: array<f32>;         // (B·L, d)
@group(0) @binding(6) var<storage, read_write> dscore: array<f32>; // (B, head_count, L, K) ds
@group(0) @binding(7) var<storage, read_write> dqkv: array<f32>;   // (B·L, 3d)
// qkv and dout again, as quads: bound (to the same buffers) and read only
// where QUAD_LOADS.
@group(0) @binding(8) var<storage, read> qkv_quads: array<vec4<f32>>;   // (B·L, 3d / 4)
@group(0) @binding(9) var<storage, read> dout_quads: array<vec4<f32>>;  // (B·L, d / 4)

const TOPK_MAX: u32 = 16u;      // a multiple of 4
const HEAD_DIM_MAX: u32 = 64u;  // a multiple of 4
const VECS: u32 = HEAD_DIM_MAX / 4u;
const SLOTS: u32 = TOPK_MAX / 4u;
const ROWS: u32 = 64u;          // queries (or keys) per workgroup
const KEY_TILE: u32 = 16u;      // keys staged at a time (forward)
const QUERY_TILE: u32 = 8u;     // queries staged at a time (key backward)
const NO_KEY: u32 = 0xffffffffu;
// Where head_dim and d are multiples of 4 (every head vector then starts on
// a quad), head vectors are read a quad at a time: the gathers of the kept
// keys' rows are a quarter of the loads.
const QUAD_LOADS: bool = false;

// Forward: k of KEY_TILE keys. Key backward: q and dout of QUERY_TILE queries.
var<workgroup> tile_x: array<vec4<f32>, KEY_TILE * VECS>;
var<workgroup> tile_y: array<vec4<f32>, QUERY_TILE * VECS>;
// Key backward: the staged queries' kept lists (NO_KEY past K), ds and p.
var<workgroup> tile_kept: array<vec4<u32>, QUERY_TILE * SLOTS>;
var<workgroup> tile_ds: array<vec4<f32>, QUERY_TILE * SLOTS>;
var<workgroup> tile_p: array<vec4<f32>, QUERY_TILE * SLOTS>;

// Column 0 of handled head h in row (b, i) of qkv's `part` (0 q, 1 k, 2 v).
fn qkv_at(b: u32, i: u32, part: u32, h: u32) -> u32 {
    return (b * p.seq + i) * 3u * p.d + part * p.d + (p.head_start + h) * p.head_dim;
}

// Column 0 of handled head h in row (b, i) of out / dout.
fn out_at(b: u32, i: u32, h: u32) -> u32 {
    return (b * p.seq + i) * p.d + (p.head_start + h) * p.head_dim;
}

fn slot(b: u32, h: u32, i: u32, m: u32) -> u32 {
    return ((b * p.head_count + h) * p.seq + i) * p.keep + m;
}

// Element c of a head vector of qkv (dout) starting at `start`, 0 past
// head_dim. The load is unconditional (a place past the buffer's end is
// clamped by WebGPU's bounds checks), so a constant loop has no branch.
fn qkv_element(start: u32, c: u32) -> f32 {
    return select(0.0, qkv[start + c], c < p.head_dim);
}

fn dout_element(start: u32, c: u32) -> f32 {
    return select(0.0, dout[start + c], c < p.head_dim);
}

// Quad n of the head vector of qkv (dout) starting at `start`.
fn qkv_quad(start: u32, n: u32) -> vec4<f32> {
    let c = 4u * n;
    if (QUAD_LOADS) {
        return select(vec4<f32>(), qkv_quads[start / 4u + n], c < p.head_dim);
    }
    return vec4<f32>(qkv_element(start, c), qkv_element(start, c + 1u), qkv_element(start, c + 2u), qkv_element(start, c + 3u));
}

fn dout_quad(start: u32, n: u32) -> vec4<f32> {
    let c = 4u * n;
    if (QUAD_LOADS) {
        return select(vec4<f32>(), dout_quads[start / 4u + n], c < p.head_dim);
    }
    return vec4<f32>(dout_element(start, c), dout_element(start, c + 1u), dout_element(start, c + 2u), dout_element(start, c + 3u));
}

fn qkv_head(start: u32) -> array<vec4<f32>, VECS> {
    var v: array<vec4<f32>, VECS>;
    // unroll
    for (var n = 0u; n < VECS; n++) {
        v[n] = qkv_quad(start, n);
    }
    return v;
}

// Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(ROWS)
fn topk_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let i = wid.x * ROWS + lid.x;
    let valid = i < p.seq;
    var q: array<vec4<f32>, VECS>;
    if (valid) {
        q = qkv_head(qkv_at(b, i, 0u, h));
    }
    // Scores best first; empty slots score below every finite score.
    var best: array<f32, TOPK_MAX>;
    var best_key: array<u32, TOPK_MAX>;
    // unroll
    for (var m = 0u; m < TOPK_MAX; m++) {
        best[m] = -3.4e38;
        best_key[m] = NO_KEY;
    }
    var poison = 0.0;
    for (var j0 = 0u; j0 < p.seq; j0 += KEY_TILE) {
        for (var e = lid.x; e < KEY_TILE * VECS; e += ROWS) {
            let j = min(j0 + e / VECS, p.seq - 1u);
            tile_x[e] = qkv_quad(qkv_at(b, j, 1u, h), e % VECS);
        }
        workgroupBarrier();
        if (valid) {
            let count = min(KEY_TILE, p.seq - j0);
            for (var jj = 0u; jj < count; jj++) {
                var s = 0.0;
                // unroll
                for (var n = 0u; n < VECS; n++) {
                    s += dot(q[n], tile_x[jj * VECS + n]);
                }
                s *= p.scale;
                poison = select(poison, s, s != s);
                // The list's last slot is at or below its K-th: a score not
                // above it changes nothing (and an equal one goes behind).
                if (s > best[TOPK_MAX - 1u]) {
                    // The new key enters before the first strictly lower
                    // score; from there every entry moves down one slot.
                    var key = j0 + jj;
                    var moving = false;
                    // unroll
                    for (var m = 0u; m < TOPK_MAX; m++) {
                        let here = best[m];
                        let here_key = best_key[m];
                        moving = moving || s > here;
                        best[m] = select(here, s, moving);
                        best_key[m] = select(here_key, key, moving);
                        s = select(s, here, moving);
                        key = select(key, here_key, moving);
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (!valid) {
        return;
    }
    // Copies for the loops below, whose indices are not constants: the
    // lists themselves stay constant-indexed, in registers.
    let ranked = best;
    let ranked_key = best_key;
    var total = 0.0;
    for (var m = 0u; m < p.keep; m++) {
        total += exp(ranked[m] - ranked[0]);
    }
    // A NaN score never enters the list (every comparison with it is false);
    // it is added to the output instead, so that it still shows there.
    var acc: array<vec4<f32>, VECS>;
    // unroll
    for (var n = 0u; n < VECS; n++) {
        acc[n] = vec4<f32>(poison);
    }
    for (var m = 0u; m < p.keep; m++) {
        let pm = exp(ranked[m] - ranked[0]) / total;
        let j = min(ranked_key[m], p.seq - 1u);
        kept[slot(b, h, i, m)] = j;
        prob[slot(b, h, i, m)] = pm;
        let v = qkv_head(qkv_at(b, j, 2u, h));
        // unroll
        for (var n = 0u; n < VECS; n++) {
            acc[n] += pm * v[n];
        }
    }
    let at = out_at(b, i, h);
    // unroll
    for (var n = 0u; n < VECS; n++) {
        // unroll
        for (var e = 0u; e < 4u; e++) {
            if (4u * n + e < p.head_dim) {
                out[at + 4u * n + e] = acc[n][e];
            }
        }
    }
}

// ds and dq, one thread per query. Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(ROWS)
fn topk_backward_query(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let i = wid.x * ROWS + lid.x;
    if (i >= p.seq) {
        return;
    }
    var g: array<vec4<f32>, VECS>;
    // unroll
    for (var n = 0u; n < VECS; n++) {
        g[n] = dout_quad(out_at(b, i, h), n);
    }
    // First dp_ij into dscore and Σ_m p_im dp_im; then ds_ij over it, and dq.
    var weighted = 0.0;
    for (var m = 0u; m < p.keep; m++) {
        let at_m = slot(b, h, i, m);
        let v = qkv_head(qkv_at(b, kept[at_m], 2u, h));
        var dp = 0.0;
        // unroll
        for (var n = 0u; n < VECS; n++) {
            dp += dot(g[n], v[n]);
        }
        dscore[at_m] = dp;
        weighted += prob[at_m] * dp;
    }
    var dq: array<vec4<f32>, VECS>;
    for (var m = 0u; m < p.keep; m++) {
        let at_m = slot(b, h, i, m);
        let ds = prob[at_m] * (dscore[at_m] - weighted);
        dscore[at_m] = ds;
        let k = qkv_head(qkv_at(b, kept[at_m], 1u, h));
        // unroll
        for (var n = 0u; n < VECS; n++) {
            dq[n] += ds * k[n];
        }
    }
    write_dqkv(qkv_at(b, i, 0u, h), dq, p.scale);
}

// scale · v into the head vector of dqkv starting at `start`.
fn write_dqkv(start: u32, v: array<vec4<f32>, VECS>, scale: f32) {
    // unroll
    for (var n = 0u; n < VECS; n++) {
        // unroll
        for (var e = 0u; e < 4u; e++) {
            if (4u * n + e < p.head_dim) {
                dqkv[start + 4u * n + e] = scale * v[n][e];
            }
        }
    }
}

// Stages the kept lists, ds, p, q and dout of queries i0 .. i0 + 7.
fn stage_queries(b: u32, h: u32, i0: u32, lid: u32) {
    for (var e = lid; e < QUERY_TILE * TOPK_MAX; e += ROWS) {
        let i = i0 + e / TOPK_MAX;
        let m = e % TOPK_MAX;
        let inside = i < p.seq && m < p.keep;
        let at_m = slot(b, h, min(i, p.seq - 1u), min(m, p.keep - 1u));
        tile_kept[e / 4u][e % 4u] = select(NO_KEY, kept[at_m], inside);
        tile_ds[e / 4u][e % 4u] = select(0.0, dscore[at_m], inside);
        tile_p[e / 4u][e % 4u] = select(0.0, prob[at_m], inside);
    }
    for (var e = lid; e < QUERY_TILE * VECS; e += ROWS) {
        let i = min(i0 + e / VECS, p.seq - 1u);
        tile_x[e] = qkv_quad(qkv_at(b, i, 0u, h), e % VECS);
        tile_y[e] = dout_quad(out_at(b, i, h), e % VECS);
    }
}

// dk and dv, one thread per key, gathering over every query's kept list.
// Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(ROWS)
fn topk_backward_key(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let j = wid.x * ROWS + lid.x;
    var dk: array<vec4<f32>, VECS>;
    var dv: array<vec4<f32>, VECS>;
    for (var i0 = 0u; i0 < p.seq; i0 += QUERY_TILE) {
        stage_queries(b, h, i0, lid.x);
        workgroupBarrier();
        // A query keeps a key at most once, so its ds and p for this key are
        // the sums of the matching slots (0 where it did not keep it).
        for (var ii = 0u; ii < QUERY_TILE; ii++) {
            var ds = 0.0;
            var pm = 0.0;
            // unroll
            for (var n = 0u; n < SLOTS; n++) {
                let hit = tile_kept[ii * SLOTS + n] == vec4<u32>(j);
                ds += dot(select(vec4<f32>(), tile_ds[ii * SLOTS + n], hit), vec4<f32>(1.0));
                pm += dot(select(vec4<f32>(), tile_p[ii * SLOTS + n], hit), vec4<f32>(1.0));
            }
            // unroll
            for (var n = 0u; n < VECS; n++) {
                dk[n] += ds * tile_x[ii * VECS + n];
                dv[n] += pm * tile_y[ii * VECS + n];
            }
        }
        workgroupBarrier();
    }
    if (j < p.seq) {
        write_dqkv(qkv_at(b, j, 1u, h), dk, p.scale);
        write_dqkv(qkv_at(b, j, 2u, h), dv, 1.0);
    }
}
