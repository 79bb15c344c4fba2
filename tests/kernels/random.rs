use samnet_core::ops::random::{dropout_backward, dropout_forward, randn};
use samnet_core::reference::random as reference;
use samnet_tests::*;

const KEY: [u32; 2] = [1234, 7];

#[test]
fn randn_matches_the_cpu_hash_and_is_standard_normal() {
    let n = 100_001;
    let key = upload_u32("key", &[3], &[KEY[0], KEY[1], 0]);
    let out = zeros("noise", &[n]);
    run(vec![randn(gpu(), &key, 3, 1.0, (&out, 1)).unwrap()]);
    let got = read(&out);
    check(
        "randn vs cpu hash",
        &got,
        &reference::randn(n, KEY, 3, 1.0),
        TOL_F32,
    );
    let mean = got.iter().sum::<f64>() / n as f64;
    let var = got.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    // 5 standard errors: mean ±0.016, variance ±0.022.
    assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "mean {mean}");
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
        "variance {var}"
    );

    // Another stream, or another key, gives other numbers.
    let other = zeros("other", &[n]);
    run(vec![randn(gpu(), &key, 4, 1.0, (&other, 1)).unwrap()]);
    let other = read(&other);
    let corr = got.iter().zip(&other).map(|(a, b)| a * b).sum::<f64>() / n as f64;
    assert!(corr.abs() < 0.02, "streams correlate: {corr}");
}

/// A tensor of sequences keyed from sequence k of a run draws what one
/// tensor of the whole run draws for those sequences, however the run is
/// cut: the draws count from the run's first sequence, past 2^32 pairs too.
#[test]
fn randn_counts_from_the_keys_first_sequence() {
    let (sequences, per) = (5, 2 * 1009);
    let n = sequences * per;
    let draw = |sequences: usize, first: u32| {
        let key = upload_u32("key", &[3], &[KEY[0], KEY[1], first]);
        let out = zeros("noise", &[sequences * per]);
        run(vec![randn(gpu(), &key, 3, 1.0, (&out, sequences)).unwrap()]);
        read(&out)
    };
    let whole = draw(sequences, 0);
    check(
        "randn, whole run",
        &whole,
        &reference::randn(n, KEY, 3, 1.0),
        TOL_F32,
    );
    assert_eq!(draw(3, 2), whole[2 * per..]);
    let far = 5_000_000;
    let first_pair = far as u64 * (per / 2) as u64;
    assert!(first_pair + (n / 2) as u64 > 1 << 32);
    let want = reference::randn_at(first_pair, n, KEY, 3, 1.0);
    check(
        "randn from sequence 5,000,000",
        &draw(sequences, far),
        &want,
        TOL_F32,
    );

    // Box-Muller pairs must not span sequences, nor sequences differ in length.
    let key = upload_u32("key", &[3], &[KEY[0], KEY[1], 0]);
    let odd = zeros("odd", &[3 * 7]);
    assert!(randn(gpu(), &key, 3, 1.0, (&odd, 3)).is_err());
    assert!(randn(gpu(), &key, 3, 1.0, (&odd, 2)).is_err());
    assert!(randn(gpu(), &key, 3, 1.0, (&odd, 1)).is_ok());
}

#[test]
fn dropout_keeps_the_same_mask_forward_and_backward() {
    let n = 4099;
    let p = 0.3;
    let mut rng = Rng::new(40);
    let (x, dy) = (rng.normals(n), rng.normals(n));
    let key = upload_u32("key", &[3], &[KEY[0], KEY[1], 0]);
    let (gx, gdy, y, dx) = (
        upload("x", &[n], &x),
        upload("dy", &[n], &dy),
        zeros("y", &[n]),
        zeros("dx", &[n]),
    );
    run(vec![
        dropout_forward(gpu(), &key, 9, p as f32, &gx, &y).unwrap(),
        dropout_backward(gpu(), &key, 9, p as f32, &gdy, &dx).unwrap(),
    ]);
    let factors = reference::dropout_factors(n, KEY, 9, p);
    let want_y: Vec<f64> = x.iter().zip(&factors).map(|(a, f)| a * f).collect();
    let want_dx: Vec<f64> = dy.iter().zip(&factors).map(|(a, f)| a * f).collect();
    check("dropout fwd", &read(&y), &want_y, TOL_F32);
    let got_dx = read(&dx);
    check("dropout bwd", &got_dx, &want_dx, TOL_F32);
    // The forward is linear in x with those factors, so its gradient is exactly them.
    let pick = coords(&mut rng, n, 10);
    check_fd(
        "dropout ref bwd vs fd",
        &got_dx,
        |v| {
            dot(
                &v.iter()
                    .zip(&factors)
                    .map(|(a, f)| a * f)
                    .collect::<Vec<_>>(),
                &dy,
            )
        },
        &x,
        &pick,
        1e-6,
        TOL_F32,
    );
    let kept = factors.iter().filter(|&&f| f > 0.0).count() as f64 / n as f64;
    assert!((kept - (1.0 - p)).abs() < 0.03, "kept {kept}");
}

#[test]
fn dropout_rejects_p_of_one() {
    let key = upload_u32("key", &[3], &[KEY[0], KEY[1], 0]);
    assert!(dropout_forward(gpu(), &key, 0, 1.0, &zeros("x", &[4]), &zeros("y", &[4])).is_err());
}
