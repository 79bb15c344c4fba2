// Rotary position embedding (rotate-half convention), in place on the q and
// k columns of the handled heads of the fused qkv buffer; v and other heads
// are untouched. For c < half = head_dim/2 at position i:
//   (x_c, x_{c+half}) ← (x_c cos θ − x_{c+half} sin θ,  x_{c+half} cos θ + x_c sin θ),
//   θ = i · base^(−2c/head_dim).
// Backward is the transpose: the rotation by −θ, applied to dqkv in place.
// cos θ and sin θ come from a (max_seq, half) table computed in f64 on the
// CPU: angles reach thousands of radians, where f32 sin/cos are loosely
// specified and differ between adapters.

struct Params {
    rows: u32,        // B·L
    seq: u32,
    d: u32,
    head_dim: u32,
    head_start: u32,
    head_count: u32,
    direction: f32,   // +1 forward, −1 backward
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cos_table: array<f32>;  // (max_seq, head_dim/2)
@group(0) @binding(2) var<storage, read> sin_table: array<f32>;  // (max_seq, head_dim/2)
@group(0) @binding(3) var<storage, read_write> qkv: array<f32>;  // (B·L, 3d) activations or their gradient

fn rotate(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
    let half = p.head_dim / 2u;
    // One thread per (row, part ∈ {q, k}, head, c < half).
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= p.rows * 2u * p.head_count * half) {
        return;
    }
    let c = i % half;
    let h = (i / half) % p.head_count;
    let part = (i / (half * p.head_count)) % 2u;
    let row = i / (half * p.head_count * 2u);
    let pos = row % p.seq;
    let base = row * 3u * p.d + part * p.d + (p.head_start + h) * p.head_dim + c;
    let cs = cos_table[pos * half + c];
    let sn = p.direction * sin_table[pos * half + c];
    let x1 = qkv[base];
    let x2 = qkv[base + half];
    qkv[base] = x1 * cs - x2 * sn;
    qkv[base + half] = x2 * cs + x1 * sn;
}

// Grid for both: grid_1d(ceil(rows · 2 · head_count · half / 256)).
@compute @workgroup_size(256)
fn rope_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    rotate(wid, nwg, lid);
}

@compute @workgroup_size(256)
fn rope_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    rotate(wid, nwg, lid);
}
