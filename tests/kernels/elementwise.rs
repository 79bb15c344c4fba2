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

/// sample_rows: each row's token is the Gumbel-max of logits / τ plus the
/// counter-hash noise over the nucleus (the smallest set of likeliest tokens
/// holding top_p), its confidence is its probability renormalised over the
/// nucleus, and over many rows the draws follow that distribution.
#[test]
fn sample_rows_draws_from_the_nucleus_of_the_tempered_softmax() {
    use samnet_core::ops::sampling::{Draw, sample_rows};
    use samnet_core::reference::sampling;
    let key = [1234u32, 99];
    let stream = 5;
    let mut rng = Rng::new(23);
    for (rows, vocab, temperature, top_p) in
        [(37, 300, 0.7, 1.0), (29, 613, 1.0, 0.9), (31, 77, 0.5, 0.3)]
    {
        let logits: Vec<f64> = rng.normals(rows * vocab).iter().map(|x| 2.0 * x).collect();
        let (gl, gkey, tok, conf) = (
            upload("logits", &[rows, vocab], &logits),
            upload_u32("key", &[3], &[key[0], key[1], 0]),
            upload_u32("tokens", &[rows], &vec![0; rows]),
            zeros("confidence", &[rows]),
        );
        let draw = Draw { temperature, top_p };
        let dispatch = sample_rows(gpu(), (&gl, 1), (&gkey, stream), draw, &tok, &conf).unwrap();
        run(vec![dispatch.clone()]);
        let (got, got_conf) = (read_u32(&tok), read(&conf));
        let want = sampling::sample_rows(
            &logits,
            (rows, vocab),
            (temperature as f64, top_p as f64),
            (key, stream, 0),
        );
        // Rows whose cut f32 rounding could move are left out (a few).
        let clear: Vec<usize> = (0..rows).filter(|&r| want[r].2 > 2e-5).collect();
        assert!(
            4 * clear.len() >= 3 * rows,
            "{} of {rows} rows clear",
            clear.len()
        );
        let what = format!("sample_rows {rows}x{vocab} t={temperature} top_p={top_p}");
        for &r in &clear {
            assert_eq!(got[r], want[r].0, "{what}: row {r}");
        }
        let pick = |v: &[f64]| clear.iter().map(|&r| v[r]).collect::<Vec<_>>();
        let want_conf: Vec<f64> = want.iter().map(|w| w.1).collect();
        check(&what, &pick(&got_conf), &pick(&want_conf), TOL_F32);
        // The same key draws the same tokens; another key, others.
        run(vec![dispatch]);
        assert_eq!(read_u32(&tok), got);
        gpu().write_u32(&gkey, &[1234, 100, 0]).unwrap();
        run(vec![
            sample_rows(gpu(), (&gl, 1), (&gkey, stream), draw, &tok, &conf).unwrap(),
        ]);
        assert_ne!(read_u32(&tok), got);
    }

    // 6,000 rows of the same 5 logits: each token's share within 4.5 σ of
    // its probability, renormalised over the nucleus; tokens outside it never drawn.
    let (rows, row) = (6000, [0.0, 0.5, 1.0, -1.0, 2.0]);
    let gkey = upload_u32("key", &[3], &[key[0], key[1], 0]);
    let (gl, tok, conf) = (
        upload("logits", &[rows, 5], &row.repeat(rows)),
        upload_u32("tokens", &[rows], &vec![0; rows]),
        zeros("confidence", &[rows]),
    );
    for top_p in [1.0f32, 0.8] {
        let draw = Draw {
            temperature: 1.3,
            top_p,
        };
        run(vec![
            sample_rows(gpu(), (&gl, 1), (&gkey, stream), draw, &tok, &conf).unwrap(),
        ]);
        let drawn = read_u32(&tok);
        let q = samnet_core::reference::reveal::tempered_softmax(&row, 1, 5, 1.3);
        let (kept, _) = sampling::nucleus(&q, top_p as f64);
        let mass: f64 = (0..5).filter(|&v| kept[v]).map(|v| q[v]).sum();
        for v in 0..5 {
            let p = if kept[v] { q[v] / mass } else { 0.0 };
            let share = drawn.iter().filter(|&&d| d as usize == v).count() as f64 / rows as f64;
            let sigma = (p * (1.0 - p) / rows as f64).sqrt();
            assert!(
                (share - p).abs() <= 4.5 * sigma,
                "top_p {top_p}, token {v}: drawn {share:.4}, p {p:.4}"
            );
        }
    }
    let bad = |temperature, top_p| {
        let draw = Draw { temperature, top_p };
        sample_rows(gpu(), (&gl, 1), (&gkey, stream), draw, &tok, &conf).is_err()
    };
    assert!(bad(0.0, 1.0) && bad(1.0, 0.0) && bad(1.0, 1.5));
}

/// sample_rows over sequences keyed from sequence k of a run draws what one
/// dispatch over the whole run draws for them (the Gumbel noise counts from
/// the run's first row), and past 2^32 noise elements it matches the
/// reference's 64-bit index.
#[test]
fn sample_rows_counts_from_the_keys_first_sequence() {
    use samnet_core::ops::sampling::{Draw, sample_rows};
    use samnet_core::reference::sampling;
    let (key, stream, seq, vocab) = ([41u32, 2], 7, 3, 301);
    let sequences = 6;
    let rows = sequences * seq;
    let logits: Vec<f64> = Rng::new(5).normals(rows * vocab);
    let draw = Draw {
        temperature: 1.0,
        top_p: 1.0,
    };
    let tokens = |from: usize, first: u32| {
        let part = &logits[from * seq * vocab..];
        let count = part.len() / vocab;
        let (gl, gkey, tok, conf) = (
            upload("logits", &[count, vocab], part),
            upload_u32("key", &[3], &[key[0], key[1], first]),
            upload_u32("tokens", &[count], &vec![0; count]),
            zeros("confidence", &[count]),
        );
        let shape = (&gl, count / seq);
        run(vec![
            sample_rows(gpu(), shape, (&gkey, stream), draw, &tok, &conf).unwrap(),
        ]);
        read_u32(&tok)
    };
    let whole = tokens(0, 0);
    assert_eq!(tokens(4, 4), whole[4 * seq..]);
    let far = 5_000_000u32;
    let first_row = far as u64 * seq as u64;
    assert!(first_row * vocab as u64 > 1 << 32);
    let want = sampling::sample_rows(&logits, (rows, vocab), (1.0, 1.0), (key, stream, first_row));
    let want: Vec<u32> = want.iter().map(|w| w.0).collect();
    assert_eq!(tokens(0, far), want);
    assert_ne!(want, whole);
}
