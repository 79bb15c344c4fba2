// Matrix product on tensor cores (cooperative matrices), batched:
// C = alpha * op(A) · op(B) + beta * C, with the operands rounded to f16 and
// the sums in f32: the mixed-precision product of matmul.wgsl's half-operand
// variant, on the hardware built for it. Same parameters, bindings and
// grid layout as matmul.wgsl, so ops/matmul.rs picks either at run time.
//
// Only compiled where the device has EXPERIMENTAL_COOPERATIVE_MATRIX with a
// 16×16×16 f16·f16→f32 configuration, subgroups of exactly 32 invocations
// (so the 256 invocations are 8 subgroups), SHADER_F16 and 20 KiB of
// workgroup memory (beyond WebGPU's default 16 KiB: this file never runs in
// a browser, where wgpu has no cooperative matrices); elsewhere matmul.wgsl
// runs. Every variant is self-tested against the f64 reference when the
// device opens. TRANS_A and TRANS_B are compile-time switches (one pipeline
// per transpose variant), so the staging below has no run-time transposes.
//
// A 256-invocation workgroup owns a 128×128 block of C. K is walked in
// slices of 32. Each operand's slice is staged into workgroup memory as f16
// in the orientation it has in memory (K contiguous or M/N contiguous), so
// neighbouring invocations read neighbouring quads and write neighbouring
// halves; the fragment loads then read it row-major (coopLoadT) or
// column-major (coopLoad). Rows of the staged slices are padded by 8 halves
// so that the eight 16-byte rows a fragment load reads fall in different
// banks. Slices are not fetched ahead into registers: on an H200 that was
// slower (69 vs 80 TFLOP/s at 4096³), the registers it takes leaving fewer
// workgroups per multiprocessor to hide each other's latency.
// Subgroup s owns rows 32·(s/2).. and columns 64·(s%2).. of the block: 2×4
// fragments of 16×16 f32 accumulators. Operands are read in quads (vec4)
// along their contiguous dimension; quads outside the matrix are read at a
// clamped place and staged as zeros (no branch around a load). M and N must
// be multiples of 16 (a fragment is stored whole), K and every offset,
// leading dimension and batch stride of A and B multiples of 4, which
// ops/matmul.rs checks before choosing this.
//
// Naga notes (wgpu 30): coop loads and multiply-adds must sit in control
// flow naga can prove uniform, so they run unconditionally or under the
// compile-time switches (loads of C at a clamped, in-bounds place) and only
// the stores of fragments outside C are skipped; every index and stride
// given to a coop builtin is a `let` of its own (naga 30's SPIR-V writer is
// reported to panic on some cooperative stores; tests/shaders.rs translates
// every variant of this file to SPIR-V to catch it).

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,    // matmul.wgsl's; here TRANS_A and TRANS_B
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
// A and B are read in quads (vec4): their offsets, leading dimensions and
// batch strides are multiples of 4, and so is K (ops/matmul.rs checks).
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;       // (batch, M, K), or (batch, K, M) if TRANS_A
@group(0) @binding(2) var<storage, read> b: array<vec4<OperandB>>;  // (batch, K, N), or (batch, N, K) if TRANS_B
@group(0) @binding(3) var<storage, read_write> c: array<f32>;       // (batch, M, N)

alias OperandB = f32;   // f16 when B is a weight's half copy

const HALF_MAX: f32 = 65504.0;

// Whether A is stored (K, M) and B (N, K): compile-time switches.
const TRANS_A: bool = false;
const TRANS_B: bool = false;

// v rounded to f16, ±inf beyond its range as in matmul.wgsl (so an
// overflowing loss-scaled gradient reaches the non-finite check). WGSL leaves
// an out-of-range conversion undefined, so the infinity is made by an f16
// product that overflows at run time (IEEE rounding, as native f16 has); a
// select rather than a branch, so the staging stays straight-line code.
fn to_half4(v: vec4<f32>) -> vec4<f16> {
    let largest = select(vec4<f16>(65504.0h), vec4<f16>(-65504.0h), v < vec4<f32>());
    return select(vec4<f16>(v), largest * 2.0h, abs(v) > vec4<f32>(HALF_MAX));
}

const BLOCK: u32 = 128u;  // rows and columns of C per workgroup
const BK: u32 = 32u;      // K slice
const THREADS: u32 = 256u;
const QUADS: u32 = BLOCK * BK / 4u / THREADS;  // of each operand's slice, per invocation
// Padded row strides of a staged slice: K contiguous (BLOCK rows of BK), or
// M/N contiguous (BK rows of BLOCK).
const K_STRIDE: u32 = BK + 8u;
const MN_STRIDE: u32 = BLOCK + 8u;
const SLICE: u32 = max(BLOCK * K_STRIDE, BK * MN_STRIDE);

var<workgroup> a_slice: array<f16, SLICE>;  // op(A) rows row0.., columns k0..k0+BK
var<workgroup> b_slice: array<f16, SLICE>;  // op(B) rows k0..k0+BK, columns col0..

// A slice is BLOCK·BK/4 quads: runs of 4 elements along the dimension
// contiguous in memory. Quad q's (row of C's block or column of it, k) offsets:
fn quad_coord(q: u32, k_contiguous: bool) -> vec2<u32> {
    if (k_contiguous) {
        return vec2<u32>(q / (BK / 4u), 4u * (q % (BK / 4u)));
    }
    return vec2<u32>(4u * (q % (BLOCK / 4u)), q / (BLOCK / 4u));
}

// Where the quad's first element is staged.
fn quad_index(c: vec2<u32>, k_contiguous: bool) -> u32 {
    if (k_contiguous) {
        return c.x * K_STRIDE + c.y;
    }
    return c.y * MN_STRIDE + c.x;
}

// Element index of the quad at (mn, k) of an operand with `rows` (M or N)
// and ld, clamped to the last quad inside so the load needs no branch.
fn quad_at(base: u32, ld: u32, mn: u32, k: u32, rows: u32, k_contiguous: bool) -> u32 {
    if (k_contiguous) {
        return base + min(mn, rows - 1u) * ld + min(k, max(p.k, 4u) - 4u);
    }
    return base + min(k, max(p.k, 1u) - 1u) * ld + min(mn, rows - 4u);
}

// Quad q of op(A)'s slice at row0, k0; zeros outside the matrix.
fn fetch_a(base: u32, row0: u32, k0: u32, q: u32) -> vec4<f32> {
    let c = quad_coord(q, !TRANS_A);
    let row = row0 + c.x;
    let col = k0 + c.y;
    let at = quad_at(base, p.lda, row, col, p.m, !TRANS_A);
    return select(vec4<f32>(), a[at / 4u], row < p.m && col < p.k);
}

// Quad q of op(B)'s slice at k0, col0; zeros outside the matrix.
fn fetch_b(base: u32, col0: u32, k0: u32, q: u32) -> vec4<OperandB> {
    let c = quad_coord(q, TRANS_B);
    let col = col0 + c.x;
    let row = k0 + c.y;
    let at = quad_at(base, p.ldb, col, row, p.n, TRANS_B);
    return select(vec4<OperandB>(), b[at / 4u], col < p.n && row < p.k);
}

fn stage_a(q: u32, v: vec4<f32>) {
    let at = quad_index(quad_coord(q, !TRANS_A), !TRANS_A);
    let h = to_half4(v);
    a_slice[at] = h.x;
    a_slice[at + 1u] = h.y;
    a_slice[at + 2u] = h.z;
    a_slice[at + 3u] = h.w;
}

fn stage_b(q: u32, v: vec4<OperandB>) {
    let at = quad_index(quad_coord(q, TRANS_B), TRANS_B);
    let h = to_half4(vec4<f32>(v));
    b_slice[at] = h.x;
    b_slice[at + 1u] = h.y;
    b_slice[at + 2u] = h.z;
    b_slice[at + 3u] = h.w;
}

// The A fragment at block row `row`, slice column `kk`.
fn a_fragment(row: u32, kk: u32) -> coop_mat16x16<f16, A> {
    if (TRANS_A) {
        let at = kk * MN_STRIDE + row;
        let stride = MN_STRIDE;
        return coopLoad<coop_mat16x16<f16, A>>(&a_slice[at], stride);
    }
    let at = row * K_STRIDE + kk;
    let stride = K_STRIDE;
    return coopLoadT<coop_mat16x16<f16, A>>(&a_slice[at], stride);
}

// The B fragment at slice row `kk`, block column `col`.
fn b_fragment(kk: u32, col: u32) -> coop_mat16x16<f16, B> {
    if (TRANS_B) {
        let at = col * K_STRIDE + kk;
        let stride = K_STRIDE;
        return coopLoad<coop_mat16x16<f16, B>>(&b_slice[at], stride);
    }
    let at = kk * MN_STRIDE + col;
    let stride = MN_STRIDE;
    return coopLoadT<coop_mat16x16<f16, B>>(&b_slice[at], stride);
}

// Grid: (ceil(N / 128), ceil(M / 128), batch).
@compute @workgroup_size(256)
fn matmul_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) sg: u32,
) {
    let row0 = wid.y * BLOCK;
    let col0 = wid.x * BLOCK;
    let a_base = p.a_offset + wid.z * p.a_batch_stride;
    let b_base = p.b_offset + wid.z * p.b_batch_stride;
    let c_base = p.c_offset + wid.z * p.c_batch_stride;
    // The subgroup's 32×64 part of the block.
    let sub_row = (sg / 2u) * 32u;
    let sub_col = (sg % 2u) * 64u;

    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        workgroupBarrier();  // the previous slice's fragments are all loaded
        // This invocation's quads of the slice: t + THREADS·j, j < QUADS.
        for (var j = 0u; j < QUADS; j++) {
            stage_a(t + j * THREADS, fetch_a(a_base, row0, k0, t + j * THREADS));
            stage_b(t + j * THREADS, fetch_b(b_base, col0, k0, t + j * THREADS));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk += 16u) {
            let fa0 = a_fragment(sub_row, kk);
            let fa1 = a_fragment(sub_row + 16u, kk);
            let fb0 = b_fragment(kk, sub_col);
            let fb1 = b_fragment(kk, sub_col + 16u);
            let fb2 = b_fragment(kk, sub_col + 32u);
            let fb3 = b_fragment(kk, sub_col + 48u);
            c00 = coopMultiplyAdd(fa0, fb0, c00);
            c01 = coopMultiplyAdd(fa0, fb1, c01);
            c02 = coopMultiplyAdd(fa0, fb2, c02);
            c03 = coopMultiplyAdd(fa0, fb3, c03);
            c10 = coopMultiplyAdd(fa1, fb0, c10);
            c11 = coopMultiplyAdd(fa1, fb1, c11);
            c12 = coopMultiplyAdd(fa1, fb2, c12);
            c13 = coopMultiplyAdd(fa1, fb3, c13);
        }
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
