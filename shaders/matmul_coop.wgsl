// Matrix product on tensor cores (cooperative matrices), batched:
// C = alpha * op(A) · op(B) + beta * C, with the operands rounded to f16 and
// the sums in f32: the mixed-precision product of matmul.wgsl's half-operand
// variant, on the hardware built for it. Same parameters, bindings and
// grid layout as matmul.wgsl, so ops/matmul.rs picks either at run time.
//
// Only compiled where the device has EXPERIMENTAL_COOPERATIVE_MATRIX with a
// 16×16×16 f16·f16→f32 configuration, subgroups of exactly 32 invocations
// (so the 256 invocations are 8 subgroups) and SHADER_F16; elsewhere (and in
// browsers, where wgpu has no cooperative matrices) matmul.wgsl runs. Every
// variant is self-tested against the f64 reference when the device opens.
//
// A 256-invocation workgroup owns a 128×128 block of C. K is walked in
// slices of 32: all invocations stage op(A)'s 128×32 and op(B)'s 32×128
// slices into workgroup memory as f16 (16 KiB, WebGPU's default limit),
// converting from f32 (or reading B's f16 copy) and transposing as they go,
// so the fragment loads below are always row-major whatever trans_a/trans_b
// say. Subgroup s owns rows 32·(s/2).. and columns 64·(s%2).. of the block:
// 2×4 fragments of 16×16 f32 accumulators. Elements outside the matrix are
// staged as zeros, so K is arbitrary; M and N must be multiples of 16 (a
// fragment is stored whole), which ops/matmul.rs checks before choosing this.
//
// Naga notes (wgpu 30): coop loads and multiply-adds must sit in control
// flow naga can prove uniform, so they run unconditionally (loads of C at a
// clamped, in-bounds place) and only the stores of fragments outside C are
// skipped; every index and stride given to a coop builtin is a `let` of its
// own (naga 30's SPIR-V writer is reported to panic on some cooperative
// stores; tests/shaders.rs translates this file to SPIR-V to catch it).

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    c_batch_stride: u32,
    alpha: f32,
    beta: f32,       // 0: C is overwritten (and never read)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // (batch, M, K), or (batch, K, M) if trans_a
@group(0) @binding(2) var<storage, read> b: array<OperandB>;   // (batch, K, N), or (batch, N, K) if trans_b
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // (batch, M, N)

alias OperandB = f32;   // f16 when B is a weight's half copy

const HALF_MAX: f32 = 65504.0;

// v rounded to f16, ±inf beyond its range as in matmul.wgsl (so an
// overflowing loss-scaled gradient reaches the non-finite check). WGSL leaves
// an out-of-range conversion undefined, so the infinity is made by an f16
// product that overflows at run time (IEEE rounding, as native f16 has).
fn to_half(v: f32) -> f16 {
    if (abs(v) > HALF_MAX) {
        let largest = select(65504.0h, -65504.0h, v < 0.0);
        return largest * 2.0h;
    }
    return f16(v);
}

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 32u;
const THREADS: u32 = 256u;

var<workgroup> a_slice: array<f16, 4096>;  // (BM, BK) row-major: op(A) rows of the block, columns k0..k0+32
var<workgroup> b_slice: array<f16, 4096>;  // (BK, BN) row-major: op(B) rows k0..k0+32, columns of the block

// op(A)[row, col] as f16, zero outside the matrix.
fn load_a(base: u32, row: u32, col: u32) -> f16 {
    if (row >= p.m || col >= p.k) {
        return 0.0h;
    }
    if (p.trans_a == 0u) {
        return to_half(a[base + row * p.lda + col]);
    }
    return to_half(a[base + col * p.lda + row]);
}

// op(B)[row, col] as f16, zero outside the matrix.
fn load_b(base: u32, row: u32, col: u32) -> f16 {
    if (row >= p.k || col >= p.n) {
        return 0.0h;
    }
    if (p.trans_b == 0u) {
        return to_half(f32(b[base + row * p.ldb + col]));
    }
    return to_half(f32(b[base + col * p.ldb + row]));
}

// Stages the K slice at k0 of both operands; each index walks the operand's
// contiguous dimension across neighbouring invocations, so loads coalesce.
fn stage(t: u32, a_base: u32, b_base: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = 0u; i < 16u; i++) {
        let e = t + i * THREADS;
        var m = e / BK;
        var ka = e % BK;
        if (p.trans_a != 0u) {
            m = e % BM;
            ka = e / BM;
        }
        a_slice[m * BK + ka] = load_a(a_base, row0 + m, k0 + ka);
        var n = e % BN;
        var kb = e / BN;
        if (p.trans_b != 0u) {
            n = e / BK;
            kb = e % BK;
        }
        b_slice[kb * BN + n] = load_b(b_base, k0 + kb, col0 + n);
    }
}

// Grid: (ceil(N / 128), ceil(M / 128), batch).
@compute @workgroup_size(256)
fn matmul_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) sg: u32,
) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let a_base = p.a_offset + wid.z * p.a_batch_stride;
    let b_base = p.b_offset + wid.z * p.b_batch_stride;
    let c_base = p.c_offset + wid.z * p.c_batch_stride;
    // The subgroup's 32×64 part of the block, as offsets into the slices.
    let sub_row = (sg / 2u) * 32u;
    let sub_col = (sg % 2u) * 64u;
    let a_stride = BK;
    let b_stride = BN;

    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        stage(t, a_base, b_base, row0, col0, k0);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk += 16u) {
            let ia0 = sub_row * BK + kk;
            let ia1 = (sub_row + 16u) * BK + kk;
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&a_slice[ia0], a_stride);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&a_slice[ia1], a_stride);
            let ib0 = kk * BN + sub_col;
            let ib1 = ib0 + 16u;
            let ib2 = ib0 + 32u;
            let ib3 = ib0 + 48u;
            let b0 = coopLoadT<coop_mat16x16<f16, B>>(&b_slice[ib0], b_stride);
            let b1 = coopLoadT<coop_mat16x16<f16, B>>(&b_slice[ib1], b_stride);
            let b2 = coopLoadT<coop_mat16x16<f16, B>>(&b_slice[ib2], b_stride);
            let b3 = coopLoadT<coop_mat16x16<f16, B>>(&b_slice[ib3], b_stride);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c02 = coopMultiplyAdd(a0, b2, c02);
            c03 = coopMultiplyAdd(a0, b3, c03);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c12 = coopMultiplyAdd(a1, b2, c12);
            c13 = coopMultiplyAdd(a1, b3, c13);
        }
        workgroupBarrier();
    }
    let row = row0 + sub_row;
    let col = col0 + sub_col;
    store_fragment(c_base, row, col, c00);
    store_fragment(c_base, row, col + 16u, c01);
    store_fragment(c_base, row, col + 32u, c02);
    store_fragment(c_base, row, col + 48u, c03);
    store_fragment(c_base, row + 16u, col, c10);
    store_fragment(c_base, row + 16u, col + 16u, c11);
    store_fragment(c_base, row + 16u, col + 32u, c12);
    store_fragment(c_base, row + 16u, col + 48u, c13);
}

// C[row.., col..] (a 16×16 fragment) = alpha·acc + beta·C, unless the
// fragment lies outside C (M and N are multiples of 16, so none is partly
// inside). C is read at a clamped place that is always inside, so the load
// needs no branch; what it reads for a skipped fragment is never stored.
fn store_fragment(c_base: u32, row: u32, col: u32, acc: coop_mat16x16<f32, C>) {
    let ldc = p.ldc;
    var result = acc * p.alpha;
    if (p.beta != 0.0) {
        let inside = c_base + min(row, p.m - 16u) * ldc + min(col, p.n - 16u);
        let old = coopLoadT<coop_mat16x16<f32, C>>(&c[inside], ldc);
        result = result + old * p.beta;
    }
    if (row < p.m && col < p.n) {
        let at = c_base + row * ldc + col;
        coopStoreT(result, &c[at], ldc);
    }
}
