// Matrix product, batched: C = alpha * op(A) · op(B) + beta * C.
//
// op(X) is X or Xᵀ (trans_a / trans_b), so one kernel serves a linear layer's
// forward (x·Wᵀ) and both of its backward products (dy·W, dyᵀ·x). Batch b is
// workgroup z; operands are strided views (offset, row stride, batch stride),
// so heads or column blocks of a larger buffer are read in place.
//
// Two versions of one kernel (llm.c's way of tuning without losing the
// obviously right one); both are tested against the f64 reference:
// - matmul_simple: a 256-thread workgroup owns a 64×64 block of C and walks K
//   in slices of 16 through workgroup memory (8 KiB); each thread keeps a 4×4
//   register block at rows ty+16i, cols tx+16j (strided, so adjacent threads
//   read adjacent shared words and store adjacent C columns).
// - matmul_tiled: a 256-thread workgroup owns a 128×128 block, K in slices
//   of 8 (two 4 KiB vec4 tiles); each thread keeps an 8×8 register block
//   (16 named vec4 accumulators: no dynamically indexed private array, which
//   GPUs would place in slow local memory) and reads its 8 rows and 8
//   columns of each slice as 2 + 2 vec4 loads, 64 FMAs per 4 shared loads.
// Every output is one thread's fixed-order sum: deterministic.
//
// Mixed precision (a variant, on adapters with SHADER_F16): `HALF_ROUNDING`
// rounds every operand to half as it is staged, the way f16 tensor-core
// inputs are, while products and sums stay f32; `OperandB` = f16 reads B
// from a weight's half copy. An operand beyond half's range becomes ±inf, so
// an overflowing (loss-scaled) gradient reaches the non-finite check and the
// step is skipped. In the f32 variant both aliases are f32 and `operand` is
// the identity.

struct Params {
    m: u32,          // rows of op(A) and C
    n: u32,          // columns of op(B) and C
    k: u32,          // the contracted dimension
    trans_a: u32,
    trans_b: u32,
    lda: u32,        // row stride of A as stored
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

alias OperandB = f32;
const HALF_ROUNDING: bool = false;
const OPERAND_MAX: f32 = 3.4028234663852886e38;  // f32::MAX exactly (Tint refuses a literal above it); 65504.0 with HALF_ROUNDING

// v as the product sees it: with HALF_ROUNDING the nearest half (ties to
// even), ±inf beyond half's range. The rounding is done on the bits rather
// than as f32(f16(v)), a round trip that a compiler may fold away (the
// products then see unrounded operands).
fn operand(v: f32) -> f32 {
    if (!HALF_ROUNDING) {
        return v;
    }
    if (abs(v) > OPERAND_MAX) {
        return bitcast<f32>((bitcast<u32>(v) & 0x80000000u) | 0x7f800000u);
    }
    if (abs(v) < 6.103515625e-5) {
        // Half's subnormals: multiples of 2^-24 (exact scalings, `round` ties to even).
        return round(v * 16777216.0) * 5.9604644775390625e-8;
    }
    // Drop 13 of f32's 23 fraction bits, to nearest, ties to even.
    let bits = bitcast<u32>(v);
    return bitcast<f32>((bits + 0xfffu + ((bits >> 13u) & 1u)) & 0xffffe000u);
}

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> tile_a: array<f32, 1024>;  // (TILE_K, TILE): op(A) slice, k-major
var<workgroup> tile_b: array<f32, 1024>;  // (TILE_K, TILE): op(B) slice

// op(A)[row, col], zero outside the matrix.
fn load_a(base: u32, row: u32, col: u32) -> f32 {
    if (row >= p.m || col >= p.k) {
        return 0.0;
    }
    if (p.trans_a == 0u) {
        return operand(a[base + row * p.lda + col]);
    }
    return operand(a[base + col * p.lda + row]);
}

// op(B)[row, col], zero outside the matrix.
fn load_b(base: u32, row: u32, col: u32) -> f32 {
    if (row >= p.k || col >= p.n) {
        return 0.0;
    }
    if (p.trans_b == 0u) {
        return operand(f32(b[base + row * p.ldb + col]));
    }
    return operand(f32(b[base + col * p.ldb + row]));
}

@compute @workgroup_size(16, 16, 1)
fn matmul_simple(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let a_base = p.a_offset + wid.z * p.a_batch_stride;
    let b_base = p.b_offset + wid.z * p.b_batch_stride;
    let c_base = p.c_offset + wid.z * p.c_batch_stride;

    // Four vec4 accumulators (rows ty+16i, columns tx+16j): named registers,
    // never a dynamically indexed array, which GPUs would place in slow
    // local memory.
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        // unroll
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * THREADS;
            // Walk memory along whichever index is contiguous, so loads coalesce.
            var m = e / TILE_K;
            var ka = e % TILE_K;
            if (p.trans_a != 0u) {
                m = e % TILE;
                ka = e / TILE;
            }
            tile_a[ka * TILE + m] = load_a(a_base, row0 + m, k0 + ka);
            var n = e % TILE;
            var kb = e / TILE;
            if (p.trans_b != 0u) {
                n = e / TILE_K;
                kb = e % TILE_K;
            }
            tile_b[kb * TILE + n] = load_b(b_base, k0 + kb, col0 + n);
        }
        workgroupBarrier();
        // unroll
        for (var kk = 0u; kk < TILE_K; kk++) {
            let ra = kk * TILE + lid.y;
            let rb = kk * TILE + lid.x;
            let av = vec4<f32>(tile_a[ra], tile_a[ra + 16u], tile_a[ra + 32u], tile_a[ra + 48u]);
            let bv = vec4<f32>(tile_b[rb], tile_b[rb + 16u], tile_b[rb + 32u], tile_b[rb + 48u]);
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    store_row(c_base, row0 + lid.y, col0 + lid.x, acc0);
    store_row(c_base, row0 + lid.y + 16u, col0 + lid.x, acc1);
    store_row(c_base, row0 + lid.y + 32u, col0 + lid.x, acc2);
    store_row(c_base, row0 + lid.y + 48u, col0 + lid.x, acc3);
}

// C[row, col + 16j] = alpha·v[j] + beta·C[...] for j < 4, inside the matrix.
fn store_row(c_base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    store(c_base + row * p.ldc, col, v.x);
    store(c_base + row * p.ldc, col + 16u, v.y);
    store(c_base + row * p.ldc, col + 32u, v.z);
    store(c_base + row * p.ldc, col + 48u, v.w);
}

fn store(row_base: u32, col: u32, value: f32) {
    if (col >= p.n) {
        return;
    }
    let idx = row_base + col;
    var v = p.alpha * value;
    if (p.beta != 0.0) {
        v += p.beta * c[idx];
    }
    c[idx] = v;
}

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 8u;

var<workgroup> a_slice: array<vec4<f32>, 256>;  // (BK, BM/4): op(A) columns k0..k0+8, rows of the block
var<workgroup> b_slice: array<vec4<f32>, 256>;  // (BK, BN/4): op(B) rows k0..k0+8, columns of the block

// Grid: (ceil(N / 128), ceil(M / 128), batch).
@compute @workgroup_size(256)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let tx = t % 16u;
    let ty = t / 16u;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let a_base = p.a_offset + wid.z * p.a_batch_stride;
    let b_base = p.b_offset + wid.z * p.b_batch_stride;
    let c_base = p.c_offset + wid.z * p.c_batch_stride;
    var c00 = vec4<f32>();
    var c01 = vec4<f32>();
    var c10 = vec4<f32>();
    var c11 = vec4<f32>();
    var c20 = vec4<f32>();
    var c21 = vec4<f32>();
    var c30 = vec4<f32>();
    var c31 = vec4<f32>();
    var c40 = vec4<f32>();
    var c41 = vec4<f32>();
    var c50 = vec4<f32>();
    var c51 = vec4<f32>();
    var c60 = vec4<f32>();
    var c61 = vec4<f32>();
    var c70 = vec4<f32>();
    var c71 = vec4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Each thread stages one vec4 of each slice; the index runs along
        // whichever dimension is contiguous in memory, so loads coalesce.
        if (p.trans_a == 0u) {
            let m = t / 2u;
            let kq = (t % 2u) * 4u;
            // unroll
            for (var i = 0u; i < 4u; i++) {
                a_slice[(kq + i) * 32u + m / 4u][m % 4u] = load_a(a_base, row0 + m, k0 + kq + i);
            }
        } else {
            let k = t / 32u;
            let mq = (t % 32u) * 4u;
            a_slice[k * 32u + mq / 4u] = vec4<f32>(
                load_a(a_base, row0 + mq, k0 + k), load_a(a_base, row0 + mq + 1u, k0 + k),
                load_a(a_base, row0 + mq + 2u, k0 + k), load_a(a_base, row0 + mq + 3u, k0 + k));
        }
        if (p.trans_b == 0u) {
            let k = t / 32u;
            let nq = (t % 32u) * 4u;
            b_slice[k * 32u + nq / 4u] = vec4<f32>(
                load_b(b_base, k0 + k, col0 + nq), load_b(b_base, k0 + k, col0 + nq + 1u),
                load_b(b_base, k0 + k, col0 + nq + 2u), load_b(b_base, k0 + k, col0 + nq + 3u));
        } else {
            let n = t / 2u;
            let kq = (t % 2u) * 4u;
            // unroll
            for (var i = 0u; i < 4u; i++) {
                b_slice[(kq + i) * 32u + n / 4u][n % 4u] = load_b(b_base, k0 + kq + i, col0 + n);
            }
        }
        workgroupBarrier();
        // unroll
        for (var k = 0u; k < BK; k++) {
            let a0 = a_slice[k * 32u + ty * 2u];
            let a1 = a_slice[k * 32u + ty * 2u + 1u];
            let b0 = b_slice[k * 32u + tx * 2u];
            let b1 = b_slice[k * 32u + tx * 2u + 1u];
            c00 = fma(vec4<f32>(a0.x), b0, c00);
            c01 = fma(vec4<f32>(a0.x), b1, c01);
            c10 = fma(vec4<f32>(a0.y), b0, c10);
            c11 = fma(vec4<f32>(a0.y), b1, c11);
            c20 = fma(vec4<f32>(a0.z), b0, c20);
            c21 = fma(vec4<f32>(a0.z), b1, c21);
            c30 = fma(vec4<f32>(a0.w), b0, c30);
            c31 = fma(vec4<f32>(a0.w), b1, c31);
            c40 = fma(vec4<f32>(a1.x), b0, c40);
            c41 = fma(vec4<f32>(a1.x), b1, c41);
            c50 = fma(vec4<f32>(a1.y), b0, c50);
            c51 = fma(vec4<f32>(a1.y), b1, c51);
            c60 = fma(vec4<f32>(a1.z), b0, c60);
            c61 = fma(vec4<f32>(a1.z), b1, c61);
            c70 = fma(vec4<f32>(a1.w), b0, c70);
            c71 = fma(vec4<f32>(a1.w), b1, c71);
        }
        workgroupBarrier();
    }
    let row = row0 + ty * 8u;
    let col = col0 + tx * 8u;
    store_row8(c_base, row + 0u, col, c00, c01);
    store_row8(c_base, row + 1u, col, c10, c11);
    store_row8(c_base, row + 2u, col, c20, c21);
    store_row8(c_base, row + 3u, col, c30, c31);
    store_row8(c_base, row + 4u, col, c40, c41);
    store_row8(c_base, row + 5u, col, c50, c51);
    store_row8(c_base, row + 6u, col, c60, c61);
    store_row8(c_base, row + 7u, col, c70, c71);
}

// C[row, col..col+8] = alpha·(v0, v1) + beta·C, inside the matrix.
fn store_row8(c_base: u32, row: u32, col: u32, v0: vec4<f32>, v1: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let base = c_base + row * p.ldc;
    store(base, col, v0.x);
    store(base, col + 1u, v0.y);
    store(base, col + 2u, v0.z);
    store(base, col + 3u, v0.w);
    store(base, col + 4u, v1.x);
    store(base, col + 5u, v1.y);
    store(base, col + 6u, v1.z);
    store(base, col + 7u, v1.w);
}
