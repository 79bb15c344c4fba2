// Token embedding: a gather forward, a deterministic gather backward.
//
//   embed_forward:  out[r, :] = scale · table[tokens[r], :]
//                   A token ≥ V gives a zero row: the CPU validates tokens
//                   before upload, this only keeps every read in bounds.
//   embed_backward: dtable[v, :] (+)= scale · Σ_{r : tokens[r] = v} dout[r, :]
//
// The backward is a scatter-add in the math (several rows share a token),
// computed as a gather: every thread owns one destination element (v, c) and
// adds the rows whose token is v in increasing r. No atomics, one fixed
// summation order: same input, same bits. A workgroup owns token v and 256
// columns. It walks the rows in chunks of 256: each thread tests one row,
// a prefix sum over the chunk lists the matching rows in order, and then
// every thread adds those rows' values of its column. So each token test is
// made once per workgroup, not once per column: on an H100 (16,384 rows,
// d 256) 0.13 ms for V 65 and 0.62 ms for V 4096, against 1.5 ms and 12 ms
// when every thread tests every row itself.
//
// `accumulate` adds into dtable instead of overwriting it: the table is tied
// to the output logits, whose matmul backward writes its gradient first.
//
// Rows are cut into segments that run side by side (the grid's z), each
// gathering into its own rows of a (V, segments, d) scratch tensor, which
// sum_rows then adds in segment order: with few tokens (characters) a single
// segment would leave V·⌈d/256⌉ workgroups, each walking every row. The
// Rust side keeps segments to at most 32,768 rows: llvmpipe (the CI
// adapter) silently ends every loop of a shader invocation once they have
// run 65,535 iterations in total, and a thread here loops about once per row
// of its token plus 9 times per chunk. One segment writes dtable directly.

struct Params {
    rows: u32,
    segment_rows: u32, // backward: rows per segment
    vocab: u32,
    d: u32,
    scale: f32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;       // (rows)
@group(0) @binding(2) var<storage, read> table: array<f32>;        // (V, d)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // (rows, d)
@group(0) @binding(4) var<storage, read> dout: array<f32>;         // (rows, d)
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>; // (V, d), or (V, segments, d) partial sums

const WG: u32 = 256u;

// One thread per output element. Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn embed_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (i >= p.rows * p.d) {
        return;
    }
    let token = tokens[i / p.d];
    var value = 0.0;
    if (token < p.vocab) {
        value = p.scale * table[token * p.d + i % p.d];
    }
    out[i] = value;
}

var<workgroup> prefix: array<u32, 256>;
var<workgroup> matched: array<u32, 256>;

// One workgroup per (token, block of 256 columns, segment of rows).
// Grid: grid_1d(V · ceil(d / 256)) in x and y, segments in z.
@compute @workgroup_size(256)
fn embed_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col_blocks = (p.d + WG - 1u) / WG;
    let w = wid.y * nwg.x + wid.x;
    let v = w / col_blocks;
    if (v >= p.vocab) {
        return;
    }
    let c = (w % col_blocks) * WG + lid.x;
    let first = wid.z * p.segment_rows;
    let end = min(first + p.segment_rows, p.rows);
    var sum = 0.0;
    for (var start = first; start < end; start += WG) {
        let r = start + lid.x;
        let hit = r < end && tokens[r] == v;
        prefix[lid.x] = select(0u, 1u, hit);
        // Inclusive prefix sum over the chunk (Hillis–Steele).
        for (var offset = 1u; offset < WG; offset *= 2u) {
            workgroupBarrier();
            var add = 0u;
            if (lid.x >= offset) {
                add = prefix[lid.x - offset];
            }
            workgroupBarrier();
            prefix[lid.x] += add;
        }
        workgroupBarrier();
        if (hit) {
            matched[prefix[lid.x] - 1u] = r;
        }
        let count = prefix[WG - 1u];
        workgroupBarrier();
        if (c < p.d) {
            for (var m = 0u; m < count; m++) {
                sum += dout[matched[m] * p.d + c];
            }
        }
        // prefix and matched are rewritten by the next chunk.
        workgroupBarrier();
    }
    if (c < p.d) {
        let i = (v * nwg.z + wid.z) * p.d + c;
        var g = p.scale * sum;
        if (p.accumulate != 0u) {
            g += dtable[i];
        }
        dtable[i] = g;
    }
}
