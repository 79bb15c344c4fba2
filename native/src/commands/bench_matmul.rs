//! `samnet bench matmul`: throughput of each matmul kernel at N³ and at the
//! products a Phase-1 training step runs (batch 64 × sequence 256 rows,
//! d_model 256, SwiGLU hidden 1024, vocabulary 65), as JSON.
//! bench/torch_baseline.py --matmul-like reads the same shapes back and
//! times cuBLAS on them, so both sides measure identical products.

use std::time::Instant;

use samnet_core::gpu::{DType, Gpu, GpuOptions, Program, Tensor};
use samnet_core::ops::matmul::{Matmul, MatmulKernel, matmul, matmul_split_k};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct MatmulArgs {
    /// M = N = K of the square product.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Rows of the model-shaped products (batch × sequence of the preset).
    #[arg(long, default_value_t = 64 * 256)]
    rows: usize,
}

/// One product to time: op(A) is M×K, op(B) K×N.
struct Shape {
    name: String,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
}

impl Shape {
    /// A weight gradient: split along K as the model's backward does.
    fn is_weight_gradient(&self) -> bool {
        self.trans_a && !self.trans_b
    }
}

/// The three products of each linear layer of a Phase-1 step (forward
/// x·Wᵀ, dX = dY·W, dW = dYᵀ·X), and the logits (N = 65, no tensor cores).
fn model_shapes(rows: usize) -> Vec<Shape> {
    let shape = |name: &str, m, n, k, trans_a, trans_b| Shape {
        name: name.to_string(),
        m,
        n,
        k,
        trans_a,
        trans_b,
    };
    let mut shapes = Vec::new();
    for (layer, d_in, d_out) in [
        ("attn.qkv", 256, 768),
        ("attn.out", 256, 256),
        ("ffn.w13", 256, 2048),
        ("ffn.w2", 1024, 256),
    ] {
        shapes.push(shape(
            &format!("{layer} fwd"),
            rows,
            d_out,
            d_in,
            false,
            true,
        ));
        shapes.push(shape(
            &format!("{layer} dX"),
            rows,
            d_in,
            d_out,
            false,
            false,
        ));
        shapes.push(shape(
            &format!("{layer} dW"),
            d_out,
            d_in,
            rows,
            true,
            false,
        ));
    }
    shapes.push(shape("logits fwd", rows, 65, 256, false, true));
    shapes
}

/// The kernels compared: f32, f16 operands on the fallback kernel, f16
/// operands on tensor cores.
const KERNELS: [(&str, MatmulKernel, bool); 3] = [
    ("f32", MatmulKernel::Auto, false),
    ("f16 operands, fallback", MatmulKernel::Tiled, true),
    (
        "f16 operands, tensor cores",
        MatmulKernel::Cooperative,
        true,
    ),
];

pub fn run(options: &GpuOptions, args: MatmulArgs) -> anyhow::Result<()> {
    let gpu = Gpu::new_blocking(options)?;
    let n = args.size;
    let square = Shape {
        name: format!("{n}³"),
        m: n,
        n,
        k: n,
        trans_a: false,
        trans_b: false,
    };
    let mut simple = time(&gpu, &square, MatmulKernel::Simple, false, args.reps)?;
    simple["label"] = json!("f32, simple kernel");
    let mut results = vec![simple];
    for (label, kernel, half) in KERNELS {
        let mut row = time(&gpu, &square, kernel, half, args.reps)?;
        row["label"] = json!(label);
        results.push(row);
    }
    let mut shapes = Vec::new();
    for shape in model_shapes(args.rows) {
        for (label, kernel, half) in KERNELS {
            let mut row = time(&gpu, &shape, kernel, half, args.reps)?;
            row["label"] = json!(label);
            shapes.push(row);
        }
    }
    let report = json!({
        "bench": "matmul",
        "adapter": gpu.info.name,
        "size": n,
        "cooperative_matmul": gpu.cooperative_matmul,
        "results": results,
        "shapes": shapes,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Times `reps` products after one warm-up run; a kernel that cannot run
/// this product here gives a row with the reason instead of a time.
fn time(
    gpu: &Gpu,
    s: &Shape,
    kernel: MatmulKernel,
    half: bool,
    reps: usize,
) -> anyhow::Result<Value> {
    let mut row = json!({
        "name": s.name, "m": s.m, "n": s.n, "k": s.k,
        "trans_a": s.trans_a, "trans_b": s.trans_b,
        "kernel": format!("{kernel:?}"), "half_operands": half,
    });
    let cooperative = kernel == MatmulKernel::Cooperative;
    if cooperative
        && gpu.features.cooperative_matrix
        && !gpu.cooperative_matmul_passed(s.trans_a, s.trans_b)
    {
        row["skipped"] = json!("self-test failed for this variant");
        return Ok(row);
    }
    let (a_rows, a_cols) = if s.trans_a { (s.k, s.m) } else { (s.m, s.k) };
    let (b_rows, b_cols) = if s.trans_b { (s.n, s.k) } else { (s.k, s.n) };
    // As in the model: B is the weight's f16 copy in the products that read
    // a weight (not in a weight gradient, whose B is the activations).
    let b_dtype = if half && !s.is_weight_gradient() {
        DType::F16
    } else {
        DType::F32
    };
    let a = gpu.zeros("bench.a", &[a_rows, a_cols], DType::F32)?;
    let b = gpu.zeros("bench.b", &[b_rows, b_cols], b_dtype)?;
    let c = gpu.zeros("bench.c", &[s.m, s.n], DType::F32)?;
    let mut mm = Matmul::new(s.m, s.n, s.k)
        .kernel(kernel)
        .half_operands(half);
    mm.trans_a = s.trans_a;
    mm.trans_b = s.trans_b;
    let mut program = Program::new();
    for _ in 0..reps {
        match product(gpu, &a, &b, &c, s, mm) {
            Ok(dispatches) => program.push_all(dispatches),
            // The tensor-core kernel's own reason (no device support, a shape it cannot take).
            Err(e) if cooperative => {
                row["skipped"] = json!(e.to_string());
                return Ok(row);
            }
            Err(e) => return Err(e),
        }
    }
    gpu.run(&[&program])?;
    let started = Instant::now();
    gpu.run(&[&program])?;
    let secs = started.elapsed().as_secs_f64() / reps as f64;
    row["ms"] = json!(secs * 1e3);
    row["tflops"] = json!(2.0 * (s.m * s.n * s.k) as f64 / secs / 1e12);
    Ok(row)
}

fn product(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    s: &Shape,
    mm: Matmul,
) -> anyhow::Result<Vec<samnet_core::gpu::Dispatch>> {
    Ok(if s.is_weight_gradient() {
        matmul_split_k(gpu, a, b, c, mm)?
    } else {
        vec![matmul(gpu, a, b, c, mm)?]
    })
}
