use samnet_core::ops::embedding::{self, EmbeddingBackward};
use samnet_core::reference::embedding as reference;
use samnet_tests::*;

/// Forward, the four backward checks, accumulate and bitwise repeatability
/// on one shape.
fn check_shape(rows: usize, vocab: usize, d: usize, seed: u64) {
    let scale = 0.7;
    let mut rng = Rng::new(seed);
    let tokens: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u64) as u32).collect();
    let table = rng.normals(vocab * d);
    let dout = rng.normals(rows * d);
    let prior = rng.normals(vocab * d);
    let label = format!("embedding {rows}x{vocab}x{d}");
    let (gtok, gtab, gout) = (
        upload_u32("tokens", &[rows], &tokens),
        upload("table", &[vocab, d], &table),
        zeros("out", &[rows, d]),
    );
    let forward = vec![embedding::forward(gpu(), &gtok, &gtab, scale as f32, &gout).unwrap()];
    run(forward.clone());
    let fwd = |t: &[f64]| reference::forward(&tokens, t, d, scale);
    check(&format!("{label} fwd"), &read(&gout), &fwd(&table), TOL_F32);

    let want = reference::backward(&tokens, &dout, vocab, d, scale);
    let (gdout, gdt) = (
        upload("dout", &[rows, d], &dout),
        upload("dtable", &[vocab, d], &prior),
    );
    let backward = EmbeddingBackward::new(gpu(), (rows, vocab, d), "embedding").unwrap();
    let record = |accumulate| {
        backward
            .record(gpu(), &gtok, &gdout, scale as f32, &gdt, accumulate)
            .unwrap()
    };
    run(record(true));
    let accumulated: Vec<f64> = want.iter().zip(&prior).map(|(a, b)| a + b).collect();
    check(
        &format!("{label} bwd accumulate"),
        &read(&gdt),
        &accumulated,
        TOL_F32,
    );
    // Overwrite: rows of tokens that never occur must become zero, not keep `prior`.
    let overwrite = record(false);
    run(overwrite.clone());
    let got = read(&gdt);
    run(overwrite);
    assert_eq!(
        read(&gdt),
        got,
        "{label}: backward is not bitwise repeatable"
    );
    check_backward(
        &format!("{label} dtable"),
        &table,
        &dout,
        &want,
        &got,
        fwd,
        gpu_forward(&gtab, &table, &forward, &gout),
        &mut rng,
    );
}

/// The backward's row segments: 5 of 256 rows for 1037 × 65, one for 37 ×
/// 300, 2 (and two column blocks) for 300 × 67 × 300, one for 4100 tokens.
#[test]
fn gather_and_scatter_add_match_the_reference() {
    check_shape(1037, 65, 24, 90);
    // Most of the 300 tokens never occur in 37 rows.
    check_shape(37, 300, 24, 91);
    check_shape(300, 67, 300, 92);
    check_shape(1000, 4100, 24, 93);
}

#[test]
fn more_than_65535_rows_fold_the_grid() {
    // rows·d / 256 = 66,000 workgroups in the forward: the grid folds; the
    // backward runs 52 segments of rows side by side. Token 0 takes 98% of
    // the rows.
    let (rows, vocab, d, scale) = (66_000, 7, 256, 1.5);
    let mut rng = Rng::new(94);
    let tokens: Vec<u32> = (0..rows)
        .map(|_| {
            if rng.uniform() < 0.98 {
                0
            } else {
                rng.below(vocab as u64) as u32
            }
        })
        .collect();
    let table = rng.normals(vocab * d);
    let dout = rng.normals(rows * d);
    let (gtok, gtab, gout, gdout, gdt) = (
        upload_u32("tokens", &[rows], &tokens),
        upload("table", &[vocab, d], &table),
        zeros("out", &[rows, d]),
        upload("dout", &[rows, d], &dout),
        zeros("dtable", &[vocab, d]),
    );
    let mut program = vec![embedding::forward(gpu(), &gtok, &gtab, scale as f32, &gout).unwrap()];
    let backward = EmbeddingBackward::new(gpu(), (rows, vocab, d), "embedding").unwrap();
    program.extend(
        backward
            .record(gpu(), &gtok, &gdout, scale as f32, &gdt, false)
            .unwrap(),
    );
    run(program);
    check(
        "embedding 66000 rows fwd",
        &read(&gout),
        &reference::forward(&tokens, &table, d, scale),
        TOL_F32,
    );
    check(
        "embedding 66000 rows bwd",
        &read(&gdt),
        &reference::backward(&tokens, &dout, vocab, d, scale),
        TOL_F32,
    );
}

#[test]
fn out_of_range_tokens_read_nothing() {
    let (gtok, gtab, gout) = (
        upload_u32("tokens", &[3], &[1, 99, u32::MAX]),
        upload("table", &[2, 3], &[1.0; 6]),
        upload("out", &[3, 3], &[7.0; 9]),
    );
    run(vec![
        embedding::forward(gpu(), &gtok, &gtab, 1.0, &gout).unwrap(),
    ]);
    assert_eq!(
        read(&gout),
        vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    // In the backward such rows match no token.
    let (gdout, gdt) = (upload("dout", &[3, 3], &[1.0; 9]), zeros("dtable", &[2, 3]));
    let backward = EmbeddingBackward::new(gpu(), (3, 2, 3), "embedding").unwrap();
    run(backward
        .record(gpu(), &gtok, &gdout, 1.0, &gdt, false)
        .unwrap());
    assert_eq!(read(&gdt), vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
}

#[test]
fn a_backward_sized_for_other_rows_is_refused() {
    let backward = EmbeddingBackward::new(gpu(), (4, 2, 3), "embedding").unwrap();
    let (gtok, gdout, gdt) = (
        upload_u32("tokens", &[3], &[0, 1, 0]),
        zeros("dout", &[3, 3]),
        zeros("dtable", &[2, 3]),
    );
    let err = backward
        .record(gpu(), &gtok, &gdout, 1.0, &gdt, false)
        .unwrap_err();
    assert!(err.to_string().contains("(3, 2, 3)"), "{err}");
}
