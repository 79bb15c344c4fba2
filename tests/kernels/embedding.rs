use samnet_core::ops::{embedding, timestep};
use samnet_core::reference::{embedding as reference, timestep as ref_timestep};
use samnet_tests::*;

#[test]
fn gather_and_deterministic_scatter_add() {
    // rows > 256 so the backward scans several chunks; d > 256 uses two column slots.
    let (rows, vocab, d, scale) = (600, 67, 300, 0.7);
    let mut rng = Rng::new(90);
    let tokens: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u64) as u32).collect();
    let table = rng.normals(vocab * d);
    let dout = rng.normals(rows * d);
    let prior = rng.normals(vocab * d);
    let (gtok, gtab, gout) = (
        upload_u32("tokens", &[rows], &tokens),
        upload("table", &[vocab, d], &table),
        zeros("out", &[rows, d]),
    );
    let forward = vec![embedding::forward(gpu(), &gtok, &gtab, scale as f32, &gout).unwrap()];
    run(forward.clone());
    let fwd = |t: &[f64]| reference::forward(&tokens, t, d, scale);
    check("embedding fwd", &read(&gout), &fwd(&table), TOL_F32);

    let want = reference::backward(&tokens, &dout, vocab, d, scale);
    let (gdout, gdt) = (
        upload("dout", &[rows, d], &dout),
        upload("dtable", &[vocab, d], &prior),
    );
    let backward = embedding::backward(gpu(), &gtok, &gdout, scale as f32, &gdt, true).unwrap();
    run(vec![backward]);
    let accumulated: Vec<f64> = want.iter().zip(&prior).map(|(a, b)| a + b).collect();
    check(
        "embedding bwd accumulate",
        &read(&gdt),
        &accumulated,
        TOL_F32,
    );
    let backward = embedding::backward(gpu(), &gtok, &gdout, scale as f32, &gdt, false).unwrap();
    run(vec![backward.clone()]);
    let got = read(&gdt);
    run(vec![backward]);
    assert_eq!(read(&gdt), got, "the scatter-add is not bitwise repeatable");
    check_backward(
        "embedding dtable",
        &table,
        &dout,
        &want,
        &got,
        fwd,
        gpu_forward(&gtab, &table, &forward, &gout),
        &mut rng,
    );
}

#[test]
fn out_of_range_tokens_read_nothing() {
    let (gtok, gtab, gout) = (
        upload_u32("tokens", &[2], &[1, 99]),
        upload("table", &[2, 3], &[1.0; 6]),
        zeros("out", &[2, 3]),
    );
    run(vec![
        embedding::forward(gpu(), &gtok, &gtab, 1.0, &gout).unwrap(),
    ]);
    assert_eq!(read(&gout), vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn timestep_features_match_f64_for_every_t() {
    let (max_t, dim, batch) = (1000, 37, 1001);
    let table = timestep::upload_table(gpu(), max_t, dim, 10_000.0).unwrap();
    let ts: Vec<u32> = (0..batch as u32).collect();
    let (gts, out) = (upload_u32("t", &[batch], &ts), zeros("temb", &[batch, dim]));
    run(vec![
        timestep::embedding(gpu(), &gts, &table, &out).unwrap(),
    ]);
    let want: Vec<f64> = ts
        .iter()
        .flat_map(|&t| ref_timestep::sinusoid(t as f64, dim, 10_000.0))
        .collect();
    check("timestep embedding", &read(&out), &want, TOL_F32);
    assert_eq!(
        read(&out)[dim - 1],
        0.0,
        "odd dim leaves the last column zero"
    );
}
