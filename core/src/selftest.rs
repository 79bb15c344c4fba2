//! A quick on-device check that kernels compute what their f64 references
//! say, for `samnet doctor` and the browser's adapter report.

use serde::Serialize;

use crate::Result;
use crate::gpu::{DType, Gpu, Program, Shader};
use crate::ops::matmul::{Matmul, matmul};
use crate::reference;
use crate::rng::Rng;

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub max_rel_err: f64,
    pub tolerance: f64,
    pub passed: bool,
}

/// The compute entry points declared in a shader's source.
pub fn entry_points(shader: &Shader) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = shader.source;
    while let Some(at) = rest.find("@compute") {
        rest = &rest[at..];
        let Some(f) = rest.find("fn ") else { break };
        let after = &rest[f + 3..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        names.push(name);
        rest = after;
    }
    names
}

pub(crate) fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let diff = got.iter().zip(want).fold(0.0f64, |m, (g, w)| {
        let d = (*g as f64 - w).abs();
        if d.is_nan() { f64::INFINITY } else { m.max(d) }
    });
    diff / scale
}

/// Runs the self-test kernels on odd shapes and compares with the references.
pub async fn run(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut rng = Rng::new(7);
    let (m, n, k) = (37, 29, 45);
    let a: Vec<f64> = rng.normals(m * k);
    let b: Vec<f64> = rng.normals(n * k);
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let ga = gpu.upload_f32("selftest.a", &[m, k], &to32(&a))?;
    let gb = gpu.upload_f32("selftest.b", &[n, k], &to32(&b))?;
    let gc = gpu.zeros("selftest.c", &[m, n], DType::F32)?;
    let mut program = Program::new();
    program.push(matmul(gpu, &ga, &gb, &gc, Matmul::new(m, n, k).trans_b())?);
    gpu.run(&[&program])?;
    let got = gpu.read_f32(&gc).await?;
    let want = reference::matmul::matmul(&a, &b, m, n, k, false, true);
    let err = rel_err(&got, &want);
    let tolerance = 1e-4;
    Ok(vec![Check {
        name: "matmul 37x29x45 (x·Wᵀ)".into(),
        max_rel_err: err,
        tolerance,
        passed: err <= tolerance,
    }])
}
