use samnet_core::ops::adaln::{self, ModShape, ShiftScale};
use samnet_core::reference::adaln as reference;
use samnet_tests::*;

// The 4th and 5th of six d-wide blocks of a (B, 6d) modulation tensor.
const S: ModShape = ModShape {
    batch: 3,
    seq: 13,
    d: 24,
    stride: 6 * 24,
};
const AT: ShiftScale = ShiftScale {
    shift: 3 * 24,
    scale: 4 * 24,
};

#[test]
fn modulate_forward_and_backward() {
    let n = S.batch * S.seq * S.d;
    let mut rng = Rng::new(70);
    let (m, x, dy) = (
        rng.normals(S.batch * S.stride),
        rng.normals(n),
        rng.normals(n),
    );
    let (gm, gx, gy) = (
        upload("mod", &[S.batch, S.stride], &m),
        upload("x", &[n], &x),
        zeros("y", &[n]),
    );
    let forward = vec![adaln::modulate_forward(gpu(), S, AT, &gm, &gx, &gy).unwrap()];
    run(forward.clone());
    let fwd_x = |v: &[f64]| reference::modulate(&m, v, S.seq, S.d, S.stride, AT.shift, AT.scale);
    let fwd_m = |v: &[f64]| reference::modulate(v, &x, S.seq, S.d, S.stride, AT.shift, AT.scale);
    check("modulate fwd", &read(&gy), &fwd_x(&x), TOL_F32);

    let (want_dx, want_dm) =
        reference::modulate_backward(&m, &x, &dy, S.seq, S.d, S.stride, AT.shift, AT.scale);
    let (gdy, gdx) = (upload("dy", &[n], &dy), zeros("dx", &[n]));
    let gdm = upload("dmod", &[S.batch, S.stride], &vec![7.0; S.batch * S.stride]);
    run(adaln::modulate_backward(gpu(), S, AT, &gm, &gx, &gdy, &gdx, &gdm).unwrap());
    let got_dm = read(&gdm);
    // Only the shift and scale blocks are written.
    for (i, v) in got_dm.iter().enumerate() {
        let col = i % S.stride;
        if !(AT.shift..AT.scale + S.d).contains(&col) {
            assert_eq!(*v, 7.0, "column {col} was touched");
        }
    }
    let got_dm: Vec<f64> = got_dm
        .iter()
        .zip(&want_dm)
        .map(|(g, w)| if *w == 0.0 { 0.0 } else { *g })
        .collect();
    check_backward(
        "modulate dx",
        &x,
        &dy,
        &want_dx,
        &read(&gdx),
        fwd_x,
        gpu_forward(&gx, &x, &forward, &gy),
        &mut rng,
    );
    check_backward(
        "modulate dmod",
        &m,
        &dy,
        &want_dm,
        &got_dm,
        fwd_m,
        gpu_forward(&gm, &m, &forward, &gy),
        &mut rng,
    );
}

#[test]
fn gate_forward_and_backward() {
    let n = S.batch * S.seq * S.d;
    let gate = 5 * S.d;
    let mut rng = Rng::new(71);
    let (m, y, h, dh) = (
        rng.normals(S.batch * S.stride),
        rng.normals(n),
        rng.normals(n),
        rng.normals(n),
    );
    let (gm, gy, gh) = (
        upload("mod", &[S.batch, S.stride], &m),
        upload("y", &[n], &y),
        upload("h", &[n], &h),
    );
    let forward = vec![adaln::gate_forward(gpu(), S, gate, &gm, &gy, &gh).unwrap()];
    run(forward.clone());
    let fwd_y = |v: &[f64]| reference::gate(&m, v, &h, S.seq, S.d, S.stride, gate);
    let fwd_m = |v: &[f64]| reference::gate(v, &y, &h, S.seq, S.d, S.stride, gate);
    check("gate fwd", &read(&gh), &fwd_y(&y), TOL_F32);

    let (want_dy, want_dm) = reference::gate_backward(&m, &y, &dh, S.seq, S.d, S.stride, gate);
    let (gdh, gdy, gdm) = (
        upload("dh", &[n], &dh),
        zeros("dy", &[n]),
        zeros("dmod", &[S.batch, S.stride]),
    );
    run(adaln::gate_backward(gpu(), S, gate, &gm, &gy, &gdh, &gdy, &gdm).unwrap());
    // The forward updates h in place, so the GPU forward restarts from h each time.
    let gpu_fwd = |input: &samnet_core::gpu::Tensor, original: &[f64], values: &[f64]| {
        write(&gh, &h);
        write(input, values);
        run(forward.clone());
        write(input, original);
        read(&gh)
    };
    check_backward(
        "gate dy",
        &y,
        &dh,
        &want_dy,
        &read(&gdy),
        fwd_y,
        |v| gpu_fwd(&gy, &y, v),
        &mut rng,
    );
    check_backward(
        "gate dmod",
        &m,
        &dh,
        &want_dm,
        &read(&gdm),
        fwd_m,
        |v| gpu_fwd(&gm, &m, v),
        &mut rng,
    );
}

#[test]
fn offsets_outside_the_stride_are_rejected() {
    let s = ModShape {
        batch: 1,
        seq: 2,
        d: 4,
        stride: 8,
    };
    let at = ShiftScale { shift: 0, scale: 6 };
    let (m, x, y) = (
        zeros("mod", &[1, 8]),
        zeros("x", &[2, 4]),
        zeros("y", &[2, 4]),
    );
    assert!(adaln::modulate_forward(gpu(), s, at, &m, &x, &y).is_err());
}
