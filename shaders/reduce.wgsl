// Deterministic reductions: every sum is taken in a fixed order (fixed chunks,
// fixed tree), so the same input gives the same bits on every run. No float
// atomics anywhere.
//
// sum_rows:  x (groups, rows, cols) -> out (groups, cols), summing over rows.
//   Stage 1 (sum_rows_partial) sums chunks of ROW_CHUNK rows into
//   partial (groups, chunks, cols); stage 2 (sum_rows_final) sums the chunks.
//   With ROW_CHUNK rows or fewer, stage 2 alone sums x itself (chunks = rows).
//   This is the backward of broadcasting over rows (bias, per-batch vectors)
//   and the last step of a split-K product.
// sum_all:   x (n) -> out[out_index] = scale * Σ x  (or Σ x² with square).
//   Stage 1 (sum_all_partial): workgroup w reduces elements
//   [w*ALL_CHUNK, (w+1)*ALL_CHUNK) by a fixed tree into partial[w];
//   stage 2 (sum_all_final): one workgroup reduces the partials.

struct Params {
    groups: u32,
    rows: u32,
    cols: u32,
    chunks: u32,      // ceil(rows / ROW_CHUNK) for sum_rows; partial count for sum_all
    n: u32,           // element count (sum_all)
    out_index: u32,   // where sum_all writes its result
    square: u32,      // sum_all: sum of squares instead of sum
    accumulate: u32,  // add into out instead of overwriting it
    scale: f32,       // sum_all: result multiplier
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;             // sum_rows: (groups, rows, cols); sum_all: (n)
@group(0) @binding(2) var<storage, read_write> partial: array<f32>; // sum_rows: (groups, chunks, cols); sum_all: (chunks)
@group(0) @binding(3) var<storage, read> partial_in: array<f32>;    // stage-2 input, same layout as partial
@group(0) @binding(4) var<storage, read_write> out: array<f32>;     // sum_rows: (groups, cols); sum_all: (≥ out_index+1)

const ROW_CHUNK: u32 = 64u;
const ALL_CHUNK: u32 = 4096u;
const WG: u32 = 256u;

var<workgroup> scratch: array<f32, 256>;

// grid: (ceil(cols / 256), chunks, groups)
@compute @workgroup_size(256)
fn sum_rows_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = wid.x * WG + lid.x;
    if (col >= p.cols) {
        return;
    }
    let g = wid.z;
    let r0 = wid.y * ROW_CHUNK;
    let r1 = min(r0 + ROW_CHUNK, p.rows);
    var s = 0.0;
    for (var r = r0; r < r1; r++) {
        s += x[(g * p.rows + r) * p.cols + col];
    }
    partial[(g * p.chunks + wid.y) * p.cols + col] = s;
}

// Stage 2 gives each column LANES threads, lane l summing chunks l, l + LANES,
// …, then adds the lanes in order: a bias gradient has a few hundred
// columns, too few threads to hide the latency of one long serial sum each.
const FINAL_COLS: u32 = 32u;
const LANES: u32 = WG / FINAL_COLS;

// grid: (ceil(cols / FINAL_COLS), 1, groups)
@compute @workgroup_size(256)
fn sum_rows_final(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let lane = lid.x / FINAL_COLS;
    let col = wid.x * FINAL_COLS + lid.x % FINAL_COLS;
    let g = wid.z;
    var s = 0.0;
    if (col < p.cols) {
        for (var c = lane; c < p.chunks; c += LANES) {
            s += partial_in[(g * p.chunks + c) * p.cols + col];
        }
    }
    scratch[lid.x] = s;
    workgroupBarrier();
    if (lane == 0u && col < p.cols) {
        for (var l = 1u; l < LANES; l++) {
            s += scratch[l * FINAL_COLS + lid.x];
        }
        let o = g * p.cols + col;
        if (p.accumulate != 0u) {
            s += out[o];
        }
        out[o] = s;
    }
}

// #include workgroup_reduce.wgsl

// grid: grid_1d(chunks)
@compute @workgroup_size(256)
fn sum_all_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = wid.y * nwg.x + wid.x;
    let start = w * ALL_CHUNK;
    var s = 0.0;
    for (var i = start + lid.x; i < min(start + ALL_CHUNK, p.n); i += WG) {
        let v = x[i];
        s += select(v, v * v, p.square != 0u);
    }
    let total = workgroup_sum(lid.x, s);
    if (lid.x == 0u && w < p.chunks) {
        partial[w] = total;
    }
}

// grid: (1, 1, 1)
@compute @workgroup_size(256)
fn sum_all_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var i = lid.x; i < p.chunks; i += WG) {
        s += partial_in[i];
    }
    let total = workgroup_sum(lid.x, s);
    if (lid.x == 0u) {
        var r = p.scale * total;
        if (p.accumulate != 0u) {
            r += out[p.out_index];
        }
        out[p.out_index] = r;
    }
}
