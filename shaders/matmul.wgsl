// Matrix product, batched: C = alpha * op(A) · op(B) + beta * C.
//
// op(X) is X or Xᵀ (trans_a / trans_b), so one kernel serves a linear layer's
// forward (x·Wᵀ) and both of its backward products (dy·W, dyᵀ·x). Batch b is
// workgroup z; operands are strided views (offset, row stride, batch stride),
// so heads or column blocks of a larger buffer are read in place.
//
// Tiling: a 256-thread workgroup owns a 64×64 block of C and walks K in
// slices of 16 staged through workgroup memory (8 KiB). Each thread keeps a
// 4×4 register block at rows ty+16i, cols tx+16j: strided so that adjacent
// threads read adjacent shared-memory words and store adjacent C columns.
// Every output is one thread's fixed-order sum: deterministic.

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
@group(0) @binding(2) var<storage, read> b: array<f32>;        // (batch, K, N), or (batch, N, K) if trans_b
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // (batch, M, N)

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
        return a[base + row * p.lda + col];
    }
    return a[base + col * p.lda + row];
}

// op(B)[row, col], zero outside the matrix.
fn load_b(base: u32, row: u32, col: u32) -> f32 {
    if (row >= p.k || col >= p.n) {
        return 0.0;
    }
    if (p.trans_b == 0u) {
        return b[base + row * p.ldb + col];
    }
    return b[base + col * p.ldb + row];
}

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
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
