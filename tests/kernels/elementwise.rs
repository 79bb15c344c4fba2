use samnet_core::ops::elementwise::{add, axpby, fill, mul};
use samnet_tests::*;

#[test]
fn fill_axpby_add_mul() {
    let n = 1000;
    let mut rng = Rng::new(20);
    let (x, y) = (rng.normals(n), rng.normals(n));
    let (gx, gy, out) = (
        upload("x", &[n], &x),
        upload("y", &[n], &y),
        zeros("out", &[n]),
    );
    run(vec![fill(gpu(), &out, 2.5).unwrap()]);
    check("fill", &read(&out), &vec![2.5; n], 0.0);
    run(vec![axpby(gpu(), 0.5, &gx, -2.0, &out).unwrap()]);
    let want: Vec<f64> = x.iter().map(|v| 0.5 * v - 5.0).collect();
    check("axpby", &read(&out), &want, TOL_F32);
    run(vec![add(gpu(), 1.5, &gx, -1.0, &gy, &out).unwrap()]);
    let want: Vec<f64> = x.iter().zip(&y).map(|(a, b)| 1.5 * a - b).collect();
    check("add", &read(&out), &want, TOL_F32);
    run(vec![mul(gpu(), 2.0, &gx, &gy, &out).unwrap()]);
    let want: Vec<f64> = x.iter().zip(&y).map(|(a, b)| 2.0 * a * b).collect();
    check("mul", &read(&out), &want, TOL_F32);
}

/// mul's backward is mul again: d/dx (alpha·x·y)·r = alpha·r·y.
#[test]
fn mul_backward_is_mul() {
    let n = 77;
    let mut rng = Rng::new(21);
    let (x, y, r) = (rng.normals(n), rng.normals(n), rng.normals(n));
    let (gy, gr, dx) = (
        upload("y", &[n], &y),
        upload("r", &[n], &r),
        zeros("dx", &[n]),
    );
    run(vec![mul(gpu(), 2.0, &gr, &gy, &dx).unwrap()]);
    let got = read(&dx);
    let pick = coords(&mut rng, n, 10);
    let loss = |xp: &[f64]| {
        xp.iter()
            .zip(&y)
            .zip(&r)
            .map(|((a, b), c)| 2.0 * a * b * c)
            .sum::<f64>()
    };
    check_fd("mul bwd vs fd", &got, loss, &x, &pick, 1e-6, TOL_F32);
    let want: Vec<f64> = y.iter().zip(&r).map(|(a, b)| 2.0 * a * b).collect();
    check("mul bwd", &got, &want, TOL_F32);
}

#[test]
fn mismatched_lengths_are_an_error() {
    let err = add(
        gpu(),
        1.0,
        &zeros("a", &[3]),
        1.0,
        &zeros("b", &[4]),
        &zeros("c", &[3]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("'b'"), "{err}");
}

#[test]
fn argmax_rows_with_ties_and_confidence() {
    use samnet_core::ops::sampling::argmax_rows;
    let (rows, vocab) = (37, 300);
    let mut rng = Rng::new(22);
    let mut logits = rng.normals(rows * vocab);
    // Row 0: a tie between ids 7 and 250; the lower id wins.
    logits[7] = 9.0;
    logits[250] = 9.0;
    let (gl, tok) = (
        upload("logits", &[rows, vocab], &logits),
        upload_u32("tokens", &[rows], &vec![0; rows]),
    );
    let conf = zeros("confidence", &[rows]);
    run(vec![argmax_rows(gpu(), &gl, &tok, &conf).unwrap()]);
    let (got, got_conf) = (read_u32(&tok), read(&conf));
    let mut want_conf = Vec::new();
    for r in 0..rows {
        let row = &logits[r * vocab..][..vocab];
        let best = (0..vocab).fold(0, |b, v| if row[v] > row[b] { v } else { b });
        assert_eq!(got[r] as usize, best, "row {r}");
        want_conf.push(1.0 / row.iter().map(|x| (x - row[best]).exp()).sum::<f64>());
    }
    assert_eq!(got[0], 7);
    check("argmax confidence", &got_conf, &want_conf, TOL_F32);
}

/// Gumbel-max decoding: the GPU's draw equals the f64 reference on the same
/// counter-hash noise, its confidence is the tempered softmax, and over many
/// rows the draws follow softmax(logits / τ).
#[test]
fn sample_rows_draws_from_the_tempered_softmax() {
    use samnet_core::ops::sampling::sample_rows;
    use samnet_core::reference::random::gumbel;
    let (rows, vocab, temperature, stream) = (37, 300, 0.7, 5);
    let key = [1234u32, 99];
    let mut rng = Rng::new(23);
    let logits = rng.normals(rows * vocab);
    let (gl, gkey, tok, conf) = (
        upload("logits", &[rows, vocab], &logits),
        upload_u32("key", &[2], &key),
        upload_u32("tokens", &[rows], &vec![0; rows]),
        zeros("confidence", &[rows]),
    );
    let draw = sample_rows(gpu(), &gl, &gkey, stream, temperature, &tok, &conf).unwrap();
    run(vec![draw.clone()]);
    let (got, got_conf) = (read_u32(&tok), read(&conf));
    let t = temperature as f64;
    let mut want_conf = Vec::new();
    for r in 0..rows {
        let row = &logits[r * vocab..][..vocab];
        let score = |v: usize| row[v] / t + gumbel((r * vocab + v) as u32, key, stream);
        let best = (0..vocab).fold(0, |b, v| if score(v) > score(b) { v } else { b });
        assert_eq!(got[r] as usize, best, "row {r}");
        let m = row.iter().fold(f64::MIN, |m, &x| m.max(x / t));
        let z: f64 = row.iter().map(|x| (x / t - m).exp()).sum();
        want_conf.push((row[best] / t - m).exp() / z);
    }
    check("sample_rows confidence", &got_conf, &want_conf, TOL_F32);
    // The same key draws the same tokens; another key, others.
    run(vec![draw]);
    assert_eq!(read_u32(&tok), got);
    gpu().write_u32(&gkey, &[1234, 100]).unwrap();
    run(vec![
        sample_rows(gpu(), &gl, &gkey, stream, temperature, &tok, &conf).unwrap(),
    ]);
    assert_ne!(read_u32(&tok), got);

    // 6,000 rows of the same 5 logits: each token's share within 4.5 σ of its probability.
    let (rows, row) = (6000, [0.0, 0.5, 1.0, -1.0, 2.0]);
    let temperature = 1.3;
    let (gl, tok, conf) = (
        upload("logits", &[rows, 5], &row.repeat(rows)),
        upload_u32("tokens", &[rows], &vec![0; rows]),
        zeros("confidence", &[rows]),
    );
    run(vec![
        sample_rows(gpu(), &gl, &gkey, stream, temperature, &tok, &conf).unwrap(),
    ]);
    let drawn = read_u32(&tok);
    let z: f64 = row.iter().map(|x| (x / temperature as f64).exp()).sum();
    for (v, x) in row.iter().enumerate() {
        let p = (x / temperature as f64).exp() / z;
        let share = drawn.iter().filter(|&&d| d as usize == v).count() as f64 / rows as f64;
        let sigma = (p * (1.0 - p) / rows as f64).sqrt();
        assert!(
            (share - p).abs() < 4.5 * sigma,
            "token {v}: drawn {share:.4}, p {p:.4}"
        );
    }
    assert!(sample_rows(gpu(), &gl, &gkey, stream, 0.0, &tok, &conf).is_err());
}
