//! The tensor-core (cooperative-matrix) version of the mixed-precision
//! matmul (shaders/matmul_coop.wgsl): whether the adapter can run it, and the
//! self-test that decides, per transpose variant, whether [`super::matmul`]
//! uses it. Selection happens once, when the [`Gpu`] opens.

use serde::Serialize;

use super::matmul::{Matmul, MatmulKernel, matmul};
use super::precision::half_copy;
use crate::Result;
use crate::gpu::{DType, Gpu, Program, Shader};
use crate::reference;
use crate::rng::Rng;
use crate::shader_file;

pub const SHADER: Shader = shader_file!("matmul_coop");

/// The compile-time switch that reads B from a weight's f16 copy.
pub const HALF_B: (&str, &str) = ("OperandB", "f16");

/// Output block of one workgroup (both dimensions).
pub const BLOCK: usize = 128;

/// M and N must be multiples of this (a 16×16 fragment is stored whole).
pub const FRAGMENT: usize = 16;

/// Workgroup memory the kernel stages its padded f16 slices in (two arrays
/// of 5,120 halves): beyond WebGPU's default 16 KiB, which is why the device
/// asks for it only where it runs this kernel (never in a browser).
pub const WORKGROUP_BYTES: u32 = 20480;

/// The compile-time switches of one transpose variant.
pub fn transposes(trans_a: bool, trans_b: bool) -> [(&'static str, &'static str); 2] {
    let flag = |t: bool| if t { "true" } else { "false" };
    [("TRANS_A", flag(trans_a)), ("TRANS_B", flag(trans_b))]
}

/// The subgroup size the kernel's layout assumes: 256 invocations as 8
/// subgroups, each owning a 32×64 part of the block.
const SUBGROUP_SIZE: u32 = 32;

/// Whether `adapter` can run the kernel: it offers cooperative matrices with
/// a 16×16×16 f16·f16→f32 configuration, SHADER_F16 and SUBGROUP, its
/// subgroups are always 32 wide, and it has the workgroup memory.
pub fn adapter_supports(adapter: &wgpu::Adapter) -> bool {
    let needed = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    let info = adapter.get_info();
    adapter.features().contains(needed)
        && info.subgroup_min_size == SUBGROUP_SIZE
        && info.subgroup_max_size == SUBGROUP_SIZE
        && adapter.limits().max_compute_workgroup_storage_size >= WORKGROUP_BYTES
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
}

/// The four transpose variants, NN (dX = dY·W), NT (the forward x·Wᵀ), TN
/// (dW = dYᵀ·X) and TT, as (trans_a, trans_b).
pub const VARIANTS: [(&str, bool, bool); 4] = [
    ("NN", false, false),
    ("NT", false, true),
    ("TN", true, false),
    ("TT", true, true),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The adapter cannot run the kernel at all.
    Unavailable,
}

/// One variant's self-test against the f64 reference (B as f32 and as an
/// f16 tensor, alpha and beta, a batch of two, partial blocks).
#[derive(Clone, Debug, Serialize)]
pub struct VariantCheck {
    pub variant: &'static str,
    pub status: Status,
    pub max_rel_err: Option<f64>,
    /// The configuration with the largest error (B f32 or B f16).
    pub worst_case: Option<&'static str>,
    pub tolerance: f64,
    /// Why it failed, when the kernel did not run at all.
    pub error: Option<String>,
}

/// Operands are rounded to f16 in both kernel and reference, so the only
/// difference left is the order (and hardware rounding) of the f32 sums.
const TOLERANCE: f64 = 1e-3;

impl VariantCheck {
    pub fn unavailable() -> Vec<VariantCheck> {
        VARIANTS
            .iter()
            .map(|&(variant, _, _)| VariantCheck {
                variant,
                status: Status::Unavailable,
                max_rel_err: None,
                worst_case: None,
                tolerance: TOLERANCE,
                error: None,
            })
            .collect()
    }
}

/// Runs every variant on the cooperative kernel and compares with the f64
/// reference; a failing variant prints one warning line naming the adapter.
pub async fn self_test(gpu: &Gpu) -> Vec<VariantCheck> {
    let mut checks = Vec::new();
    for (variant, trans_a, trans_b) in VARIANTS {
        let (max_rel_err, worst_case, error) = match check_variant(gpu, trans_a, trans_b).await {
            Ok((err, case)) => (Some(err), Some(case), None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        let passed = max_rel_err.is_some_and(|e| e <= TOLERANCE);
        if !passed {
            let why = match &error {
                Some(e) => e.clone(),
                None => format!(
                    "max relative error {:.2e} > {TOLERANCE:.0e} with {}",
                    max_rel_err.unwrap_or(f64::NAN),
                    worst_case.unwrap_or("-")
                ),
            };
            eprintln!(
                "warning: tensor-core matmul {variant} disabled on {}: self-test failed ({why}); using the fallback kernel",
                gpu.info.name
            );
        }
        checks.push(VariantCheck {
            variant,
            status: if passed { Status::Pass } else { Status::Fail },
            max_rel_err,
            worst_case,
            tolerance: TOLERANCE,
            error,
        });
    }
    checks
}

/// The worst relative error of one variant over B as f32 and as f16, and
/// the configuration it came from.
async fn check_variant(gpu: &Gpu, trans_a: bool, trans_b: bool) -> Result<(f64, &'static str)> {
    // M and N multiples of 16, each a full 128 block and a partial one; K
    // two full 32-wide slices and a partial one (zero-filled).
    let (m, n, k, batch) = (144, 272, 72, 2);
    let mut rng = Rng::new(11);
    let a: Vec<f64> = rng.normals(batch * m * k);
    let b: Vec<f64> = rng.normals(batch * k * n);
    let c0: Vec<f64> = rng.normals(batch * m * n);
    let (alpha, beta) = (0.5, 1.0);
    let mut want = Vec::with_capacity(batch * m * n);
    let half = |v: &[f64]| {
        v.iter()
            .map(|&x| reference::matmul::round_to_half(x))
            .collect::<Vec<_>>()
    };
    for i in 0..batch {
        let ai = half(&a[i * m * k..(i + 1) * m * k]);
        let bi = half(&b[i * k * n..(i + 1) * k * n]);
        let product = reference::matmul::matmul(&ai, &bi, m, n, k, trans_a, trans_b);
        let ci = &c0[i * m * n..(i + 1) * m * n];
        want.extend(product.iter().zip(ci).map(|(p, c)| alpha * p + beta * c));
    }
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let ga = gpu.upload_f32("coop_selftest.a", &[batch * m * k], &to32(&a))?;
    let gb = gpu.upload_f32("coop_selftest.b", &[batch * k * n], &to32(&b))?;
    let gb_half = gpu.zeros("coop_selftest.b_half", &[batch * k * n], DType::F16)?;
    let mut worst = (0.0f64, "B f32");
    for (case, half_b) in [("B f32", false), ("B f16", true)] {
        let gc = gpu.upload_f32("coop_selftest.c", &[batch * m * n], &to32(&c0))?;
        let mut mm = Matmul::new(m, n, k)
            .batch(batch)
            .alpha(alpha as f32)
            .accumulate()
            .half_operands(true)
            .kernel(MatmulKernel::Cooperative);
        mm.trans_a = trans_a;
        mm.trans_b = trans_b;
        let mut program = Program::new();
        if half_b {
            program.push(half_copy(gpu, &gb, &gb_half)?);
        }
        let operand_b = if half_b { &gb_half } else { &gb };
        program.push(matmul(gpu, &ga, operand_b, &gc, mm)?);
        gpu.run(&[&program])?;
        let got = gpu.read_f32(&gc).await?;
        let err = crate::selftest::rel_err(&got, &want);
        if err > worst.0 || err.is_nan() {
            worst = (err, case);
        }
    }
    Ok(worst)
}
