use samnet_core::ops::diffusion::{
    SeqShape, ddim_step, infill_blend, mask_backward, mask_forward, q_sample_backward,
    q_sample_backward_both, q_sample_forward, q_sample_held_backward, q_sample_held_forward,
};
use samnet_core::ops::reduce::sum_rows;
use samnet_core::reference::diffusion as reference;
use samnet_tests::*;

fn coefficients(rng: &mut Rng, batch: usize) -> Vec<f64> {
    (0..batch)
        .flat_map(|_| {
            let (ab, ab_next) = (rng.uniform(), rng.uniform());
            [
                ab.sqrt(),
                (1.0 - ab).sqrt(),
                ab_next.sqrt(),
                (1.0 - ab_next).sqrt(),
            ]
        })
        .collect()
}

#[test]
fn q_sample_forward_and_backward() {
    let s = SeqShape {
        batch: 3,
        seq: 13,
        cols: 24,
    };
    let n = s.batch * s.seq * s.cols;
    let mut rng = Rng::new(50);
    let coef = coefficients(&mut rng, s.batch);
    let (x0, eps, dxt, prior) = (
        rng.normals(n),
        rng.normals(n),
        rng.normals(n),
        rng.normals(n),
    );
    let gcoef = upload("coef", &[s.batch, 4], &coef);
    let (gx0, geps, gxt) = (
        upload("x0", &[n], &x0),
        upload("eps", &[n], &eps),
        zeros("xt", &[n]),
    );
    let forward = q_sample_forward(gpu(), s, &gcoef, &gx0, &geps, &gxt).unwrap();
    run(vec![forward.clone()]);
    check(
        "q_sample fwd",
        &read(&gxt),
        &reference::q_sample(&coef, &x0, &eps, s.seq, s.cols),
        TOL_F32,
    );

    let want = reference::q_sample_backward(&coef, &dxt, s.seq, s.cols);
    let pick = coords(&mut rng, n, 10);
    let fwd = |v: &[f64]| dot(&reference::q_sample(&coef, v, &eps, s.seq, s.cols), &dxt);
    check_fd(
        "q_sample ref dx0 vs fd",
        &want,
        fwd,
        &x0,
        &pick,
        1e-6,
        TOL_FD_F64,
    );
    let (gdxt, gdx0) = (upload("dxt", &[n], &dxt), upload("dx0", &[n], &prior));
    run(vec![
        q_sample_backward(gpu(), s, &gcoef, &gdxt, &gdx0, true).unwrap(),
    ]);
    let accumulated: Vec<f64> = want.iter().zip(&prior).map(|(a, b)| a + b).collect();
    check(
        "q_sample bwd accumulate",
        &read(&gdx0),
        &accumulated,
        TOL_F32,
    );
    run(vec![
        q_sample_backward(gpu(), s, &gcoef, &gdxt, &gdx0, false).unwrap(),
    ]);
    let got = read(&gdx0);
    check("q_sample bwd", &got, &want, TOL_F32);
    let gpu_loss = |v: &[f64]| {
        write(&gx0, v);
        run(vec![forward.clone()]);
        dot(&read(&gxt), &dxt)
    };
    check_fd(
        "q_sample gpu dx0 vs fd",
        &got,
        gpu_loss,
        &x0,
        &pick,
        1e-2,
        TOL_FD_F32,
    );

    write(&gx0, &x0);

    // Both inputs learned: deps = s·dx_t beside dx0 (+)= a·dx_t.
    let want_eps = reference::q_sample_backward_noise(&coef, &dxt, s.seq, s.cols);
    let fwd_eps = |v: &[f64]| dot(&reference::q_sample(&coef, &x0, v, s.seq, s.cols), &dxt);
    check_fd(
        "q_sample ref deps vs fd",
        &want_eps,
        fwd_eps,
        &eps,
        &pick,
        1e-6,
        TOL_FD_F64,
    );
    let gdeps = zeros("deps", &[n]);
    write(&gdx0, &prior);
    let both = |accumulate| {
        q_sample_backward_both(gpu(), s, &gcoef, &gdxt, (&gdx0, accumulate), &gdeps).unwrap()
    };
    run(vec![both(true)]);
    check(
        "q_sample bwd both dx0 accumulate",
        &read(&gdx0),
        &accumulated,
        TOL_F32,
    );
    run(vec![both(false)]);
    check("q_sample bwd both dx0", &read(&gdx0), &want, TOL_F32);
    let got_eps = read(&gdeps);
    check("q_sample bwd both deps", &got_eps, &want_eps, TOL_F32);
    let gpu_loss_eps = |v: &[f64]| {
        write(&geps, v);
        run(vec![forward.clone()]);
        dot(&read(&gxt), &dxt)
    };
    check_fd(
        "q_sample gpu deps vs fd",
        &got_eps,
        gpu_loss_eps,
        &eps,
        &pick,
        1e-2,
        TOL_FD_F32,
    );
}

#[test]
fn ddim_step_and_infill_blend() {
    let s = SeqShape {
        batch: 2,
        seq: 37,
        cols: 12,
    };
    let n = s.batch * s.seq * s.cols;
    let mut rng = Rng::new(51);
    let coef = coefficients(&mut rng, s.batch);
    let (x0, xt, eps) = (rng.normals(n), rng.normals(n), rng.normals(n));
    let gcoef = upload("coef", &[s.batch, 4], &coef);
    let (gx0, gxt, gnext) = (
        upload("x0", &[n], &x0),
        upload("xt", &[n], &xt),
        zeros("next", &[n]),
    );
    run(vec![
        ddim_step(gpu(), s, &gcoef, &gx0, &gxt, &gnext).unwrap(),
    ]);
    check(
        "ddim_step",
        &read(&gnext),
        &reference::ddim_step(&coef, &x0, &xt, s.seq, s.cols),
        TOL_F32,
    );

    // Rows 0..5 and 40..44 are known; the rest keep x.
    let known: Vec<f64> = (0..s.batch * s.seq)
        .map(|r| {
            if r < 5 || (40..44).contains(&r) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let (geps, gknown) = (
        upload("eps", &[n], &eps),
        upload("known", &[s.batch * s.seq], &known),
    );
    run(vec![
        infill_blend(gpu(), s, &gcoef, &gx0, &geps, &gknown, &gxt).unwrap(),
    ]);
    let noised = reference::q_sample(&coef, &x0, &eps, s.seq, s.cols);
    let want: Vec<f64> = (0..n)
        .map(|i| {
            if known[i / s.cols] != 0.0 {
                noised[i]
            } else {
                xt[i]
            }
        })
        .collect();
    check("infill_blend", &read(&gxt), &want, TOL_F32);
}

/// Known rows (a prompt prefix in each sequence, and one row in the middle)
/// hold the clean z0: the noise never reaches them, and their gradient is
/// dx_t itself rather than a·dx_t.
#[test]
fn q_sample_held_forward_and_backward() {
    let s = SeqShape {
        batch: 3,
        seq: 11,
        cols: 10,
    };
    let (rows, n) = (s.batch * s.seq, s.batch * s.seq * s.cols);
    let mut rng = Rng::new(52);
    let coef = coefficients(&mut rng, s.batch);
    let known: Vec<f64> = (0..rows)
        .map(|r| {
            let (b, i) = (r / s.seq, r % s.seq);
            if i < b + 2 || r == 17 { 1.0 } else { 0.0 }
        })
        .collect();
    let (z0, eps, dxt, prior) = (
        rng.normals(n),
        rng.normals(n),
        rng.normals(n),
        rng.normals(n),
    );
    let gcoef = upload("coef", &[s.batch, 4], &coef);
    let gknown = upload("known", &[rows], &known);
    let (gz0, geps, gxt) = (
        upload("z0", &[n], &z0),
        upload("eps", &[n], &eps),
        zeros("xt", &[n]),
    );
    let forward =
        vec![q_sample_held_forward(gpu(), s, &gcoef, &gz0, &geps, &gknown, &gxt).unwrap()];
    run(forward.clone());
    let want = reference::q_sample_held(&coef, &z0, &eps, &known, s.seq, s.cols);
    let got = read(&gxt);
    check("q_sample_held fwd", &got, &want, TOL_F32);
    for i in 0..n {
        if known[i / s.cols] != 0.0 {
            assert_eq!(
                got[i], z0[i] as f32 as f64,
                "known entry {i} must be the clean z0"
            );
        }
    }
    // With nothing known it is q_sample, bit for bit.
    let none = upload("none", &[rows], &vec![0.0; rows]);
    let plain = zeros("plain", &[n]);
    run(vec![
        q_sample_held_forward(gpu(), s, &gcoef, &gz0, &geps, &none, &gxt).unwrap(),
        q_sample_forward(gpu(), s, &gcoef, &gz0, &geps, &plain).unwrap(),
    ]);
    assert_eq!(read(&gxt), read(&plain));
    run(forward.clone());

    let want = reference::q_sample_held_backward(&coef, &known, &dxt, s.seq, s.cols);
    let (gdxt, gdz0) = (upload("dxt", &[n], &dxt), upload("dz0", &[n], &prior));
    run(vec![
        q_sample_held_backward(gpu(), s, &gcoef, &gknown, &gdxt, &gdz0, true).unwrap(),
    ]);
    let accumulated: Vec<f64> = want.iter().zip(&prior).map(|(a, b)| a + b).collect();
    check(
        "q_sample_held bwd accumulate",
        &read(&gdz0),
        &accumulated,
        TOL_F32,
    );
    run(vec![
        q_sample_held_backward(gpu(), s, &gcoef, &gknown, &gdxt, &gdz0, false).unwrap(),
    ]);
    let got = read(&gdz0);
    check_backward(
        "q_sample_held dz0",
        &z0,
        &dxt,
        &want,
        &got,
        |v| reference::q_sample_held(&coef, v, &eps, &known, s.seq, s.cols),
        gpu_forward(&gz0, &z0, &forward, &gxt),
        &mut rng,
    );
    // The loss cannot depend on the noise at known rows: d/d eps is zero there.
    let pick: Vec<usize> = (0..n)
        .filter(|&i| known[i / s.cols] != 0.0)
        .take(8)
        .collect();
    let fd = finite_diff(
        |v| {
            dot(
                &reference::q_sample_held(&coef, &z0, v, &known, s.seq, s.cols),
                &dxt,
            )
        },
        &eps,
        &pick,
        1e-3,
    );
    assert!(
        fd.iter().all(|&g| g == 0.0),
        "noise reaches known rows: {fd:?}"
    );
}

/// Masked diffusion's input: corrupted rows (known 0) carry the one mask row,
/// clean rows their z0. The backward splits dx_t between dz0 (clean rows)
/// and the mask row (column sums over the corrupted rows, by `sum_rows`),
/// each against the reference and central differences.
#[test]
fn mask_forward_and_backward() {
    let s = SeqShape {
        batch: 3,
        seq: 7,
        cols: 13,
    };
    let (rows, n) = (s.batch * s.seq, s.batch * s.seq * s.cols);
    let mut rng = Rng::new(53);
    let known: Vec<f64> = (0..rows)
        .map(|r| if r % 3 == 1 || r == 4 { 1.0 } else { 0.0 })
        .collect();
    let (z0, m, dxt, prior) = (
        rng.normals(n),
        rng.normals(s.cols),
        rng.normals(n),
        rng.normals(n),
    );
    let gknown = upload("known", &[rows], &known);
    let (gz0, gm, gxt) = (
        upload("z0", &[n], &z0),
        upload("mask", &[s.cols], &m),
        zeros("xt", &[n]),
    );
    let forward = vec![mask_forward(gpu(), s, &gm, &gz0, &gknown, &gxt).unwrap()];
    run(forward.clone());
    let want = reference::mask_input(&z0, &m, &known, s.cols);
    check("mask fwd", &read(&gxt), &want, TOL_F32);

    let (want_dz0, want_dm) = reference::mask_input_backward(&dxt, &known, s.cols);
    let (gdxt, gdz0, grows, gdm) = (
        upload("dxt", &[n], &dxt),
        upload("dz0", &[n], &prior),
        zeros("masked_rows", &[n]),
        zeros("dm", &[s.cols]),
    );
    run(vec![
        mask_backward(gpu(), s, &gknown, &gdxt, (&gdz0, true), &grows).unwrap(),
    ]);
    let accumulated: Vec<f64> = want_dz0.iter().zip(&prior).map(|(a, b)| a + b).collect();
    check("mask bwd accumulate", &read(&gdz0), &accumulated, TOL_F32);
    let mut backward =
        vec![mask_backward(gpu(), s, &gknown, &gdxt, (&gdz0, false), &grows).unwrap()];
    backward.extend(sum_rows(gpu(), &grows, &gdm, (1, rows, s.cols), false).unwrap());
    run(backward);
    check_backward(
        "mask dz0",
        &z0,
        &dxt,
        &want_dz0,
        &read(&gdz0),
        |v| reference::mask_input(v, &m, &known, s.cols),
        gpu_forward(&gz0, &z0, &forward, &gxt),
        &mut rng,
    );
    check_backward(
        "mask dm",
        &m,
        &dxt,
        &want_dm,
        &read(&gdm),
        |v| reference::mask_input(&z0, v, &known, s.cols),
        gpu_forward(&gm, &m, &forward, &gxt),
        &mut rng,
    );
}
