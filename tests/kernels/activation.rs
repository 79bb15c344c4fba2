use samnet_core::ops::activation;
use samnet_core::reference::activation as reference;
use samnet_tests::*;

/// n 1001 runs an element an invocation, n 1000 four (quads).
#[test]
fn silu_forward_backward() {
    silu_case(1001, 80);
    silu_case(1000, 83);
}

fn silu_case(n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = rng.normals(n).iter().map(|v| 3.0 * v).collect();
    let dy = rng.normals(n);
    let (gx, gy, gdy, gdx) = (
        upload("x", &[n], &x),
        zeros("y", &[n]),
        upload("dy", &[n], &dy),
        zeros("dx", &[n]),
    );
    let forward = vec![activation::silu_forward(gpu(), &gx, &gy).unwrap()];
    run(forward.clone());
    let y = read(&gy);
    assert!(y.iter().all(|v| v.is_finite()));
    check("silu fwd", &y, &reference::silu(&x), TOL_F32);
    run(vec![
        activation::silu_backward(gpu(), &gx, &gdy, &gdx).unwrap(),
    ]);
    let got = read(&gdx);
    assert!(got.iter().all(|v| v.is_finite()));
    check_backward(
        "silu",
        &x,
        &dy,
        &reference::silu_backward(&x, &dy),
        &got,
        reference::silu,
        gpu_forward(&gx, &x, &forward, &gy),
        &mut rng,
    );
}

/// The bias of W1/W3 is added inside the kernel: [a | b] = h + bias. H 67
/// runs a column an invocation, H 44 four (quads).
#[test]
fn swiglu_forward_backward() {
    swiglu_case(37, 67, 81);
    swiglu_case(29, 44, 82);
}

fn swiglu_case(rows: usize, hidden: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let h = rng.normals(rows * 2 * hidden);
    let bias = rng.normals(2 * hidden);
    let dout = rng.normals(rows * hidden);
    let (gh, gbias, gout, gdout, gdh) = (
        upload("h", &[rows, 2 * hidden], &h),
        upload("bias", &[2 * hidden], &bias),
        zeros("out", &[rows, hidden]),
        upload("dout", &[rows, hidden], &dout),
        zeros("dh", &[rows, 2 * hidden]),
    );
    let forward = vec![activation::swiglu_forward(gpu(), hidden, (&gh, &gbias), &gout).unwrap()];
    run(forward.clone());
    let plus_bias = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .enumerate()
            .map(|(i, x)| x + bias[i % (2 * hidden)])
            .collect()
    };
    let fwd = |v: &[f64]| reference::swiglu(&plus_bias(v), hidden);
    check(
        &format!("swiglu {hidden} fwd"),
        &read(&gout),
        &fwd(&h),
        TOL_F32,
    );
    run(vec![
        activation::swiglu_backward(gpu(), hidden, (&gh, &gbias), &gdout, &gdh).unwrap(),
    ]);
    let want = reference::swiglu_backward(&plus_bias(&h), &dout, hidden);
    check_backward(
        &format!("swiglu {hidden}"),
        &h,
        &dout,
        &want,
        &read(&gdh),
        fwd,
        gpu_forward(&gh, &h, &forward, &gout),
        &mut rng,
    );
    let short = zeros("bias", &[hidden]);
    let err = activation::swiglu_forward(gpu(), hidden, (&gh, &short), &gout).unwrap_err();
    assert!(err.to_string().contains("'bias'"), "{err}");
}

/// `max_i |got_i − want_i| / max(|want_i|, 1)`: relative where the value is
/// large, absolute where it underflows (silu(−100) ≈ −4e−42 is 0 in f32).
fn check_elementwise(label: &str, got: &[f64], want: &[f64]) {
    assert!(got.iter().all(|v| v.is_finite()), "{label}: {got:?}");
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs() / w.abs().max(1.0)));
    println!("ERR {label} {err:.3e}");
    assert!(
        err <= TOL_F32,
        "{label}: error {err:.3e}\n got  {got:?}\n want {want:?}"
    );
}

#[test]
fn silu_and_swiglu_are_finite_and_exact_at_extremes() {
    // exp(−x) overflows f32 below x ≈ −88.7; the kernels must not depend on inf.
    let x = [
        -1000.0, -100.0, -89.0, -88.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 88.0, 89.0, 100.0, 1000.0,
    ];
    let n = x.len();
    let ones = vec![1.0; n];
    let (gx, gy, gones, gdx) = (
        upload("x", &[n], &x),
        zeros("y", &[n]),
        upload("dy", &[n], &ones),
        zeros("dx", &[n]),
    );
    run(vec![
        activation::silu_forward(gpu(), &gx, &gy).unwrap(),
        activation::silu_backward(gpu(), &gx, &gones, &gdx).unwrap(),
    ]);
    check_elementwise("silu extremes fwd", &read(&gy), &reference::silu(&x));
    check_elementwise(
        "silu extremes bwd",
        &read(&gdx),
        &reference::silu_backward(&x, &ones),
    );

    // One row per value: a = x, b = 0.5 (a zero bias).
    let h: Vec<f64> = x.iter().flat_map(|&a| [a, 0.5]).collect();
    let (gh, gbias, gout, gdh) = (
        upload("h", &[n, 2], &h),
        zeros("bias", &[2]),
        zeros("out", &[n, 1]),
        zeros("dh", &[n, 2]),
    );
    run(vec![
        activation::swiglu_forward(gpu(), 1, (&gh, &gbias), &gout).unwrap(),
        activation::swiglu_backward(gpu(), 1, (&gh, &gbias), &gones, &gdh).unwrap(),
    ]);
    check_elementwise(
        "swiglu extremes fwd",
        &read(&gout),
        &reference::swiglu(&h, 1),
    );
    check_elementwise(
        "swiglu extremes bwd",
        &read(&gdh),
        &reference::swiglu_backward(&h, &ones, 1),
    );
}
