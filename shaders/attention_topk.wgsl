// Top-k attention, bidirectional, for the handled heads. Per (b, h, query i):
//   s_ij = q_i·k_j · scale over all keys j; keep the K = min(topk, L) largest
//   (ties: the lower key index wins); p = softmax over the kept scores;
//   out_i = Σ_kept p_ij v_j.
// The forward streams over keys, keeping the running top-K in registers (a
// sorted private array): the L×L score matrix never exists; what is stored
// for the backward is O(L·K): the kept indices and their probabilities.
// Ties are exact: the list is sorted by (score descending, key ascending) and
// keys arrive in ascending order, so a new key goes behind every equal score,
// and once the list is full it enters only with a score strictly greater than
// the last one. The kept set is therefore the first K keys of that order.
// TOPK_MAX (the register capacity) and HEAD_DIM_MAX are re-valued per variant
// by the Rust side to the smallest of 8/16/32/64 (16/32/64) that fits.
//
// Backward (only through kept entries):
//   dp_ij = dout_i·v_j;  ds_ij = p_ij (dp_ij − Σ_m p_im dp_im)
//   dq_i = scale Σ_kept ds_ij k_j
//   dk_j = scale Σ_{i keeps j} ds_ij q_i;  dv_j = Σ_{i keeps j} p_ij dout_i
// dk/dv are a scatter seen from the queries; here they are a gather, one
// thread per key scanning every query's kept list in order (deterministic).
// Known cost: O(L²·K) index compares in topk_backward_key.
//
// Workgroups hold 64 queries (or keys) of one (b, h); keys are staged through
// workgroup memory in tiles shared by the 64 queries.

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

const TOPK_MAX: u32 = 16u;
const HEAD_DIM_MAX: u32 = 64u;
const GROUP_ROWS: u32 = 64u; // queries (or keys) per workgroup
const KEY_TILE: u32 = 32u;

var<workgroup> k_tile: array<f32, KEY_TILE * HEAD_DIM_MAX>;  // (KEY_TILE, HEAD_DIM_MAX)

fn at(b: u32, i: u32, part: u32, h: u32, c: u32) -> u32 {
    return (b * p.seq + i) * 3u * p.d + part * p.d + (p.head_start + h) * p.head_dim + c;
}

fn out_at(b: u32, i: u32, h: u32, c: u32) -> u32 {
    return (b * p.seq + i) * p.d + (p.head_start + h) * p.head_dim + c;
}

fn slot(b: u32, h: u32, i: u32, m: u32) -> u32 {
    return ((b * p.head_count + h) * p.seq + i) * p.keep + m;
}

// Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(GROUP_ROWS)
fn topk_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let i = wid.x * GROUP_ROWS + lid.x;
    let valid = i < p.seq;
    let dh = p.head_dim;
    var q: array<f32, HEAD_DIM_MAX>;
    if (valid) {
        for (var c = 0u; c < dh; c++) {
            q[c] = qkv[at(b, i, 0u, h, c)];
        }
    }
    var best: array<f32, TOPK_MAX>;     // scores, best first
    var best_key: array<u32, TOPK_MAX>; // their keys
    var filled = 0u;
    let last = p.keep - 1u;
    for (var j0 = 0u; j0 < p.seq; j0 += KEY_TILE) {
        for (var e = lid.x; e < KEY_TILE * dh; e += GROUP_ROWS) {
            let j = j0 + e / dh;
            var k = 0.0;
            if (j < p.seq) {
                k = qkv[at(b, j, 1u, h, e % dh)];
            }
            k_tile[(e / dh) * HEAD_DIM_MAX + e % dh] = k;
        }
        workgroupBarrier();
        if (valid) {
            let count = min(KEY_TILE, p.seq - j0);
            for (var jj = 0u; jj < count; jj++) {
                var s = 0.0;
                for (var c = 0u; c < dh; c++) {
                    s += q[c] * k_tile[jj * HEAD_DIM_MAX + c];
                }
                s *= p.scale;
                // Strictly greater: an equal later key never displaces an earlier one.
                if (filled < p.keep || s > best[last]) {
                    // Start at the first free slot, or at the last one (its key drops
                    // out), and move up past strictly smaller scores only.
                    var pos = min(filled, last);
                    while (pos > 0u && best[pos - 1u] < s) {
                        best[pos] = best[pos - 1u];
                        best_key[pos] = best_key[pos - 1u];
                        pos -= 1u;
                    }
                    best[pos] = s;
                    best_key[pos] = j0 + jj;
                    filled = min(filled + 1u, p.keep);
                }
            }
        }
        workgroupBarrier();
    }
    if (!valid) {
        return;
    }
    var total = 0.0;
    for (var m = 0u; m < p.keep; m++) {
        total += exp(best[m] - best[0]);
    }
    var acc: array<f32, HEAD_DIM_MAX>;
    for (var m = 0u; m < p.keep; m++) {
        let pm = exp(best[m] - best[0]) / total;
        let j = best_key[m];
        kept[slot(b, h, i, m)] = j;
        prob[slot(b, h, i, m)] = pm;
        for (var c = 0u; c < dh; c++) {
            acc[c] += pm * qkv[at(b, j, 2u, h, c)];
        }
    }
    for (var c = 0u; c < dh; c++) {
        out[out_at(b, i, h, c)] = acc[c];
    }
}

// ds and dq, one thread per query. Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(GROUP_ROWS)
fn topk_backward_query(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let i = wid.x * GROUP_ROWS + lid.x;
    if (i >= p.seq) {
        return;
    }
    let dh = p.head_dim;
    var g: array<f32, HEAD_DIM_MAX>;
    for (var c = 0u; c < dh; c++) {
        g[c] = dout[out_at(b, i, h, c)];
    }
    // First dp_ij into dscore and Σ_m p_im dp_im; then ds_ij over it, and dq.
    var weighted = 0.0;
    for (var m = 0u; m < p.keep; m++) {
        let j = kept[slot(b, h, i, m)];
        var dp = 0.0;
        for (var c = 0u; c < dh; c++) {
            dp += g[c] * qkv[at(b, j, 2u, h, c)];
        }
        dscore[slot(b, h, i, m)] = dp;
        weighted += prob[slot(b, h, i, m)] * dp;
    }
    var dq: array<f32, HEAD_DIM_MAX>;
    for (var m = 0u; m < p.keep; m++) {
        let at_m = slot(b, h, i, m);
        let ds = prob[at_m] * (dscore[at_m] - weighted);
        dscore[at_m] = ds;
        let j = kept[at_m];
        for (var c = 0u; c < dh; c++) {
            dq[c] += ds * qkv[at(b, j, 1u, h, c)];
        }
    }
    for (var c = 0u; c < dh; c++) {
        dqkv[at(b, i, 0u, h, c)] = p.scale * dq[c];
    }
}

// dk and dv, one thread per key, gathering over every query's kept list.
// Grid: (ceil(L / 64), head_count, B).
@compute @workgroup_size(GROUP_ROWS)
fn topk_backward_key(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let h = wid.y;
    let j = wid.x * GROUP_ROWS + lid.x;
    if (j >= p.seq) {
        return;
    }
    let dh = p.head_dim;
    var dk: array<f32, HEAD_DIM_MAX>;
    var dv: array<f32, HEAD_DIM_MAX>;
    for (var i = 0u; i < p.seq; i++) {
        for (var m = 0u; m < p.keep; m++) {
            let at_m = slot(b, h, i, m);
            if (kept[at_m] == j) {
                let ds = dscore[at_m];
                let pm = prob[at_m];
                for (var c = 0u; c < dh; c++) {
                    dk[c] += ds * qkv[at(b, i, 0u, h, c)];
                    dv[c] += pm * dout[out_at(b, i, h, c)];
                }
            }
        }
    }
    for (var c = 0u; c < dh; c++) {
        dqkv[at(b, j, 1u, h, c)] = p.scale * dk[c];
        dqkv[at(b, j, 2u, h, c)] = dv[c];
    }
}
