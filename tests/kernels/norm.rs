use samnet_core::ops::norm::{self, NormShape};
use samnet_core::reference::norm as reference;
use samnet_tests::*;

fn shape(rows: usize, cols: usize) -> NormShape {
    NormShape {
        rows,
        cols,
        eps: 1e-6,
    }
}

fn case(rows: usize, cols: usize, seed: u64) {
    let s = shape(rows, cols);
    let label = format!("rmsnorm {rows}x{cols}");
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = rng
        .normals(rows * cols)
        .iter()
        .map(|v| 0.5 + 2.0 * v)
        .collect();
    let dy = rng.normals(rows * cols);
    let eps = s.eps as f64;
    let ref_forward = |x: &[f64]| reference::rmsnorm(x, cols, eps).0;
    let want_dx = reference::rmsnorm_backward(&x, &dy, cols, eps);

    let (gx, gy, gdy, gdx) = (
        upload("x", &[rows, cols], &x),
        zeros("y", &[rows, cols]),
        upload("dy", &[rows, cols], &dy),
        zeros("dx", &[rows, cols]),
    );
    let rstd = zeros("rstd", &[rows]);
    let forward = vec![norm::forward(gpu(), s, &gx, &gy, &rstd).unwrap()];
    run(forward.clone());
    check(
        &format!("{label} fwd"),
        &read(&gy),
        &ref_forward(&x),
        TOL_F32,
    );
    run(vec![
        norm::backward(gpu(), s, &gx, &rstd, &gdy, &gdx).unwrap(),
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
    case(37, 24, 60);
    case(5, 300, 61);
}

#[test]
fn mismatched_shapes_are_named() {
    let s = shape(2, 3);
    let (x, y) = (zeros("x", &[2, 3]), zeros("y", &[2, 3]));
    let err = norm::forward(gpu(), s, &x, &y, &zeros("rstd", &[3]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rstd"), "{err}");
    let dy = zeros("dy", &[3, 3]);
    let err = norm::backward(gpu(), s, &x, &zeros("rstd", &[2]), &dy, &y)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dy"), "{err}");
}

/// More rows than one grid dimension holds: the row index is folded over
/// workgroups x and y. Also: the same input gives the same bits.
#[test]
fn rows_beyond_one_grid_dimension() {
    let (rows, cols) = (70_001, 5);
    let s = shape(rows, cols);
    let mut rng = Rng::new(64);
    let x = rng.normals(rows * cols);
    let dy = rng.normals(rows * cols);
    let (gx, gy, gdy, gdx) = (
        upload("x", &[rows, cols], &x),
        zeros("y", &[rows, cols]),
        upload("dy", &[rows, cols], &dy),
        zeros("dx", &[rows, cols]),
    );
    let rstd = zeros("rstd", &[rows]);
    let eps = s.eps as f64;
    let want_y = reference::rmsnorm(&x, cols, eps).0;
    let want_dx = reference::rmsnorm_backward(&x, &dy, cols, eps);
    let passes = vec![
        norm::forward(gpu(), s, &gx, &gy, &rstd).unwrap(),
        norm::backward(gpu(), s, &gx, &rstd, &gdy, &gdx).unwrap(),
    ];
    run(passes.clone());
    let (y, dx) = (read(&gy), read(&gdx));
    check(&format!("rmsnorm {rows}x{cols} fwd"), &y, &want_y, TOL_F32);
    check(
        &format!("rmsnorm {rows}x{cols} bwd"),
        &dx,
        &want_dx,
        TOL_F32,
    );
    run(passes);
    assert_eq!(read(&gy), y, "rmsnorm forward is not repeatable");
    assert_eq!(read(&gdx), dx, "rmsnorm backward is not repeatable");
}
