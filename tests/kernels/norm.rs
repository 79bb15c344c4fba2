use samnet_core::ops::norm::{self, NormKind, NormShape};
use samnet_core::reference::norm as reference;
use samnet_tests::*;

fn case(kind: NormKind, rows: usize, cols: usize, seed: u64) {
    let s = NormShape {
        rows,
        cols,
        eps: 1e-6,
    };
    let label = format!("{kind:?}norm {rows}x{cols}");
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = rng
        .normals(rows * cols)
        .iter()
        .map(|v| 0.5 + 2.0 * v)
        .collect();
    let dy = rng.normals(rows * cols);
    let prior = rng.normals(rows * cols);
    let eps = s.eps as f64;
    let ref_forward = |x: &[f64]| match kind {
        NormKind::Rms => reference::rmsnorm(x, cols, eps).0,
        NormKind::Layer => reference::layernorm(x, cols, eps).0,
    };
    let want_dx = match kind {
        NormKind::Rms => reference::rmsnorm_backward(&x, &dy, cols, eps),
        NormKind::Layer => reference::layernorm_backward(&x, &dy, cols, eps),
    };

    let (gx, gy, gdy, gdx) = (
        upload("x", &[rows, cols], &x),
        zeros("y", &[rows, cols]),
        upload("dy", &[rows, cols], &dy),
        upload("dx", &[rows, cols], &prior),
    );
    let (mean, rstd) = (zeros("mean", &[rows]), zeros("rstd", &[rows]));
    let mean = (kind == NormKind::Layer).then_some(&mean);
    let forward = vec![norm::forward(gpu(), kind, s, &gx, &gy, mean, &rstd).unwrap()];
    run(forward.clone());
    check(
        &format!("{label} fwd"),
        &read(&gy),
        &ref_forward(&x),
        TOL_F32,
    );

    run(vec![
        norm::backward(gpu(), kind, s, &gx, mean, &rstd, &gdy, &gdx, true).unwrap(),
    ]);
    let accumulated: Vec<f64> = want_dx.iter().zip(&prior).map(|(a, b)| a + b).collect();
    check(
        &format!("{label} bwd accumulate"),
        &read(&gdx),
        &accumulated,
        TOL_F32,
    );
    run(vec![
        norm::backward(gpu(), kind, s, &gx, mean, &rstd, &gdy, &gdx, false).unwrap(),
    ]);
    let got = read(&gdx);
    check_backward(
        &format!("{label} bwd"),
        &x,
        &dy,
        &want_dx,
        &got,
        ref_forward,
        gpu_forward(&gx, &x, &forward, &gy),
        &mut rng,
    );
}

#[test]
fn rmsnorm_odd_rows_and_wide_rows() {
    case(NormKind::Rms, 37, 24, 60);
    case(NormKind::Rms, 5, 300, 61);
}

#[test]
fn layernorm_odd_rows_and_wide_rows() {
    case(NormKind::Layer, 37, 24, 62);
    case(NormKind::Layer, 5, 300, 63);
}

#[test]
fn layernorm_requires_its_mean() {
    let s = NormShape {
        rows: 2,
        cols: 3,
        eps: 1e-6,
    };
    let (x, y, r) = (
        zeros("x", &[2, 3]),
        zeros("y", &[2, 3]),
        zeros("rstd", &[2]),
    );
    assert!(norm::forward(gpu(), NormKind::Layer, s, &x, &y, None, &r).is_err());
    assert!(norm::forward(gpu(), NormKind::Rms, s, &x, &y, None, &zeros("rstd", &[3])).is_err());
}

/// More rows than one grid dimension holds: the row index is folded over
/// workgroups x and y. Also: the same input gives the same bits.
#[test]
fn rows_beyond_one_grid_dimension() {
    let (rows, cols) = (70_001, 5);
    let s = NormShape {
        rows,
        cols,
        eps: 1e-6,
    };
    let mut rng = Rng::new(64);
    let x = rng.normals(rows * cols);
    let dy = rng.normals(rows * cols);
    let (gx, gy, gdy, gdx) = (
        upload("x", &[rows, cols], &x),
        zeros("y", &[rows, cols]),
        upload("dy", &[rows, cols], &dy),
        zeros("dx", &[rows, cols]),
    );
    let (mean, rstd) = (zeros("mean", &[rows]), zeros("rstd", &[rows]));
    for kind in [NormKind::Rms, NormKind::Layer] {
        let eps = s.eps as f64;
        let (want_y, want_dx) = match kind {
            NormKind::Rms => (
                reference::rmsnorm(&x, cols, eps).0,
                reference::rmsnorm_backward(&x, &dy, cols, eps),
            ),
            NormKind::Layer => (
                reference::layernorm(&x, cols, eps).0,
                reference::layernorm_backward(&x, &dy, cols, eps),
            ),
        };
        let mean = (kind == NormKind::Layer).then_some(&mean);
        let passes = vec![
            norm::forward(gpu(), kind, s, &gx, &gy, mean, &rstd).unwrap(),
            norm::backward(gpu(), kind, s, &gx, mean, &rstd, &gdy, &gdx, false).unwrap(),
        ];
        run(passes.clone());
        let (y, dx) = (read(&gy), read(&gdx));
        check(
            &format!("{kind:?}norm {rows}x{cols} fwd"),
            &y,
            &want_y,
            TOL_F32,
        );
        check(
            &format!("{kind:?}norm {rows}x{cols} bwd"),
            &dx,
            &want_dx,
            TOL_F32,
        );
        run(passes);
        assert_eq!(read(&gy), y, "{kind:?}norm forward is not repeatable");
        assert_eq!(read(&gdx), dx, "{kind:?}norm backward is not repeatable");
    }
}
