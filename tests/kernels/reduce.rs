use samnet_core::ops::reduce::{SumAll, sum_all, sum_rows};
use samnet_core::reference::linear::sum_rows as ref_sum_rows;
use samnet_tests::*;

/// Two stages (137 rows) and one (37 and 64 rows: the second stage alone),
/// columns not a multiple of either stage's workgroup.
#[test]
fn sum_rows_over_chunks_and_column_blocks() {
    for shape in [(3, 137, 300), (2, 37, 45), (1, 64, 33)] {
        sum_rows_matches_the_reference(shape);
    }
}

fn sum_rows_matches_the_reference((groups, rows, cols): (usize, usize, usize)) {
    let mut rng = Rng::new(10);
    let x = rng.normals(groups * rows * cols);
    let prior = rng.normals(groups * cols);
    let gx = upload("x", &[groups, rows, cols], &x);
    let out = upload("out", &[groups, cols], &prior);
    run(sum_rows(gpu(), &gx, &out, (groups, rows, cols), true).unwrap());
    let want: Vec<f64> = ref_sum_rows(&x, groups, rows, cols)
        .iter()
        .zip(&prior)
        .map(|(s, p)| s + p)
        .collect();
    check(
        &format!("sum_rows accumulate {rows}"),
        &read(&out),
        &want,
        TOL_F32,
    );
    run(sum_rows(gpu(), &gx, &out, (groups, rows, cols), false).unwrap());
    check(
        &format!("sum_rows {rows}"),
        &read(&out),
        &ref_sum_rows(&x, groups, rows, cols),
        TOL_F32,
    );
}

#[test]
fn sum_all_plain_squared_scaled_and_bitwise_repeatable() {
    let n = 10_007;
    let mut rng = Rng::new(11);
    let x = rng.normals(n);
    let gx = upload("x", &[n], &x);
    let out = upload("out", &[4], &[0.0, 0.0, 0.0, 5.0]);
    let mut dispatches = sum_all(
        gpu(),
        &gx,
        &out,
        SumAll {
            scale: 0.5,
            out_index: 1,
            ..Default::default()
        },
    )
    .unwrap();
    dispatches.extend(
        sum_all(
            gpu(),
            &gx,
            &out,
            SumAll {
                square: true,
                out_index: 3,
                accumulate: true,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    run(dispatches.clone());
    let got = read(&out);
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    check(
        "sum_all scaled",
        &[got[1]],
        &[0.5 * sum],
        TOL_F32 * (n as f64).sqrt(),
    );
    check(
        "sum_all squares accumulate",
        &[got[3]],
        &[5.0 + sq],
        TOL_F32,
    );
    assert_eq!(got[0], 0.0);
    // Same input, same bits: the reduction order is fixed.
    write(&out, &[0.0, 0.0, 0.0, 5.0]);
    run(dispatches);
    assert_eq!(read(&out), got);
}
