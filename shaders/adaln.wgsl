// DiT AdaLN-zero: per-sequence modulation of a normalised activation, and the
// gated residual update. `modulation` (B, stride) is the output of the
// block's Linear(d, 6d) (or the final layer's Linear(d, 2d)); shift, scale
// and gate are d-wide column blocks of it at the given offsets. Activations
// are (B·L, d): row r belongs to sequence r / L.
//
//   modulate:  y = x·(1 + scale[b]) + shift[b]
//              dx = dy·(1 + scale[b]);  dscale[b] = Σ_l dy·x;  dshift[b] = Σ_l dy
//   gate:      h += gate[b]·y   (in place on the residual stream h)
//              dy = dh·gate[b];  dgate[b] = Σ_l dh·y   (dh itself flows on unchanged)
// The per-sequence sums are one thread per (b, c) looping over l in order
// (deterministic); they write their blocks of dmodulation (overwrite), so each
// block has exactly one writer.

struct Params {
    rows: u32,         // B·L
    seq: u32,          // L
    d: u32,
    stride: u32,       // columns of modulation
    offset_a: u32,     // scale (modulate) or gate (gate) column offset
    offset_b: u32,     // shift column offset (modulate)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> modulation: array<f32>;    // (B, stride)
@group(0) @binding(2) var<storage, read> x: array<f32>;             // (B·L, d) modulate input, or the gated branch y
@group(0) @binding(3) var<storage, read_write> out: array<f32>;     // (B·L, d) modulate output, or h (in place)
@group(0) @binding(4) var<storage, read> dy: array<f32>;            // (B·L, d) upstream gradient (dh for the gate)
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;      // (B·L, d)
@group(0) @binding(6) var<storage, read_write> dmodulation: array<f32>; // (B, stride)

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// Element i = (row, c) of an activation; returns the modulation index base for
// its sequence, i.e. b·stride + c.
fn mod_base(i: u32) -> u32 {
    let row = i / p.d;
    return (row / p.seq) * p.stride + (i % p.d);
}

// Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn modulate_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.d) {
        return;
    }
    let m = mod_base(i);
    out[i] = x[i] * (1.0 + modulation[m + p.offset_a]) + modulation[m + p.offset_b];
}

// Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn modulate_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.d) {
        return;
    }
    dx[i] = dy[i] * (1.0 + modulation[mod_base(i) + p.offset_a]);
}

// One thread per (b, c). Grid: grid_1d(ceil(B·d / 256)).
@compute @workgroup_size(256)
fn modulate_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = flat(wid, nwg, lid);
    let batch = p.rows / p.seq;
    if (j >= batch * p.d) {
        return;
    }
    let b = j / p.d;
    let c = j % p.d;
    var d_scale = 0.0;
    var d_shift = 0.0;
    for (var l = 0u; l < p.seq; l++) {
        let i = (b * p.seq + l) * p.d + c;
        d_scale += dy[i] * x[i];
        d_shift += dy[i];
    }
    dmodulation[b * p.stride + p.offset_a + c] = d_scale;
    dmodulation[b * p.stride + p.offset_b + c] = d_shift;
}

// h += gate·y. Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn gate_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.d) {
        return;
    }
    out[i] += modulation[mod_base(i) + p.offset_a] * x[i];
}

// dy_branch = dh·gate. Grid: grid_1d(ceil(rows·d / 256)).
@compute @workgroup_size(256)
fn gate_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.rows * p.d) {
        return;
    }
    dx[i] = dy[i] * modulation[mod_base(i) + p.offset_a];
}

// dgate[b, c] = Σ_l dh·y. One thread per (b, c). Grid: grid_1d(ceil(B·d / 256)).
@compute @workgroup_size(256)
fn gate_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = flat(wid, nwg, lid);
    let batch = p.rows / p.seq;
    if (j >= batch * p.d) {
        return;
    }
    let b = j / p.d;
    let c = j % p.d;
    var d_gate = 0.0;
    for (var l = 0u; l < p.seq; l++) {
        let i = (b * p.seq + l) * p.d + c;
        d_gate += dy[i] * x[i];
    }
    dmodulation[b * p.stride + p.offset_a + c] = d_gate;
}
