// Fixed-order tree reductions over a 256-thread workgroup, a library:
// loss.wgsl, norm.wgsl, reduce.wgsl, reveal.wgsl and sampling.wgsl name it
// with `// #include workgroup_reduce.wgsl` (core/src/gpu/shader.rs puts this
// file in its place). Each thread passes its partial value and every thread gets the
// whole workgroup's; the tree's order is fixed, so the result does not
// depend on scheduling. Call from uniform control flow, in a kernel of
// @workgroup_size(256).

var<workgroup> reduction: array<f32, 256>;

const REDUCE_SUM: u32 = 0u;
const REDUCE_MAX: u32 = 1u;

fn workgroup_reduce(t: u32, x: f32, op: u32) -> f32 {
    // Every thread has read the last result before its slot is overwritten.
    workgroupBarrier();
    reduction[t] = x;
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (t < stride) {
            let a = reduction[t];
            let b = reduction[t + stride];
            reduction[t] = select(a + b, max(a, b), op == REDUCE_MAX);
        }
    }
    workgroupBarrier();
    return reduction[0];
}

fn workgroup_sum(t: u32, x: f32) -> f32 {
    return workgroup_reduce(t, x, REDUCE_SUM);
}

fn workgroup_max(t: u32, x: f32) -> f32 {
    return workgroup_reduce(t, x, REDUCE_MAX);
}
