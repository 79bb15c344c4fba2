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

const HEAD_DIM_MAX: u32 = 64u;
const ROWS: u32 = 64u;
const TILE: u32 = 16u;

var<workgroup> tile_x: array<f32, TILE * HEAD_DIM_MAX>;  // k (query passes) or q (key pass)
var<workgroup> tile_y: array<f32, TILE * HEAD_DIM_MAX>;  // v (query passes) or dout (key pass)
var<workgroup> tile_lse: array<f32, TILE>;
var<workgroup> tile_delta: array<f32, TILE>;

fn at(b: u32, i: u32, part: u32, h: u32, c: u32) -> u32 {
    return (b * p.seq + i) * 3u * p.d + part * p.d + (p.head_start + h) * p.head_dim + c;
}

fn out_at(b: u32, i: u32, h: u32, c: u32) -> u32 {
    return (b * p.seq + i) * p.d + (p.head_start + h) * p.head_dim + c;
}

fn row_at(b: u32, h: u32, i: u32) -> u32 {
    return (b * p.head_count + h) * p.seq + i;
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

// Stages k (part 1) and v (part 2) of keys j0 .. j0 + TILE into the tiles.
fn stage_keys(b: u32, h: u32, j0: u32, lid: u32) {
    let dh = p.head_dim;
    for (var e = lid; e < TILE * dh; e += ROWS) {
        let j = j0 + e / dh;
        var k = 0.0;
        var v = 0.0;
        if (j < p.seq) {
            k = qkv[at(b, j, 1u, h, e % dh)];
            v = qkv[at(b, j, 2u, h, e % dh)];
        }
        tile_x[(e / dh) * HEAD_DIM_MAX + e % dh] = k;
        tile_y[(e / dh) * HEAD_DIM_MAX + e % dh] = v;
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
    let dh = p.head_dim;
    var q: array<f32, HEAD_DIM_MAX>;
    if (valid) {
        for (var c = 0u; c < dh; c++) {
            q[c] = qkv[at(b, i, 0u, h, c)];
        }
    }
    var acc: array<f32, HEAD_DIM_MAX>;
    var running_max = -3.0e38;
    var total = 0.0;
    let end = span_end(i0);
    for (var j0 = span_start(i0); j0 < end; j0 += TILE) {
        stage_keys(b, h, j0, lid.x);
        workgroupBarrier();
        if (valid) {
            for (var jj = 0u; jj < min(TILE, end - j0); jj++) {
                let j = j0 + jj;
                if (in_window(i, j)) {
                    var s = 0.0;
                    for (var c = 0u; c < dh; c++) {
                        s += q[c] * tile_x[jj * HEAD_DIM_MAX + c];
                    }
                    s *= p.scale;
                    let new_max = max(running_max, s);
                    let rescale = exp(running_max - new_max);
                    let w = exp(s - new_max);
                    total = total * rescale + w;
                    for (var c = 0u; c < dh; c++) {
                        acc[c] = acc[c] * rescale + w * tile_y[jj * HEAD_DIM_MAX + c];
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
    for (var c = 0u; c < dh; c++) {
        out[out_at(b, i, h, c)] = acc[c] / total;
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
    let dh = p.head_dim;
    var q: array<f32, HEAD_DIM_MAX>;
    var g: array<f32, HEAD_DIM_MAX>;
    var big_d = 0.0;
    var row_lse = 0.0;
    if (valid) {
        for (var c = 0u; c < dh; c++) {
            q[c] = qkv[at(b, i, 0u, h, c)];
            g[c] = dout[out_at(b, i, h, c)];
            big_d += g[c] * out[out_at(b, i, h, c)];
        }
        delta[row_at(b, h, i)] = big_d;
        row_lse = lse[row_at(b, h, i)];
    }
    var dq: array<f32, HEAD_DIM_MAX>;
    let end = span_end(i0);
    for (var j0 = span_start(i0); j0 < end; j0 += TILE) {
        stage_keys(b, h, j0, lid.x);
        workgroupBarrier();
        if (valid) {
            for (var jj = 0u; jj < min(TILE, end - j0); jj++) {
                if (in_window(i, j0 + jj)) {
                    var s = 0.0;
                    var dp = 0.0;
                    for (var c = 0u; c < dh; c++) {
                        s += q[c] * tile_x[jj * HEAD_DIM_MAX + c];
                        dp += g[c] * tile_y[jj * HEAD_DIM_MAX + c];
                    }
                    let ds = exp(s * p.scale - row_lse) * (dp - big_d);
                    for (var c = 0u; c < dh; c++) {
                        dq[c] += ds * tile_x[jj * HEAD_DIM_MAX + c];
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (valid) {
        for (var c = 0u; c < dh; c++) {
            dqkv[at(b, i, 0u, h, c)] = p.scale * dq[c];
        }
    }
}

// dk_j and dv_j, one thread per key, queries staged in tiles.
// Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(64)
fn softmax_backward_key(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let j0_keys = wid.x * ROWS;
    let j = j0_keys + lid.x;
    let valid = j < p.seq;
    let dh = p.head_dim;
    var k: array<f32, HEAD_DIM_MAX>;
    var v: array<f32, HEAD_DIM_MAX>;
    if (valid) {
        for (var c = 0u; c < dh; c++) {
            k[c] = qkv[at(b, j, 1u, h, c)];
            v[c] = qkv[at(b, j, 2u, h, c)];
        }
    }
    var dk: array<f32, HEAD_DIM_MAX>;
    var dv: array<f32, HEAD_DIM_MAX>;
    let end = span_end(j0_keys);
    for (var i0 = span_start(j0_keys); i0 < end; i0 += TILE) {
        for (var e = lid.x; e < TILE * dh; e += ROWS) {
            let i = i0 + e / dh;
            var q = 0.0;
            var g = 0.0;
            if (i < p.seq) {
                q = qkv[at(b, i, 0u, h, e % dh)];
                g = dout[out_at(b, i, h, e % dh)];
            }
            tile_x[(e / dh) * HEAD_DIM_MAX + e % dh] = q;
            tile_y[(e / dh) * HEAD_DIM_MAX + e % dh] = g;
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
            for (var ii = 0u; ii < min(TILE, end - i0); ii++) {
                if (in_window(i0 + ii, j)) {
                    var s = 0.0;
                    var dp = 0.0;
                    for (var c = 0u; c < dh; c++) {
                        s += tile_x[ii * HEAD_DIM_MAX + c] * k[c];
                        dp += tile_y[ii * HEAD_DIM_MAX + c] * v[c];
                    }
                    let pr = exp(s * p.scale - tile_lse[ii]);
                    let ds = pr * (dp - tile_delta[ii]);
                    for (var c = 0u; c < dh; c++) {
                        dk[c] += ds * tile_x[ii * HEAD_DIM_MAX + c];
                        dv[c] += pr * tile_y[ii * HEAD_DIM_MAX + c];
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (valid) {
        for (var c = 0u; c < dh; c++) {
            dqkv[at(b, j, 1u, h, c)] = p.scale * dk[c];
            dqkv[at(b, j, 2u, h, c)] = dv[c];
        }
    }
}
