use samnet_core::ops::linear::{self, LinearGrads, LinearShape};
use samnet_core::reference::linear as reference;
use samnet_tests::*;

/// d_out 67 adds the bias one column an invocation, 44 four (quads).
#[test]
fn forward_and_backward_with_bias() {
    for (d_out, seed) in [(67, 30), (44, 31)] {
        case(
            LinearShape {
                rows: 37,
                d_in: 24,
                d_out,
            },
            seed,
        );
    }
}

fn case(s: LinearShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.normals(s.rows * s.d_in);
    let w = rng.normals(s.d_out * s.d_in);
    let b = rng.normals(s.d_out);
    let dy = rng.normals(s.rows * s.d_out);
    let fwd =
        |x: &[f64], w: &[f64], b: &[f64]| reference::forward(x, w, b, s.rows, s.d_in, s.d_out);

    let (gx, gw, gb) = (
        upload("x", &[s.rows, s.d_in], &x),
        upload("w", &[s.d_out, s.d_in], &w),
        upload("b", &[s.d_out], &b),
    );
    let gy = zeros("y", &[s.rows, s.d_out]);
    let forward = linear::forward(gpu(), s, &gx, &gw, Some(&gb), &gy).unwrap();
    run(forward.clone());
    check("linear fwd", &read(&gy), &fwd(&x, &w, &b), TOL_F32);

    let (want_dx, want_dw, want_db) = reference::backward(&x, &w, &dy, s.rows, s.d_in, s.d_out);
    let (px, pw, pb) = (
        coords(&mut rng, x.len(), 10),
        coords(&mut rng, w.len(), 10),
        coords(&mut rng, b.len(), 10),
    );
    check_fd(
        "linear ref dx vs fd",
        &want_dx,
        |v| dot(&fwd(v, &w, &b), &dy),
        &x,
        &px,
        1e-6,
        TOL_FD_F64,
    );
    check_fd(
        "linear ref dw vs fd",
        &want_dw,
        |v| dot(&fwd(&x, v, &b), &dy),
        &w,
        &pw,
        1e-6,
        TOL_FD_F64,
    );
    check_fd(
        "linear ref db vs fd",
        &want_db,
        |v| dot(&fwd(&x, &w, v), &dy),
        &b,
        &pb,
        1e-6,
        TOL_FD_F64,
    );

    let gdy = upload("dy", &[s.rows, s.d_out], &dy);
    let (gdx, gdw, gdb) = (
        zeros("dx", &[s.rows, s.d_in]),
        zeros("dw", &[s.d_out, s.d_in]),
        zeros("db", &[s.d_out]),
    );
    let grads = LinearGrads {
        dx: Some(&gdx),
        dw: &gdw,
        db: Some(&gdb),
        accumulate_dx: false,
        accumulate_dw: false,
    };
    run(linear::backward(gpu(), s, &gx, &gw, &gdy, grads).unwrap());
    let (got_dx, got_dw, got_db) = (read(&gdx), read(&gdw), read(&gdb));
    check("linear bwd dx", &got_dx, &want_dx, TOL_F32);
    check("linear bwd dw", &got_dw, &want_dw, TOL_F32);
    check("linear bwd db", &got_db, &want_db, TOL_F32);

    let gpu_loss = |t: &samnet_core::gpu::Tensor, v: &[f64], restore: &[f64]| {
        write(t, v);
        run(forward.clone());
        let l = dot(&read(&gy), &dy);
        write(t, restore);
        l
    };
    check_fd(
        "linear gpu dx vs fd",
        &got_dx,
        |v| gpu_loss(&gx, v, &x),
        &x,
        &px,
        1e-2,
        TOL_FD_F32,
    );
    check_fd(
        "linear gpu dw vs fd",
        &got_dw,
        |v| gpu_loss(&gw, v, &w),
        &w,
        &pw,
        1e-2,
        TOL_FD_F32,
    );
    check_fd(
        "linear gpu db vs fd",
        &got_db,
        |v| gpu_loss(&gb, v, &b),
        &b,
        &pb,
        1e-2,
        TOL_FD_F32,
    );

    // Accumulating gradients add onto what is there.
    let grads = LinearGrads {
        dx: Some(&gdx),
        dw: &gdw,
        db: Some(&gdb),
        accumulate_dx: true,
        accumulate_dw: true,
    };
    run(linear::backward(gpu(), s, &gx, &gw, &gdy, grads).unwrap());
    let twice = |v: &[f64]| v.iter().map(|x| 2.0 * x).collect::<Vec<_>>();
    check(
        "linear bwd accumulate dx",
        &read(&gdx),
        &twice(&want_dx),
        TOL_F32,
    );
    check(
        "linear bwd accumulate dw",
        &read(&gdw),
        &twice(&want_dw),
        TOL_F32,
    );
    check(
        "linear bwd accumulate db",
        &read(&gdb),
        &twice(&want_db),
        TOL_F32,
    );
}
