use super::matmul_coop;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor};
use crate::shader_file;
use crate::{Error, Result, params};

pub const SHADER: Shader = shader_file!("matmul");

/// Where a matrix operand lives inside its buffer (all in elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub offset: usize,
    /// Row stride of the matrix as stored.
    pub ld: usize,
    /// Distance between consecutive matrices of a batch.
    pub batch_stride: usize,
}

/// The compile-time switches of the half-operand (mixed-precision) variant,
/// and the one more that reads B from an f16 tensor.
pub const HALF_OPERANDS: [(&str, &str); 2] =
    [("HALF_ROUNDING", "true"), ("OPERAND_MAX", "65504.0")];
pub const HALF_B: (&str, &str) = ("OperandB", "f16");

/// Which version of the kernel runs (see shaders/matmul.wgsl and
/// shaders/matmul_coop.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// With half operands, the tensor-core kernel where the device has it,
    /// its self-test passed for this transpose variant and M, N are
    /// multiples of 16; otherwise tiled for products of at least 128×128
    /// outputs, simple below.
    Auto,
    Simple,
    Tiled,
    /// The tensor-core kernel (half operands only); an error where the
    /// device lacks it or the shape does not fit.
    Cooperative,
}

/// `C = alpha * op(A) · op(B) + beta * C` for `batch` matrices, where op(A)
/// is M×K and op(B) is K×N. Operands are dense row-major unless a layout is
/// given.
#[derive(Clone, Copy, Debug)]
pub struct Matmul {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub a: Option<Layout>,
    pub b: Option<Layout>,
    pub c: Option<Layout>,
    pub kernel: MatmulKernel,
    /// Mixed precision: operands rounded to f16 (B may then be an f16
    /// tensor), products and sums in f32; needs SHADER_F16.
    pub half_operands: bool,
}

impl Matmul {
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Matmul {
            m,
            n,
            k,
            batch: 1,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            a: None,
            b: None,
            c: None,
            kernel: MatmulKernel::Auto,
            half_operands: false,
        }
    }
    /// Rounds the operands to f16 when `on` (mixed precision).
    pub fn half_operands(mut self, on: bool) -> Self {
        self.half_operands = on;
        self
    }
    pub fn kernel(mut self, kernel: MatmulKernel) -> Self {
        self.kernel = kernel;
        self
    }
    /// A is stored K×M.
    pub fn trans_a(mut self) -> Self {
        self.trans_a = true;
        self
    }
    /// B is stored N×K.
    pub fn trans_b(mut self) -> Self {
        self.trans_b = true;
        self
    }
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }
    /// Adds into C instead of overwriting it (beta = 1).
    pub fn accumulate(mut self) -> Self {
        self.beta = 1.0;
        self
    }
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }
    pub fn layouts(mut self, a: Layout, b: Layout, c: Layout) -> Self {
        self.a = Some(a);
        self.b = Some(b);
        self.c = Some(c);
        self
    }

    fn dense_a(&self) -> Layout {
        let (rows, cols) = if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        Layout {
            offset: 0,
            ld: cols,
            batch_stride: rows * cols,
        }
    }
    fn dense_b(&self) -> Layout {
        let (rows, cols) = if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        Layout {
            offset: 0,
            ld: cols,
            batch_stride: rows * cols,
        }
    }
    fn dense_c(&self) -> Layout {
        Layout {
            offset: 0,
            ld: self.n,
            batch_stride: self.m * self.n,
        }
    }
}

/// Checks that every element a strided operand touches lies inside the tensor.
fn check_fits(
    name: &str,
    t: &Tensor,
    l: Layout,
    rows: usize,
    cols: usize,
    batch: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 || batch == 0 {
        return Ok(());
    }
    let last = l.offset + (batch - 1) * l.batch_stride + (rows - 1) * l.ld + cols - 1;
    if cols > l.ld || last >= t.len() {
        return Err(Error::shape(
            "matmul",
            format!(
                "operand {name} ('{}', {} elements) cannot hold {batch}×{rows}×{cols} at {l:?}",
                t.name(),
                t.len()
            ),
        ));
    }
    Ok(())
}

pub fn matmul(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, mm: Matmul) -> Result<Dispatch> {
    let (la, lb, lc) = (
        mm.a.unwrap_or(mm.dense_a()),
        mm.b.unwrap_or(mm.dense_b()),
        mm.c.unwrap_or(mm.dense_c()),
    );
    let (ar, ac) = if mm.trans_a {
        (mm.k, mm.m)
    } else {
        (mm.m, mm.k)
    };
    let (br, bc) = if mm.trans_b {
        (mm.n, mm.k)
    } else {
        (mm.k, mm.n)
    };
    if a.dtype() != DType::F32
        || c.dtype() != DType::F32
        || !(b.dtype() == DType::F32 || (b.dtype() == DType::F16 && mm.half_operands))
    {
        return Err(Error::shape(
            "matmul",
            format!(
                "operands '{}' {:?}, '{}' {:?}, '{}' {:?}: A and C are f32, B f32 (or f16 with half operands)",
                a.name(),
                a.dtype(),
                b.name(),
                b.dtype(),
                c.name(),
                c.dtype()
            ),
        ));
    }
    check_fits("A", a, la, ar, ac, mm.batch)?;
    check_fits("B", b, lb, br, bc, mm.batch)?;
    check_fits("C", c, lc, mm.m, mm.n, mm.batch)?;
    let cooperative = match mm.kernel {
        MatmulKernel::Cooperative => {
            check_cooperative(gpu, &mm, [la, lb, lc])?;
            true
        }
        MatmulKernel::Auto => {
            mm.half_operands
                && cooperative_fits(&mm, [la, lb, lc])
                && gpu.cooperative_matmul_passed(mm.trans_a, mm.trans_b)
        }
        MatmulKernel::Simple | MatmulKernel::Tiled => false,
    };
    let tiled = match mm.kernel {
        MatmulKernel::Auto => mm.m * mm.n >= 128 * 128,
        MatmulKernel::Simple | MatmulKernel::Cooperative => false,
        MatmulKernel::Tiled => true,
    };
    let (shader, entry, tile) = if cooperative {
        (&matmul_coop::SHADER, "matmul_coop", matmul_coop::BLOCK)
    } else if tiled {
        (&SHADER, "matmul_tiled", 128)
    } else {
        (&SHADER, "matmul_simple", 64)
    };
    let mut call = gpu.call(shader, entry);
    if cooperative {
        for (name, value) in matmul_coop::transposes(mm.trans_a, mm.trans_b) {
            call = call.constant(name, value);
        }
        if b.dtype() == DType::F16 {
            call = call.constant(matmul_coop::HALF_B.0, matmul_coop::HALF_B.1);
        }
    } else if mm.half_operands {
        gpu.require_f16("a matmul with half operands (mixed precision)")?;
        for (name, value) in HALF_OPERANDS {
            call = call.constant(name, value);
        }
        if b.dtype() == DType::F16 {
            call = call.constant(HALF_B.0, HALF_B.1);
        }
    }
    call.params(params![
        mm.m,
        mm.n,
        mm.k,
        mm.trans_a,
        mm.trans_b,
        la.ld,
        lb.ld,
        lc.ld,
        la.offset,
        lb.offset,
        lc.offset,
        la.batch_stride,
        lb.batch_stride,
        lc.batch_stride,
        mm.alpha,
        mm.beta,
    ])
    .bind(1, a)
    .bind(2, b)
    .bind(3, c)
    .dispatch([
        mm.n.div_ceil(tile) as u32,
        mm.m.div_ceil(tile) as u32,
        mm.batch as u32,
    ])
}

/// The tensor-core kernel stores whole 16×16 fragments of C, each row of
/// one 16-byte aligned (as cooperative loads and stores want), and reads A
/// and B in quads (vec4) along their contiguous dimension.
fn cooperative_fits(mm: &Matmul, [a, b, c]: [Layout; 3]) -> bool {
    let fragment = matmul_coop::FRAGMENT;
    let quads = |l: Layout| {
        [l.offset, l.ld, l.batch_stride]
            .iter()
            .all(|v| v.is_multiple_of(4))
    };
    mm.m > 0
        && mm.n > 0
        && mm.m.is_multiple_of(fragment)
        && mm.n.is_multiple_of(fragment)
        && mm.k.is_multiple_of(4)
        && quads(a)
        && quads(b)
        && quads(c)
}

fn check_cooperative(gpu: &Gpu, mm: &Matmul, layouts: [Layout; 3]) -> Result<()> {
    if !mm.half_operands {
        return Err(Error::Invalid(
            "the tensor-core matmul rounds its operands to f16: it needs half operands".into(),
        ));
    }
    if !gpu.features.cooperative_matrix {
        return Err(Error::Invalid(format!(
            "the tensor-core matmul needs cooperative matrices (16×16×16 f16·f16→f32, 32-wide subgroups), which {} lacks",
            gpu.info.name
        )));
    }
    if !cooperative_fits(mm, layouts) {
        return Err(Error::shape(
            "matmul",
            format!(
                "the tensor-core kernel needs M and N to be multiples of {}, and K and every layout (offset, ld, batch stride) multiples of 4, got {}×{}×{} at {layouts:?}",
                matmul_coop::FRAGMENT,
                mm.m,
                mm.n,
                mm.k
            ),
        ));
    }
    Ok(())
}

/// Like [`matmul`], but a product with few output tiles and a long K (a
/// weight gradient, K = batch·sequence) is split along K: `splits` partial
/// products run as a batch into scratch, then a fixed-order row sum adds them
/// into C (deterministic). Falls back to one dispatch where splitting does not
/// apply (batched products, strided C, beta other than 0 or 1).
pub fn matmul_split_k(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    mm: Matmul,
) -> Result<Vec<Dispatch>> {
    let tiles = mm.m.div_ceil(128) * mm.n.div_ceil(128);
    let dense_c = mm.c.is_none_or(|l| l == mm.dense_c());
    let splits = (2..=64)
        .rev()
        .find(|&s| {
            mm.k.is_multiple_of(s)
                && (mm.k / s).is_multiple_of(8)
                && mm.k / s >= 512
                && tiles * s <= 512
        })
        .filter(|_| tiles < 64 && mm.batch == 1 && dense_c && (mm.beta == 0.0 || mm.beta == 1.0));
    let Some(splits) = splits else {
        return Ok(vec![matmul(gpu, a, b, c, mm)?]);
    };
    let chunk = mm.k / splits;
    let (la, lb) = (mm.a.unwrap_or(mm.dense_a()), mm.b.unwrap_or(mm.dense_b()));
    // Chunk s of K starts s·chunk rows (stored K-major) or columns further on.
    let a_step = if mm.trans_a { chunk * la.ld } else { chunk };
    let b_step = if mm.trans_b { chunk } else { chunk * lb.ld };
    let partial = gpu.zeros(
        &format!("{}.split_k", c.name()),
        &[splits, mm.m, mm.n],
        crate::gpu::DType::F32,
    )?;
    let parts = Matmul {
        k: chunk,
        batch: splits,
        beta: 0.0,
        a: Some(Layout {
            batch_stride: a_step,
            ..la
        }),
        b: Some(Layout {
            batch_stride: b_step,
            ..lb
        }),
        c: Some(Layout {
            offset: 0,
            ld: mm.n,
            batch_stride: mm.m * mm.n,
        }),
        ..mm
    };
    let mut out = vec![matmul(gpu, a, b, &partial, parts)?];
    out.extend(super::reduce::sum_rows(
        gpu,
        &partial,
        c,
        (1, splits, mm.m * mm.n),
        mm.beta == 1.0,
    )?);
    Ok(out)
}
