// Softmax attention, bidirectional, over keys with |i − j| ≤ half_window
// (`window` heads; `full` heads are the same with half_window ≥ L). Per
// (b, h, query i), s_ij = q_i·k_j · scale:
//   out_i = Σ_j softmax_j(s_ij) v_j, computed by a streaming (online) softmax,
//   so the L×L matrix never exists; lse_i = log Σ_j exp(s_ij) is kept.
// Backward, p_ij = exp(s_ij − lse_i) recomputed, D_i = dout_i·out_i:
//   ds_ij = p_ij (dout_i·v_j − D_i)
//   dq_i = scale Σ_j ds_ij k_j                 (softmax_backward_query, per query)
//   dk_j = scale Σ_i ds_ij q_i,  dv_j = Σ_i p_ij dout_i   (softmax_backward_key, per key)
// Both passes are gathers in a fixed order: deterministic, no atomics.
// Workgroups hold 64 queries (or keys) of one (b, h); the other side is
// staged through workgroup memory in tiles of 16 rows.
//
// Head vectors are HEAD_DIM_MAX / 4 vec4s, zero past head_dim, so every loop
// over a head vector runs a constant number of times and is unrolled. That
// keeps them in registers on GPUs, and it is what lets long sequences run on
// lavapipe (the CI adapter): Mesa's llvmpipe ends every loop of an invocation
// once all its loops together have run 65,535 iterations, silently. Per tile
// of 16 keys a thread now runs about 32 loop iterations, 8k at L = 4096;
// with loops over head_dim it was over 500k at head_dim 64.

struct Params {
    batch: u32,
    seq: u32,
    d: u32,
    head_dim: u32,
    head_start: u32,
    head_count: u32,
    half_window: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;         // (B·L, 3d) q, k after RoPE
@group(0) @binding(2) var<storage, read_write> out: array<f32>;   // (B·L, d)
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;   // (B, head_count, L)
@group(0) @binding(4) var<storage, read> dout: array<f32>;        // (B·L, d)
@group(0) @binding(5) var<storage, read_write> delta: array<f32>; // (B, head_count, L) D_i
@group(0) @binding(6) var<storage, read_write> dqkv: array<f32>;  // (B·L, 3d)

const HEAD_DIM_MAX: u32 = 64u;  // capacity, a multiple of 4; re-valued per head_dim
const VECS: u32 = HEAD_DIM_MAX / 4u;
const ROWS: u32 = 64u;
const TILE: u32 = 16u;

var<workgroup> tile_x: array<vec4<f32>, TILE * VECS>;  // k (query passes) or q (key pass)
var<workgroup> tile_y: array<vec4<f32>, TILE * VECS>;  // v (query passes) or dout (key pass)
var<workgroup> tile_lse: array<f32, TILE>;
var<workgroup> tile_delta: array<f32, TILE>;

// Column 0 of handled head h in row (b, i) of qkv's `part` (0 q, 1 k, 2 v).
fn qkv_at(b: u32, i: u32, part: u32, h: u32) -> u32 {
    return (b * p.seq + i) * 3u * p.d + part * p.d + (p.head_start + h) * p.head_dim;
}

// Column 0 of handled head h in row (b, i) of out / dout.
fn out_at(b: u32, i: u32, h: u32) -> u32 {
    return (b * p.seq + i) * p.d + (p.head_start + h) * p.head_dim;
}

fn row_at(b: u32, h: u32, i: u32) -> u32 {
    return (b * p.head_count + h) * p.seq + i;
}

// One head vector of qkv, zero past head_dim. Each load is at a clamped
// place inside the head, so the unrolled loops have no branches.
fn read_qkv(b: u32, i: u32, part: u32, h: u32) -> array<vec4<f32>, VECS> {
    var x: array<vec4<f32>, VECS>;
    let at = qkv_at(b, i, part, h);
    // unroll
    for (var n = 0u; n < VECS; n++) {
        // unroll
        for (var e = 0u; e < 4u; e++) {
            let c = 4u * n + e;
            x[n][e] = select(0.0, qkv[at + min(c, p.head_dim - 1u)], c < p.head_dim);
        }
    }
    return x;
}

// `scale · v` into the head vector of dqkv starting at `start`.
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

// The positions within the window of any of rows r0 .. r0 + ROWS − 1.
fn span_start(r0: u32) -> u32 {
    return select(0u, r0 - p.half_window, r0 > p.half_window);
}

fn span_end(r0: u32) -> u32 {
    return min(p.seq, r0 + ROWS + p.half_window);
}

fn in_window(i: u32, j: u32) -> bool {
    return max(i, j) - min(i, j) <= p.half_window;
}

// Stages k (part 1) and v (part 2) of keys j0 .. j0 + TILE − 1 into the
// tiles, zero past head_dim and past the sequence.
fn stage_keys(b: u32, h: u32, j0: u32, lid: u32) {
    for (var e = lid; e < TILE * HEAD_DIM_MAX; e += ROWS) {
        let j = j0 + e / HEAD_DIM_MAX;
        let c = e % HEAD_DIM_MAX;
        var k = 0.0;
        var v = 0.0;
        if (j < p.seq && c < p.head_dim) {
            k = qkv[qkv_at(b, j, 1u, h) + c];
            v = qkv[qkv_at(b, j, 2u, h) + c];
        }
        tile_x[e / 4u][e % 4u] = k;
        tile_y[e / 4u][e % 4u] = v;
    }
}

// Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(64)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let i0 = wid.x * ROWS;
    let i = i0 + lid.x;
    let valid = i < p.seq;
    var q: array<vec4<f32>, VECS>;
    if (valid) {
        q = read_qkv(b, i, 0u, h);
    }
    var acc: array<vec4<f32>, VECS>;
    var running_max = -3.0e38;
    var total = 0.0;
    let end = span_end(i0);
    for (var j0 = span_start(i0); j0 < end; j0 += TILE) {
        stage_keys(b, h, j0, lid.x);
        workgroupBarrier();
        if (valid) {
            for (var jj = 0u; jj < TILE; jj++) {
                let j = j0 + jj;
                if (j < end && in_window(i, j)) {
                    var s = 0.0;
                    // unroll
                    for (var n = 0u; n < VECS; n++) {
                        s += dot(q[n], tile_x[jj * VECS + n]);
                    }
                    s *= p.scale;
                    let new_max = max(running_max, s);
                    let rescale = exp(running_max - new_max);
                    let w = exp(s - new_max);
                    total = total * rescale + w;
                    // unroll
                    for (var n = 0u; n < VECS; n++) {
                        acc[n] = acc[n] * rescale + w * tile_y[jj * VECS + n];
                    }
                    running_max = new_max;
                }
            }
        }
        workgroupBarrier();
    }
    if (!valid) {
        return;
    }
    let at = out_at(b, i, h);
    // unroll
    for (var n = 0u; n < VECS; n++) {
        // unroll
        for (var e = 0u; e < 4u; e++) {
            if (4u * n + e < p.head_dim) {
                out[at + 4u * n + e] = acc[n][e] / total;
            }
        }
    }
    lse[row_at(b, h, i)] = running_max + log(total);
}

// D_i and dq_i, one thread per query. Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(64)
fn softmax_backward_query(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let i0 = wid.x * ROWS;
    let i = i0 + lid.x;
    let valid = i < p.seq;
    var q: array<vec4<f32>, VECS>;
    var g: array<vec4<f32>, VECS>;
    var big_d = 0.0;
    var row_lse = 0.0;
    if (valid) {
        q = read_qkv(b, i, 0u, h);
        let at = out_at(b, i, h);
        // unroll
        for (var n = 0u; n < VECS; n++) {
            // unroll
            for (var e = 0u; e < 4u; e++) {
                let c = min(4u * n + e, p.head_dim - 1u);
                let inside = 4u * n + e < p.head_dim;
                g[n][e] = select(0.0, dout[at + c], inside);
                big_d += select(0.0, dout[at + c] * out[at + c], inside);
            }
        }
        delta[row_at(b, h, i)] = big_d;
        row_lse = lse[row_at(b, h, i)];
    }
    var dq: array<vec4<f32>, VECS>;
    let end = span_end(i0);
    for (var j0 = span_start(i0); j0 < end; j0 += TILE) {
        stage_keys(b, h, j0, lid.x);
        workgroupBarrier();
        if (valid) {
            for (var jj = 0u; jj < TILE; jj++) {
                let j = j0 + jj;
                if (j < end && in_window(i, j)) {
                    var s = 0.0;
                    var dp = 0.0;
                    // unroll
                    for (var n = 0u; n < VECS; n++) {
                        s += dot(q[n], tile_x[jj * VECS + n]);
                        dp += dot(g[n], tile_y[jj * VECS + n]);
                    }
                    let ds = exp(s * p.scale - row_lse) * (dp - big_d);
                    // unroll
                    for (var n = 0u; n < VECS; n++) {
                        dq[n] += ds * tile_x[jj * VECS + n];
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (valid) {
        write_dqkv(qkv_at(b, i, 0u, h), dq, p.scale);
    }
}

// dk_j and dv_j, one thread per key, queries staged in tiles.
// Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(64)
fn softmax_backward_key(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let j0 = wid.x * ROWS;
    let j = j0 + lid.x;
    let valid = j < p.seq;
    var k: array<vec4<f32>, VECS>;
    var v: array<vec4<f32>, VECS>;
    if (valid) {
        k = read_qkv(b, j, 1u, h);
        v = read_qkv(b, j, 2u, h);
    }
    var dk: array<vec4<f32>, VECS>;
    var dv: array<vec4<f32>, VECS>;
    let end = span_end(j0);
    for (var i0 = span_start(j0); i0 < end; i0 += TILE) {
        for (var e = lid.x; e < TILE * HEAD_DIM_MAX; e += ROWS) {
            let i = i0 + e / HEAD_DIM_MAX;
            let c = e % HEAD_DIM_MAX;
            var q = 0.0;
            var g = 0.0;
            if (i < p.seq && c < p.head_dim) {
                q = qkv[qkv_at(b, i, 0u, h) + c];
                g = dout[out_at(b, i, h) + c];
            }
            tile_x[e / 4u][e % 4u] = q;
            tile_y[e / 4u][e % 4u] = g;
        }
        if (lid.x < TILE) {
            let i = i0 + lid.x;
            var l = 0.0;
            var dd = 0.0;
            if (i < p.seq) {
                l = lse[row_at(b, h, i)];
                dd = delta[row_at(b, h, i)];
            }
            tile_lse[lid.x] = l;
            tile_delta[lid.x] = dd;
        }
        workgroupBarrier();
        if (valid) {
            for (var ii = 0u; ii < TILE; ii++) {
                let i = i0 + ii;
                if (i < end && in_window(i, j)) {
                    var s = 0.0;
                    var dp = 0.0;
                    // unroll
                    for (var n = 0u; n < VECS; n++) {
                        s += dot(tile_x[ii * VECS + n], k[n]);
                        dp += dot(tile_y[ii * VECS + n], v[n]);
                    }
                    let pr = exp(s * p.scale - tile_lse[ii]);
                    let ds = pr * (dp - tile_delta[ii]);
                    // unroll
                    for (var n = 0u; n < VECS; n++) {
                        dk[n] += ds * tile_x[ii * VECS + n];
                        dv[n] += pr * tile_y[ii * VECS + n];
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (valid) {
        write_dqkv(qkv_at(b, j, 1u, h), dk, p.scale);
        write_dqkv(qkv_at(b, j, 2u, h), dv, 1.0);
    }
}
