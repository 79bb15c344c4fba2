// Linear layer y = x·Wᵀ + b. The products are matmul.wgsl; this file holds the
// bias. Backward: dx = dy·W and dW = dyᵀ·x (matmul), db = Σ_rows dy
// (reduce.wgsl's sum_rows), wired up in ops/linear.rs.

// `Elem` is f32 as written and vec4<f32> where cols is a multiple of 4
// (four columns an invocation, 16-byte accesses; cols then counts quads).
alias Elem = f32;

struct Params {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bias: array<Elem>;     // (cols)
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;  // (rows, cols)

// y[r, c] += bias[c]. Grid: grid_1d(ceil(rows * cols / 256)).
@compute @workgroup_size(256)
fn bias_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i < p.rows * p.cols) {
        y[i] += bias[i % p.cols];
    }
}
