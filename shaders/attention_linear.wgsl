// Linear attention (non-causal), phi(x) = elu(x) + 1, for the handled heads,
// per (batch b, head h):
//   S = Σ_j phi(k_j) v_jᵀ (dh × dh),  z = Σ_j phi(k_j)
//   out_i = phi(q_i)ᵀ S / den_i,       den_i = phi(q_i)·z + eps
// O(L·dh²) time, O(dh²) state: the L×L matrix never exists.
//
// Backward, with dnum_i = dout_i/den_i and dden_i = −(dout_i·out_i)/den_i:
//   dphi(q_i) = S dnum_i + z dden_i
//   dS = Σ_i phi(q_i) dnum_iᵀ,  dz = Σ_i phi(q_i) dden_i
//   dphi(k_j) = dS v_j + dz,    dv_j = dSᵀ phi(k_j)
//   and through phi: phi'(x) = 1 if x > 0 else exp(x).
// Passes: linear_state (S, z) → linear_output; backward: linear_row_grads
// (den, dden per query) → linear_query_grad (dq) and linear_state_grad
// (dS, dz) → linear_key_value_grad (dk, dv). Sums over the sequence run in
// order inside one workgroup per (b, h): deterministic.

struct Params {
    batch: u32,
    seq: u32,
    d: u32,
    head_dim: u32,
    head_start: u32,
    head_count: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;            // (B·L, 3d)
@group(0) @binding(2) var<storage, read_write> state: array<f32>;    // (B, head_count, dh, dh) S, or dS
@group(0) @binding(3) var<storage, read_write> norm_z: array<f32>;   // (B, head_count, dh) z, or dz
@group(0) @binding(4) var<storage, read_write> out: array<f32>;      // (B·L, d) forward output
@group(0) @binding(5) var<storage, read> dout: array<f32>;           // (B·L, d)
@group(0) @binding(6) var<storage, read_write> row_grads: array<f32>; // (B, head_count, L, 2): den, dden
@group(0) @binding(7) var<storage, read_write> dqkv: array<f32>;     // (B·L, 3d)
@group(0) @binding(8) var<storage, read> saved_state: array<f32>;    // (B, head_count, dh, dh) S (backward)
@group(0) @binding(9) var<storage, read> saved_z: array<f32>;        // (B, head_count, dh) z (backward)

const WG: u32 = 256u;
const CHUNK: u32 = 16u;          // sequence positions staged per step
// Re-valued per variant by the Rust side to the smallest of 16/32/64 that
// holds head_dim; the state kernels' tiles and loops are sized by it, so
// their loops run a constant number of times.
const HEAD_DIM_MAX: u32 = 64u;
const QUADS: u32 = HEAD_DIM_MAX / 4u;
// Each thread of a state kernel owns quads (row a, columns 4n..4n+3) of the
// dh × dh state: column quad n = lid % QUADS, rows lid / QUADS + m·ROW_STEP.
const ROW_STEP: u32 = WG / QUADS;
const ENTRIES: u32 = (HEAD_DIM_MAX * QUADS + WG - 1u) / WG;

var<workgroup> tile_a: array<f32, CHUNK * HEAD_DIM_MAX>;  // (CHUNK, dh) phi(k) or phi(q), 0 past dh
var<workgroup> tile_b: array<vec4<f32>, CHUNK * QUADS>;  // (CHUNK, dh / 4) v or dnum, 0 past dh
var<workgroup> tile_s: array<f32, CHUNK>;                // (CHUNK) dden (state grad)

// exp only ever sees x ≤ 0 (select evaluates both arms; WGSL need not
// honour an infinity from exp of a large x).
fn phi(x: f32) -> f32 {
    return select(exp(min(x, 0.0)), x + 1.0, x > 0.0);
}

fn phi_grad(x: f32) -> f32 {
    return select(exp(min(x, 0.0)), 1.0, x > 0.0);
}

// Index of (b, i, part, head-relative h, c) in qkv.
fn at(b: u32, i: u32, part: u32, h: u32, c: u32) -> u32 {
    return (b * p.seq + i) * 3u * p.d + part * p.d + (p.head_start + h) * p.head_dim + c;
}

fn out_at(b: u32, i: u32, h: u32, c: u32) -> u32 {
    return (b * p.seq + i) * p.d + (p.head_start + h) * p.head_dim + c;
}

// Row a of the state a thread's m-th quad lies in (past dh for idle quads).
fn owned_row(lid: u32, m: u32) -> u32 {
    return lid / QUADS + m * ROW_STEP;
}

// Adds one staged chunk into the thread's state quads:
// acc[m] += tile_a[j][a]·tile_b[j][quad]; z (threads lid < dh: entry lid)
// += tile_a[j][lid]·(1 or tile_s[j]).
fn accumulate_chunk(lid: u32, count: u32, weighted: bool, acc: ptr<function, array<vec4<f32>, ENTRIES>>, z: ptr<function, f32>) {
    let quad = lid % QUADS;
    let z_row = min(lid, HEAD_DIM_MAX - 1u);
    for (var jj = 0u; jj < count; jj++) {
        let right = tile_b[jj * QUADS + quad];
        // unroll
        for (var m = 0u; m < ENTRIES; m++) {
            let a = min(owned_row(lid, m), HEAD_DIM_MAX - 1u);
            (*acc)[m] += tile_a[jj * HEAD_DIM_MAX + a] * right;
        }
        *z += tile_a[jj * HEAD_DIM_MAX + z_row] * select(1.0, tile_s[jj], weighted);
    }
}

fn store_state(b: u32, h: u32, lid: u32, acc: ptr<function, array<vec4<f32>, ENTRIES>>, z: f32) {
    let dh = p.head_dim;
    let base = (b * p.head_count + h) * dh;
    let quad = lid % QUADS;
    // unroll
    for (var m = 0u; m < ENTRIES; m++) {
        let a = owned_row(lid, m);
        // unroll
        for (var c = 0u; c < 4u; c++) {
            let e = 4u * quad + c;
            if (a < dh && e < dh) {
                state[(base + a) * dh + e] = (*acc)[m][c];
            }
        }
    }
    if (lid < dh) {
        norm_z[base + lid] = z;
    }
}

// Stages phi of q (part 0) or k (part 1) at positions j0.. into tile_a,
// zero past dh and past the sequence.
fn stage_left(b: u32, h: u32, j0: u32, lid: u32, part: u32) {
    let dh = p.head_dim;
    for (var e = lid; e < CHUNK * HEAD_DIM_MAX; e += WG) {
        let j = j0 + e / HEAD_DIM_MAX;
        let c = e % HEAD_DIM_MAX;
        let x = qkv[at(b, min(j, p.seq - 1u), part, h, min(c, dh - 1u))];
        tile_a[e] = select(0.0, phi(x), j < p.seq && c < dh);
    }
}

// Where tile_b's entry e reads from: its position (clamped into the
// sequence), the quad's first column, and whether each of the quad's
// columns lies inside the head and the sequence.
struct QuadAt {
    row: u32,
    first: u32,
    inside: vec4<bool>,
}

fn quad_at(j0: u32, e: u32) -> QuadAt {
    let j = j0 + e / QUADS;
    let first = 4u * (e % QUADS);
    let cols = vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u);
    return QuadAt(min(j, p.seq - 1u), first, (cols < vec4<u32>(p.head_dim)) & vec4<bool>(j < p.seq));
}

// S and z, one workgroup per (b, h), positions staged CHUNK at a time.
// Grid: (head_count, B, 1).
@compute @workgroup_size(256)
fn linear_state(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc: array<vec4<f32>, ENTRIES>;
    var z = 0.0;
    for (var j0 = 0u; j0 < p.seq; j0 += CHUNK) {
        stage_left(wid.y, wid.x, j0, lid.x, 1u);
        for (var e = lid.x; e < CHUNK * QUADS; e += WG) {
            let q = quad_at(j0, e);
            let last = p.head_dim - 1u;
            var v = vec4<f32>(0.0);
            // unroll
            for (var c = 0u; c < 4u; c++) {
                v[c] = qkv[at(wid.y, q.row, 2u, wid.x, min(q.first + c, last))];
            }
            tile_b[e] = select(vec4<f32>(0.0), v, q.inside);
        }
        workgroupBarrier();
        accumulate_chunk(lid.x, min(CHUNK, p.seq - j0), false, &acc, &z);
        workgroupBarrier();
    }
    store_state(wid.y, wid.x, lid.x, &acc, z);
}

// One thread per output element (b, i, h, e). Grid: grid_1d(ceil(B·L·head_count·dh / 256)).
@compute @workgroup_size(256)
fn linear_output(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let dh = p.head_dim;
    let idx = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (idx >= p.batch * p.seq * p.head_count * dh) {
        return;
    }
    let e = idx % dh;
    let h = (idx / dh) % p.head_count;
    let row = idx / (dh * p.head_count);
    let b = row / p.seq;
    let i = row % p.seq;
    let base = (b * p.head_count + h) * dh;
    var num = 0.0;
    var den = 0.0;
    for (var a = 0u; a < dh; a++) {
        let f = phi(qkv[at(b, i, 0u, h, a)]);
        num += f * saved_state[(base + a) * dh + e];
        den += f * saved_z[base + a];
    }
    out[out_at(b, i, h, e)] = num / (den + p.eps);
}

// One thread per (b, h, i): den_i and dden_i. Grid: grid_1d(ceil(B·head_count·L / 256)).
@compute @workgroup_size(256)
fn linear_row_grads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let dh = p.head_dim;
    let idx = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (idx >= p.batch * p.head_count * p.seq) {
        return;
    }
    let i = idx % p.seq;
    let h = (idx / p.seq) % p.head_count;
    let b = idx / (p.seq * p.head_count);
    let base = (b * p.head_count + h) * dh;
    // den summed in the same order as linear_output, so both see the same value.
    var den = 0.0;
    var dout_out = 0.0;
    for (var a = 0u; a < dh; a++) {
        den += phi(qkv[at(b, i, 0u, h, a)]) * saved_z[base + a];
        dout_out += dout[out_at(b, i, h, a)] * out[out_at(b, i, h, a)];
    }
    den += p.eps;
    row_grads[idx * 2u] = den;
    row_grads[idx * 2u + 1u] = -dout_out / den;
}

// The per-position gradient kernels: a workgroup per (POSITIONS positions,
// h, b) stages the (b, h) state transposed, tile_t[e·dh + a] = M[a, e], so
// that the threads of one position, one per a, read neighbouring words of
// it (read from memory, each thread would walk its own row: a cache line
// per thread per step). WG / HEAD_DIM_MAX positions run side by side.
const POSITIONS: u32 = 64u;
var<workgroup> tile_t: array<f32, HEAD_DIM_MAX * HEAD_DIM_MAX>;

// Positions of this workgroup's chunk, and the sum order over e, are those
// of a thread per (b, i, h, a): the results do not depend on the layout.
// dq. Grid: (ceil(L / POSITIONS), head_count, B).
@compute @workgroup_size(256)
fn linear_query_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let dh = p.head_dim;
    let b = wid.z;
    let h = wid.y;
    let base = (b * p.head_count + h) * dh;
    for (var t = lid.x; t < dh * dh; t += WG) {
        tile_t[t] = saved_state[(base + t % dh) * dh + t / dh];
    }
    workgroupBarrier();
    let a = lid.x % HEAD_DIM_MAX;
    if (a >= dh) {
        return;
    }
    let z_a = saved_z[base + a];
    let end = min(p.seq, (wid.x + 1u) * POSITIONS);
    for (var i = wid.x * POSITIONS + lid.x / HEAD_DIM_MAX; i < end; i += WG / HEAD_DIM_MAX) {
        let rg = ((b * p.head_count + h) * p.seq + i) * 2u;
        let den = row_grads[rg];
        var g = z_a * row_grads[rg + 1u];
        for (var e = 0u; e < dh; e++) {
            g += tile_t[e * dh + a] * dout[out_at(b, i, h, e)] / den;
        }
        let q = qkv[at(b, i, 0u, h, a)];
        dqkv[at(b, i, 0u, h, a)] = g * phi_grad(q);
    }
}

// dS and dz, one workgroup per (b, h), like linear_state with phi(q) and
// dnum = dout/den in place of phi(k) and v. Grid: (head_count, B, 1).
@compute @workgroup_size(256)
fn linear_state_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y;
    let h = wid.x;
    var acc: array<vec4<f32>, ENTRIES>;
    var z = 0.0;
    for (var j0 = 0u; j0 < p.seq; j0 += CHUNK) {
        stage_left(b, h, j0, lid.x, 0u);
        for (var e = lid.x; e < CHUNK * QUADS; e += WG) {
            let q = quad_at(j0, e);
            let last = p.head_dim - 1u;
            var dnum = vec4<f32>(0.0);
            // unroll
            for (var c = 0u; c < 4u; c++) {
                dnum[c] = dout[out_at(b, q.row, h, min(q.first + c, last))];
            }
            dnum /= row_grads[((b * p.head_count + h) * p.seq + q.row) * 2u];
            tile_b[e] = select(vec4<f32>(0.0), dnum, q.inside);
        }
        if (lid.x < CHUNK) {
            let j = min(j0 + lid.x, p.seq - 1u);
            let dden = row_grads[((b * p.head_count + h) * p.seq + j) * 2u + 1u];
            tile_s[lid.x] = select(0.0, dden, j0 + lid.x < p.seq);
        }
        workgroupBarrier();
        accumulate_chunk(lid.x, min(CHUNK, p.seq - j0), true, &acc, &z);
        workgroupBarrier();
    }
    store_state(b, h, lid.x, &acc, z);
}

// dk and dv (dS staged transposed for dk; dv reads dS by columns, which
// neighbouring threads share). Grid: (ceil(L / POSITIONS), head_count, B).
@compute @workgroup_size(256)
fn linear_key_value_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let dh = p.head_dim;
    let b = wid.z;
    let h = wid.y;
    let base = (b * p.head_count + h) * dh;
    // dS and dz were written into `state` / `norm_z` by linear_state_grad.
    for (var t = lid.x; t < dh * dh; t += WG) {
        tile_t[t] = state[(base + t % dh) * dh + t / dh];
    }
    workgroupBarrier();
    let c = lid.x % HEAD_DIM_MAX;
    if (c >= dh) {
        return;
    }
    let dz_c = norm_z[base + c];
    let end = min(p.seq, (wid.x + 1u) * POSITIONS);
    for (var j = wid.x * POSITIONS + lid.x / HEAD_DIM_MAX; j < end; j += WG / HEAD_DIM_MAX) {
        var dk = dz_c;
        var dv = 0.0;
        for (var e = 0u; e < dh; e++) {
            dk += tile_t[e * dh + c] * qkv[at(b, j, 2u, h, e)];
            dv += state[(base + e) * dh + c] * phi(qkv[at(b, j, 1u, h, e)]);
        }
        let k = qkv[at(b, j, 1u, h, c)];
        dqkv[at(b, j, 1u, h, c)] = dk * phi_grad(k);
        dqkv[at(b, j, 2u, h, c)] = dv;
    }
}
