use samnet_core::ops::timestep;
use samnet_core::reference::timestep as reference;
use samnet_tests::*;

/// Every t of a T = 1000 run, odd dim: the gathered rows of the f64 table.
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
        .flat_map(|&t| reference::sinusoid(t as f64, dim, 10_000.0))
        .collect();
    let got = read(&out);
    check("timestep embedding", &got, &want, TOL_F32);
    assert_eq!(got[dim - 1], 0.0, "odd dim leaves the last column zero");
}
