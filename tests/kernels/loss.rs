use samnet_core::ops::loss::{self, LossShape, LossSlots};
use samnet_core::reference::loss as reference;
use samnet_tests::*;

const SLOTS: LossSlots = LossSlots {
    weight_sum: 0,
    loss_scale: 1,
};
const NUM: usize = 2;
const OUT: usize = 3;

fn weights(rng: &mut Rng, rows: usize) -> Vec<f64> {
    (0..rows)
        .map(|_| if rng.uniform() < 0.25 { 0.0 } else { 1.0 })
        .collect()
}

fn stats_with_scale(scale: f64) -> samnet_core::gpu::Tensor {
    upload("stats", &[8], &[0.0, scale, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
}

#[test]
fn mse_forward_and_backward() {
    let s = LossShape {
        rows: 1037,
        cols: 24,
    };
    let mut rng = Rng::new(100);
    let (pred, target, w) = (
        rng.normals(s.rows * s.cols),
        rng.normals(s.rows * s.cols),
        weights(&mut rng, s.rows),
    );
    let (gp, gt, gw) = (
        upload("pred", &[s.rows, s.cols], &pred),
        upload("target", &[s.rows, s.cols], &target),
        upload("w", &[s.rows], &w),
    );
    let stats = stats_with_scale(4.0);
    let mut forward = loss::weight_sum(gpu(), &gw, &stats, SLOTS).unwrap();
    forward.extend(loss::mse_forward(gpu(), s, SLOTS, &gp, &gt, &gw, &stats, NUM, OUT).unwrap());
    run(forward.clone());
    check(
        "mse fwd",
        &[read(&stats)[OUT]],
        &[reference::mse(&pred, &target, &w, s.cols)],
        TOL_F32,
    );

    let (dp, dt) = (
        zeros("dpred", &[s.rows, s.cols]),
        zeros("dtarget", &[s.rows, s.cols]),
    );
    run(vec![
        loss::mse_backward(gpu(), s, SLOTS, 0.5, &gp, &gt, &gw, &stats, &dp, &dt).unwrap(),
    ]);
    // Gradient of 0.5 · mse (the loss scale 4 multiplies it).
    let want = reference::mse_backward(&pred, &target, &w, s.cols, 2.0);
    let gpu_mse = |input: &samnet_core::gpu::Tensor, orig: &[f64]| {
        let forward = forward.clone();
        let stats = stats.clone();
        let input = input.clone();
        let orig = orig.to_vec();
        move |v: &[f64]| {
            write(&input, v);
            run(forward.clone());
            write(&input, &orig);
            vec![2.0 * read(&stats)[OUT]]
        }
    };
    let scalar = |f: fn(&[f64], &[f64], &[f64], usize) -> f64, which: usize| {
        let (pred, target, w) = (pred.clone(), target.clone(), w.clone());
        move |v: &[f64]| {
            vec![
                2.0 * if which == 0 {
                    f(v, &target, &w, s.cols)
                } else {
                    f(&pred, v, &w, s.cols)
                },
            ]
        }
    };
    check_backward(
        "mse dpred",
        &pred,
        &[1.0],
        &want,
        &read(&dp),
        scalar(reference::mse, 0),
        gpu_mse(&gp, &pred),
        &mut rng,
    );
    let want_t: Vec<f64> = want.iter().map(|v| -v).collect();
    check_backward(
        "mse dtarget",
        &target,
        &[1.0],
        &want_t,
        &read(&dt),
        scalar(reference::mse, 1),
        gpu_mse(&gt, &target),
        &mut rng,
    );
}

#[test]
fn cross_entropy_forward_and_backward() {
    for (rows, vocab) in [(37, 65), (300, 300)] {
        let s = LossShape { rows, cols: vocab };
        let mut rng = Rng::new(101 + vocab as u64);
        let logits: Vec<f64> = rng.normals(rows * vocab).iter().map(|v| 3.0 * v).collect();
        let targets: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u64) as u32).collect();
        let w = weights(&mut rng, rows);
        let (gl, gtg, gw, lse) = (
            upload("logits", &[rows, vocab], &logits),
            upload_u32("targets", &[rows], &targets),
            upload("w", &[rows], &w),
            zeros("lse", &[rows]),
        );
        let stats = stats_with_scale(1.0);
        let mut forward = loss::weight_sum(gpu(), &gw, &stats, SLOTS).unwrap();
        forward.extend(
            loss::ce_forward(gpu(), s, SLOTS, &gl, &gtg, &gw, &lse, &stats, NUM, OUT).unwrap(),
        );
        run(forward.clone());
        let label = format!("ce {rows}x{vocab}");
        check(
            &format!("{label} fwd"),
            &[read(&stats)[OUT]],
            &[reference::ce(&logits, &targets, &w, vocab)],
            TOL_F32,
        );

        let dl = zeros("dlogits", &[rows, vocab]);
        run(vec![
            loss::ce_backward(gpu(), s, SLOTS, 1.0, &gl, &gtg, &gw, &lse, &stats, &dl).unwrap(),
        ]);
        let want = reference::ce_backward(&logits, &targets, &w, vocab, 1.0);
        let gpu_ce = {
            let (forward, stats, gl, logits) =
                (forward.clone(), stats.clone(), gl.clone(), logits.clone());
            move |v: &[f64]| {
                write(&gl, v);
                run(forward.clone());
                write(&gl, &logits);
                vec![read(&stats)[OUT]]
            }
        };
        let (t2, w2) = (targets.clone(), w.clone());
        check_backward(
            &label,
            &logits,
            &[1.0],
            &want,
            &read(&dl),
            move |v| vec![reference::ce(v, &t2, &w2, vocab)],
            gpu_ce,
            &mut rng,
        );
    }
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    let s = LossShape { rows: 2, cols: 3 };
    let logits = [1000.0, -1000.0, 0.0, 80.0, 90.0, 100.0];
    let (gl, gtg, gw, lse) = (
        upload("logits", &[2, 3], &logits),
        upload_u32("t", &[2], &[0, 1]),
        upload("w", &[2], &[1.0, 1.0]),
        zeros("lse", &[2]),
    );
    let stats = stats_with_scale(1.0);
    let mut forward = loss::weight_sum(gpu(), &gw, &stats, SLOTS).unwrap();
    forward
        .extend(loss::ce_forward(gpu(), s, SLOTS, &gl, &gtg, &gw, &lse, &stats, NUM, OUT).unwrap());
    run(forward);
    check(
        "ce huge logits",
        &[read(&stats)[OUT]],
        &[reference::ce(&logits, &[0, 1], &[1.0, 1.0], 3)],
        TOL_F32,
    );
}
