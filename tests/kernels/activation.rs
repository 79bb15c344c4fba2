use samnet_core::ops::activation;
use samnet_core::reference::activation as reference;
use samnet_tests::*;

#[test]
fn silu_forward_backward_and_extremes() {
    let n = 1001;
    let mut rng = Rng::new(80);
    let mut x: Vec<f64> = rng.normals(n).iter().map(|v| 3.0 * v).collect();
    x[0] = 100.0;
    x[1] = -100.0;
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

#[test]
fn swiglu_forward_backward() {
    let (rows, hidden) = (37, 67);
    let mut rng = Rng::new(81);
    let h = rng.normals(rows * 2 * hidden);
    let dout = rng.normals(rows * hidden);
    let (gh, gout, gdout, gdh) = (
        upload("h", &[rows, 2 * hidden], &h),
        zeros("out", &[rows, hidden]),
        upload("dout", &[rows, hidden], &dout),
        zeros("dh", &[rows, 2 * hidden]),
    );
    let forward = vec![activation::swiglu_forward(gpu(), hidden, &gh, &gout).unwrap()];
    run(forward.clone());
    let fwd = |v: &[f64]| reference::swiglu(v, hidden);
    check("swiglu fwd", &read(&gout), &fwd(&h), TOL_F32);
    run(vec![
        activation::swiglu_backward(gpu(), hidden, &gh, &gdout, &gdh).unwrap(),
    ]);
    let want = reference::swiglu_backward(&h, &dout, hidden);
    check_backward(
        "swiglu",
        &h,
        &dout,
        &want,
        &read(&gdh),
        fwd,
        gpu_forward(&gh, &h, &forward, &gout),
        &mut rng,
    );
}
