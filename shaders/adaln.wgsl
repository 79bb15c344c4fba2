// DiT AdaLN-zero: the two ends of every residual branch. `modulation`
// (B, stride) is the output of the block's Linear(d, 6d) (or the final
// layer's Linear(d, 2d)); shift, scale and gate are d-wide column blocks of
// it at the given offsets. Activations are (B·L, d): row r belongs to
// sequence r / L.
//
//   modulated norm: out = n·(1 + scale[b]) + shift[b],   n = (h − μ)·rstd
//                   RMSNorm: μ = 0, rstd = 1/sqrt(mean(h²) + eps)
//                   LayerNorm (`centred`): μ = mean(h), rstd = 1/sqrt(mean((h − μ)²) + eps)
//                   g = dout·(1 + scale[b]);  dh (+)= rstd·(g − [centred]·mean(g) − n·mean(g·n))
//                   dscale[b] = Σ_l dout·n;  dshift[b] = Σ_l dout
//   gate:           h_out = h_in + gate[b]·(y + bias)        (bias optional)
//                   dy = dh·gate[b];  dgate[b] = Σ_l dh·(y + bias)
//
// One kernel per direction instead of a norm, a modulate and a residual copy
// each: these passes are bandwidth-bound, so every (B·L, d) tensor not
// written and read again is time saved. n itself is never stored; the
// backward recomputes it from h and the saved (μ, rstd).
//
// Row kernels (the norm): one 64-thread workgroup per row, the row's sums by
// a fixed tree. Per-sequence sums (dscale, dshift, dgate): one workgroup per
// (32 columns, sequence), 8 lanes per column each summing every 8th position,
// added in lane order. Both are the same bits on every run, and each block of
// dmodulation has exactly one writer (it is overwritten).

struct Params {
    rows: u32,         // B·L
    seq: u32,          // L
    d: u32,
    stride: u32,       // columns of modulation
    offset_a: u32,     // scale (modulated norm) or gate column offset
    offset_b: u32,     // shift column offset (modulated norm)
    eps: f32,
    centred: u32,      // LayerNorm (else RMSNorm)
    accumulate: u32,   // the norm's backward adds into dx
    has_bias: u32,     // the gate adds `bias` to y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> modulation: array<f32>;        // (B, stride)
@group(0) @binding(2) var<storage, read> x: array<f32>;                 // (B·L, d) the norm's input h, or the gated branch y
@group(0) @binding(3) var<storage, read> bias: array<f32>;              // (d) the branch's output bias (gate)
@group(0) @binding(4) var<storage, read> residual: array<f32>;          // (B·L, d) h_in (gate forward)
@group(0) @binding(5) var<storage, read_write> out: array<f32>;         // (B·L, d) modulated norm, or h_out
@group(0) @binding(6) var<storage, read_write> stats: array<vec2<f32>>; // (B·L) (μ, rstd), saved by the forward
@group(0) @binding(7) var<storage, read> stats_in: array<vec2<f32>>;    // (B·L) the same, read by the backward
@group(0) @binding(8) var<storage, read> dy: array<f32>;                // (B·L, d) upstream gradient (d out, or dh for the gate)
@group(0) @binding(9) var<storage, read_write> dx: array<f32>;          // (B·L, d) dh (norm), or d y (gate)
@group(0) @binding(10) var<storage, read_write> dmodulation: array<f32>; // (B, stride)

const ROW: u32 = 64u;
const SUM_COLS: u32 = 32u;
const SUM_LANES: u32 = 8u;

var<workgroup> partial: array<f32, ROW>;
var<workgroup> partial2: array<f32, ROW>;
var<workgroup> lanes: array<vec2<f32>, 256>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Sums `partial` and `partial2` over the row's threads; results in slot 0.
fn tree_sum2(lid: u32) {
    for (var stride = ROW / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
            partial2[lid] += partial2[lid + stride];
        }
    }
    workgroupBarrier();
}

// (μ, rstd) of row r of h; the variance is a second pass over centred values
// (no cancellation).
fn row_stats(r: u32, lid: u32) -> vec2<f32> {
    let base = r * p.d;
    var mu = 0.0;
    if (p.centred != 0u) {
        var s = 0.0;
        for (var c = lid; c < p.d; c += ROW) {
            s += x[base + c];
        }
        partial[lid] = s;
        partial2[lid] = 0.0;
        tree_sum2(lid);
        mu = partial[0] / f32(p.d);
        workgroupBarrier();
    }
    var ss = 0.0;
    for (var c = lid; c < p.d; c += ROW) {
        let v = x[base + c] - mu;
        ss += v * v;
    }
    partial[lid] = ss;
    partial2[lid] = 0.0;
    tree_sum2(lid);
    return vec2(mu, inverseSqrt(partial[0] / f32(p.d) + p.eps));
}

// out = norm(h)·(1 + scale) + shift; saves (μ, rstd). Grid: grid_1d(rows).
@compute @workgroup_size(64)
fn norm_modulate_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_of(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let st = row_stats(r, lid.x);
    let base = r * p.d;
    let m = (r / p.seq) * p.stride;
    for (var c = lid.x; c < p.d; c += ROW) {
        let n = (x[base + c] - st.x) * st.y;
        out[base + c] = n * (1.0 + modulation[m + p.offset_a + c]) + modulation[m + p.offset_b + c];
    }
    if (lid.x == 0u) {
        stats[r] = st;
    }
}

// dh (+)= the norm's backward of g = dout·(1 + scale). Grid: grid_1d(rows).
@compute @workgroup_size(64)
fn norm_modulate_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = row_of(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let st = stats_in[r];
    let base = r * p.d;
    let scale = (r / p.seq) * p.stride + p.offset_a;
    var s_g = 0.0;
    var s_gn = 0.0;
    for (var c = lid.x; c < p.d; c += ROW) {
        let g = dy[base + c] * (1.0 + modulation[scale + c]);
        s_g += g;
        s_gn += g * (x[base + c] - st.x) * st.y;
    }
    partial[lid.x] = s_g;
    partial2[lid.x] = s_gn;
    tree_sum2(lid.x);
    let mean_g = select(0.0, partial[0] / f32(p.d), p.centred != 0u);
    let mean_gn = partial2[0] / f32(p.d);
    for (var c = lid.x; c < p.d; c += ROW) {
        let g = dy[base + c] * (1.0 + modulation[scale + c]);
        let n = (x[base + c] - st.x) * st.y;
        var v = st.y * (g - mean_g - n * mean_gn);
        if (p.accumulate != 0u) {
            v += dx[base + c];
        }
        dx[base + c] = v;
    }
}

// Adds the SUM_LANES partial sums of each column in lane order; the totals
// are valid in lane 0 (lid < SUM_COLS).
fn combine_lanes(lid: u32, sums: vec2<f32>) -> vec2<f32> {
    lanes[lid] = sums;
    workgroupBarrier();
    var total = vec2(0.0);
    if (lid < SUM_COLS) {
        for (var lane = 0u; lane < SUM_LANES; lane++) {
            total += lanes[lane * SUM_COLS + lid];
        }
    }
    return total;
}

// dscale[b] = Σ_l dout·n, dshift[b] = Σ_l dout. Grid: (ceil(d / 32), B).
@compute @workgroup_size(256)
fn modulate_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y;
    let col = wid.x * SUM_COLS + lid.x % SUM_COLS;
    var sums = vec2(0.0);
    if (col < p.d) {
        for (var l = lid.x / SUM_COLS; l < p.seq; l += SUM_LANES) {
            let row = b * p.seq + l;
            let i = row * p.d + col;
            let st = stats_in[row];
            sums += dy[i] * vec2((x[i] - st.x) * st.y, 1.0);
        }
    }
    let total = combine_lanes(lid.x, sums);
    if (lid.x < SUM_COLS && col < p.d) {
        dmodulation[b * p.stride + p.offset_a + col] = total.x;
        dmodulation[b * p.stride + p.offset_b + col] = total.y;
    }
}

// h_out = h_in + gate·(y + bias). Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn gate_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.d) {
        return;
    }
    let c = i % p.d;
    var y = x[i];
    if (p.has_bias != 0u) {
        y += bias[c];
    }
    out[i] = residual[i] + modulation[(i / p.d / p.seq) * p.stride + p.offset_a + c] * y;
}

// d y = dh·gate, dgate[b] = Σ_l dh·(y + bias). Grid: (ceil(d / 32), B).
@compute @workgroup_size(256)
fn gate_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y;
    let col = wid.x * SUM_COLS + lid.x % SUM_COLS;
    var sum = 0.0;
    if (col < p.d) {
        let gate = modulation[b * p.stride + p.offset_a + col];
        var y_bias = 0.0;
        if (p.has_bias != 0u) {
            y_bias = bias[col];
        }
        for (var l = lid.x / SUM_COLS; l < p.seq; l += SUM_LANES) {
            let i = (b * p.seq + l) * p.d + col;
            dx[i] = dy[i] * gate;
            sum += dy[i] * (x[i] + y_bias);
        }
    }
    let total = combine_lanes(lid.x, vec2(sum, 0.0));
    if (lid.x < SUM_COLS && col < p.d) {
        dmodulation[b * p.stride + p.offset_a + col] = total.x;
    }
}
