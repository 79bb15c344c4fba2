//! Test harness shared by the kernel and model tests: one GPU device for the
//! whole test binary (created with WebGPU's default limits, so every kernel a
//! test runs is proven to fit a browser), seeded random inputs, the error
//! measure, and central finite differences.
//!
//! Error measure: `max_i |got_i - want_i| / max_i |want_i|`, the largest
//! error relative to the tensor's scale (element-wise relative error is
//! meaningless for entries near zero). Every check prints a line
//! `ERR <label> <value>` so `cargo test -- --nocapture | grep ^ERR` lists the
//! measured errors.

use std::sync::OnceLock;

use samnet_core::gpu::{DType, Dispatch, Gpu, GpuOptions, LimitsPolicy, Program, Tensor};
pub use samnet_core::rng::Rng;

/// f32 kernels against f64 references.
pub const TOL_F32: f64 = 1e-4;
/// f64 analytic gradients against f64 central differences.
pub const TOL_FD_F64: f64 = 1e-6;
/// f32 GPU gradients against central differences of the f32 GPU forward.
pub const TOL_FD_F32: f64 = 2e-2;

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let options = GpuOptions {
            limits: LimitsPolicy::WebGpuDefault,
            ..Default::default()
        };
        match Gpu::new_blocking(&options) {
            Ok(g) => {
                eprintln!("test adapter: {}", g.describe());
                g
            }
            Err(e) => panic!("kernel tests need a WebGPU adapter: {e}"),
        }
    })
}

pub fn upload(name: &str, shape: &[usize], data: &[f64]) -> Tensor {
    let data: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    gpu().upload_f32(name, shape, &data).expect("upload")
}

pub fn upload_u32(name: &str, shape: &[usize], data: &[u32]) -> Tensor {
    gpu().upload_u32(name, shape, data).expect("upload")
}

pub fn zeros(name: &str, shape: &[usize]) -> Tensor {
    gpu().zeros(name, shape, DType::F32).expect("alloc")
}

pub fn write(t: &Tensor, data: &[f64]) {
    let data: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    gpu().write_f32(t, &data).expect("write");
}

pub fn read(t: &Tensor) -> Vec<f64> {
    gpu()
        .read_f32_blocking(t)
        .expect("read")
        .into_iter()
        .map(f64::from)
        .collect()
}

pub fn read_u32(t: &Tensor) -> Vec<u32> {
    gpu().read_u32_blocking(t).expect("read")
}

/// Runs dispatches in order as one submission and waits.
pub fn run(dispatches: Vec<Dispatch>) {
    let mut p = Program::new();
    for d in dispatches {
        p.push(d);
    }
    gpu().run(&[&p]).expect("gpu run");
}

pub fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// `max |got - want| / max |want|` (absolute when `want` is all zero).
pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = max_abs(want);
    let diff = got.iter().zip(want).fold(0.0f64, |m, (g, w)| {
        if (g - w).is_nan() {
            f64::INFINITY
        } else {
            m.max((g - w).abs())
        }
    });
    if scale > 0.0 { diff / scale } else { diff }
}

/// Asserts `rel_err(got, want) <= tol` and logs the error.
pub fn check(label: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    let err = rel_err(got, want);
    println!("ERR {label} {err:.3e}");
    assert!(err <= tol, "{label}: relative error {err:.3e} > {tol:.1e}");
    err
}

/// Central differences of `f` at the chosen coordinates of `x`.
pub fn finite_diff(
    mut f: impl FnMut(&[f64]) -> f64,
    x: &[f64],
    coords: &[usize],
    eps: f64,
) -> Vec<f64> {
    let mut xp = x.to_vec();
    coords
        .iter()
        .map(|&i| {
            xp[i] = x[i] + eps;
            let up = f(&xp);
            xp[i] = x[i] - eps;
            let down = f(&xp);
            xp[i] = x[i];
            (up - down) / (2.0 * eps)
        })
        .collect()
}

/// Checks `grad` at `coords` against central differences of `f`; the error is
/// relative to the largest gradient entry (so tiny entries do not dominate).
#[allow(clippy::too_many_arguments)]
pub fn check_fd(
    label: &str,
    grad: &[f64],
    f: impl FnMut(&[f64]) -> f64,
    x: &[f64],
    coords: &[usize],
    eps: f64,
    tol: f64,
) -> f64 {
    let fd = finite_diff(f, x, coords, eps);
    let picked: Vec<f64> = coords.iter().map(|&i| grad[i]).collect();
    let scale = max_abs(grad).max(1e-12);
    let err = picked
        .iter()
        .zip(&fd)
        .fold(0.0f64, |m, (g, d)| m.max((g - d).abs()))
        / scale;
    println!("ERR {label} {err:.3e}");
    assert!(
        err <= tol,
        "{label}: finite-difference error {err:.3e} > {tol:.1e}\n analytic {picked:?}\n numeric  {fd:?}"
    );
    err
}

/// `n` distinct coordinates in `0..len`, spread by the RNG (all when len ≤ n).
pub fn coords(rng: &mut Rng, len: usize, n: usize) -> Vec<usize> {
    if len <= n {
        return (0..len).collect();
    }
    let mut picked = Vec::with_capacity(n);
    while picked.len() < n {
        let i = rng.below(len as u64) as usize;
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked
}

/// `Σ_i out_i · r_i`: a scalar loss whose gradient with respect to `out` is `r`.
pub fn dot(out: &[f64], r: &[f64]) -> f64 {
    out.iter().zip(r).map(|(a, b)| a * b).sum()
}

/// A closure that evaluates a GPU forward at other values of one input:
/// writes `values` into `input`, runs `forward`, reads `output`, and puts the
/// original values back.
pub fn gpu_forward<'a>(
    input: &'a Tensor,
    original: &'a [f64],
    forward: &'a [Dispatch],
    output: &'a Tensor,
) -> impl FnMut(&[f64]) -> Vec<f64> + 'a {
    move |values| {
        write(input, values);
        run(forward.to_vec());
        let out = read(output);
        write(input, original);
        out
    }
}

/// Checks 2–4 of docs/kernels.md for the gradient with respect to one input
/// `x`, given the output cotangent `r`: the reference gradient `want` against
/// f64 central differences of the reference forward, the GPU gradient `got`
/// against `want`, and `got` against central differences of the GPU forward.
#[allow(clippy::too_many_arguments)]
pub fn check_backward(
    label: &str,
    x: &[f64],
    r: &[f64],
    want: &[f64],
    got: &[f64],
    reference_forward: impl Fn(&[f64]) -> Vec<f64>,
    mut gpu_forward: impl FnMut(&[f64]) -> Vec<f64>,
    rng: &mut Rng,
) {
    let pick = coords(rng, x.len(), 10);
    check_fd(
        &format!("{label} ref vs fd"),
        want,
        |v| dot(&reference_forward(v), r),
        x,
        &pick,
        1e-6,
        TOL_FD_F64,
    );
    check(&format!("{label} gpu vs ref"), got, want, TOL_F32);
    check_fd(
        &format!("{label} gpu vs fd"),
        got,
        |v| dot(&gpu_forward(v), r),
        x,
        &pick,
        1e-2,
        TOL_FD_F32,
    );
}
