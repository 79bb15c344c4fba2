// Token embedding: a gather forward, a deterministic scatter-add backward.
//
//   embed_forward:  out[r, :] = scale · table[tokens[r], :]   (tokens ≥ V give a zero row;
//                   the CPU validates tokens, this only keeps reads in bounds)
//   embed_backward: dtable[v, :] (+)= scale · Σ_{r : tokens[r] = v} dout[r, :]
//
// The backward is a gather per vocabulary row, not an atomic scatter: one
// workgroup per v scans the tokens in chunks of 256, compacts the matching
// rows in order (a prefix sum over the chunk), and each thread adds those
// rows' values for its columns in increasing r. Same input, same bits; the
// token list is read V times, the gradient rows once.

struct Params {
    rows: u32,
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
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>; // (V, d)

const WG: u32 = 256u;
// Columns per thread in the backward: d ≤ WG · COL_SLOTS.
const COL_SLOTS: u32 = 8u;

var<workgroup> prefix: array<u32, 256>;
var<workgroup> matched: array<u32, 256>;

// Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn embed_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid.x;
    if (i >= p.rows * p.d) {
        return;
    }
    let tok = tokens[i / p.d];
    var v = 0.0;
    if (tok < p.vocab) {
        v = p.scale * table[tok * p.d + i % p.d];
    }
    out[i] = v;
}

// One workgroup per vocabulary row. Grid: grid_1d(V).
@compute @workgroup_size(256)
fn embed_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let v = wid.y * nwg.x + wid.x;
    if (v >= p.vocab) {
        return;
    }
    var acc: array<f32, COL_SLOTS>;
    for (var start = 0u; start < p.rows; start += WG) {
        let r = start + lid.x;
        let hit = select(0u, 1u, r < p.rows && tokens[min(r, p.rows - 1u)] == v);
        prefix[lid.x] = hit;
        workgroupBarrier();
        // Inclusive prefix sum (Hillis–Steele) over the chunk.
        for (var offset = 1u; offset < WG; offset *= 2u) {
            var add = 0u;
            if (lid.x >= offset) {
                add = prefix[lid.x - offset];
            }
            workgroupBarrier();
            prefix[lid.x] += add;
            workgroupBarrier();
        }
        if (hit == 1u) {
            matched[prefix[lid.x] - 1u] = r;
        }
        let count = prefix[WG - 1u];
        workgroupBarrier();
        for (var m = 0u; m < count; m++) {
            let row = matched[m];
            for (var s = 0u; s < COL_SLOTS; s++) {
                let c = lid.x + s * WG;
                if (c < p.d) {
                    acc[s] += dout[row * p.d + c];
                }
            }
        }
        workgroupBarrier();
    }
    for (var s = 0u; s < COL_SLOTS; s++) {
        let c = lid.x + s * WG;
        if (c < p.d) {
            var g = p.scale * acc[s];
            if (p.accumulate != 0u) {
                g += dtable[v * p.d + c];
            }
            dtable[v * p.d + c] = g;
        }
    }
}
