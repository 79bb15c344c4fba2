// Decoding during sampling: per row of logits, the best token and its
// probability (the confidence the demos shade positions by).
//   tokens[r] = argmax_v logits[r, v]   (ties: the lower id)
//   confidence[r] = softmax(logits[r])[tokens[r]] = 1 / Σ_v exp(logits[r, v] − max)
// One 256-thread workgroup per row, fixed reduction trees. Grid: grid_1d(rows).

struct Params {
    rows: u32,
    vocab: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;         // (rows, V)
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>;   // (rows)
@group(0) @binding(3) var<storage, read_write> confidence: array<f32>; // (rows)

const WG: u32 = 256u;
var<workgroup> best_value: array<f32, 256>;
var<workgroup> best_index: array<u32, 256>;
var<workgroup> total: array<f32, 256>;

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
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (lid.x < stride) {
            let other = best_value[lid.x + stride];
            let other_index = best_index[lid.x + stride];
            if (other > best_value[lid.x] || (other == best_value[lid.x] && other_index < best_index[lid.x])) {
                best_value[lid.x] = other;
                best_index[lid.x] = other_index;
            }
        }
    }
    workgroupBarrier();
    let m = best_value[0];
    var s = 0.0;
    for (var v = lid.x; v < p.vocab; v += WG) {
        s += exp(logits[base + v] - m);
    }
    total[lid.x] = s;
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (lid.x < stride) {
            total[lid.x] += total[lid.x + stride];
        }
    }
    workgroupBarrier();
    if (lid.x == 0u) {
        tokens[r] = best_index[0];
        confidence[r] = 1.0 / total[0];
    }
}
