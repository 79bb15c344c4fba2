// Activations. sigmoid only ever evaluates exp(−|x|), which lies in (0, 1]:
// the naive 1/(1 + exp(−x)) overflows exp to +inf for x < −88, and WGSL lets
// implementations assume no infinities occur (fast-math compilers do), so
// that form is not guaranteed to give 0 there. This one is finite for any x.
//
//   silu:    y = x·σ(x);                     dx = dy·σ(x)·(1 + x·(1 − σ(x)))
//   swiglu:  out = silu(a)·b, [a | b] = h + bias   (h = the fused W1/W3
//            product, (rows, 2H), its bias added here rather than by a pass
//            of its own over the widest activation of the block)
//            da = dout·b·silu'(a);  db = dout·silu(a)
// Grid: grid_1d(ceil(n / 256)), n = elements of the output (rows·H for swiglu).
//
// `Elem` is f32 as written; where the row (n for silu, H for swiglu) is a
// multiple of 4 the runtime compiles it as vec4<f32>: every invocation then
// takes four neighbouring columns in 16-byte loads and stores (these passes
// are bandwidth-bound), and n and H count quads.

alias Elem = f32;

struct Params {
    n: u32,
    hidden: u32,  // swiglu: H
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;         // silu: (n); swiglu: h (rows, 2H)
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;   // silu: (n); swiglu: (rows, H)
@group(0) @binding(3) var<storage, read> dy: array<Elem>;        // like y
@group(0) @binding(4) var<storage, read_write> dx: array<Elem>;  // like x
@group(0) @binding(5) var<storage, read> bias: array<Elem>;      // swiglu: (2H)

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

fn sigmoid(v: Elem) -> Elem {
    let e = exp(-abs(v));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= Elem(0.0));
}

fn silu_grad(v: Elem) -> Elem {
    let s = sigmoid(v);
    return s * (1.0 + v * (1.0 - s));
}

@compute @workgroup_size(256)
fn silu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        y[i] = x[i] * sigmoid(x[i]);
    }
}

@compute @workgroup_size(256)
fn silu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i < p.n) {
        dx[i] = dy[i] * silu_grad(x[i]);
    }
}

@compute @workgroup_size(256)
fn swiglu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let c = i % p.hidden;
    let at = (i / p.hidden) * 2u * p.hidden + c;
    let a = x[at] + bias[c];
    y[i] = a * sigmoid(a) * (x[at + p.hidden] + bias[c + p.hidden]);
}

@compute @workgroup_size(256)
fn swiglu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let c = i % p.hidden;
    let at = (i / p.hidden) * 2u * p.hidden + c;
    let a = x[at] + bias[c];
    let g = dy[i];
    dx[at] = g * (x[at + p.hidden] + bias[c + p.hidden]) * silu_grad(a);
    dx[at + p.hidden] = g * a * sigmoid(a);
}
