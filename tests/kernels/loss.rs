use samnet_core::gpu::Tensor;
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

fn stats_with_scale(scale: f64) -> Tensor {
    upload("stats", &[8], &[0.0, scale, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
}

/// The GPU gradient against central differences of the GPU loss. The MSE is
/// quadratic, so central differences are exact for any step; a step of 0.5
/// (not 1e-2) keeps the f32 rounding of the loss, a sum over every element,
/// from swamping the change of one element's term on 1000+ rows.
fn check_mse_gpu_fd(
    label: &str,
    grad: &[f64],
    loss: impl FnMut(&[f64]) -> f64,
    x: &[f64],
    rng: &mut Rng,
) {
    let pick = coords(rng, x.len(), 10);
    check_fd(label, grad, loss, x, &pick, 0.5, TOL_FD_F32);
}

fn mse_case(rows: usize, d: usize, seed: u64) {
    let s = LossShape { rows, cols: d };
    let mut rng = Rng::new(seed);
    let (pred, target, w) = (
        rng.normals(rows * d),
        rng.normals(rows * d),
        weights(&mut rng, rows),
    );
    let (gp, gt, gw) = (
        upload("pred", &[rows, d], &pred),
        upload("target", &[rows, d], &target),
        upload("w", &[rows], &w),
    );
    // Loss scale 4 and loss weight 0.5: the gradient is that of 2 · mse.
    let (scale, loss_weight) = (4.0, 0.5);
    let g = scale * loss_weight;
    let stats = stats_with_scale(scale);
    let mut forward = loss::weight_sum(gpu(), &gw, &stats, SLOTS).unwrap();
    forward.extend(loss::mse_forward(gpu(), s, SLOTS, &gp, &gt, &gw, &stats, NUM, OUT).unwrap());
    run(forward.clone());
    let label = format!("mse {rows}x{d}");
    check(
        &format!("{label} fwd"),
        &[read(&stats)[OUT]],
        &[reference::mse(&pred, &target, &w, d)],
        TOL_F32,
    );

    let (dp, dt) = (zeros("dpred", &[rows, d]), zeros("dtarget", &[rows, d]));
    run(vec![
        loss::mse_backward(
            gpu(),
            s,
            SLOTS,
            loss_weight as f32,
            &gp,
            &gt,
            &gw,
            &stats,
            &dp,
            &dt,
        )
        .unwrap(),
    ]);
    let want_p = reference::mse_backward(&pred, &target, &w, d, g);
    let want_t: Vec<f64> = want_p.iter().map(|v| -v).collect();
    let gpu_loss = |input: &Tensor, original: &[f64]| {
        let (forward, stats, input, original) = (
            forward.clone(),
            stats.clone(),
            input.clone(),
            original.to_vec(),
        );
        move |v: &[f64]| {
            write(&input, v);
            run(forward.clone());
            write(&input, &original);
            g * read(&stats)[OUT]
        }
    };
    let pick = coords(&mut rng, rows * d, 10);
    check_fd(
        &format!("{label} dpred ref vs fd"),
        &want_p,
        |v| g * reference::mse(v, &target, &w, d),
        &pred,
        &pick,
        1e-6,
        TOL_FD_F64,
    );
    check_fd(
        &format!("{label} dtarget ref vs fd"),
        &want_t,
        |v| g * reference::mse(&pred, v, &w, d),
        &target,
        &pick,
        1e-6,
        TOL_FD_F64,
    );
    check(
        &format!("{label} dpred gpu vs ref"),
        &read(&dp),
        &want_p,
        TOL_F32,
    );
    check(
        &format!("{label} dtarget gpu vs ref"),
        &read(&dt),
        &want_t,
        TOL_F32,
    );
    check_mse_gpu_fd(
        &format!("{label} dpred gpu vs fd"),
        &read(&dp),
        gpu_loss(&gp, &pred),
        &pred,
        &mut rng,
    );
    check_mse_gpu_fd(
        &format!("{label} dtarget gpu vs fd"),
        &read(&dt),
        gpu_loss(&gt, &target),
        &target,
        &mut rng,
    );
}

#[test]
fn mse_forward_and_backward() {
    mse_case(37, 24, 100);
    mse_case(1037, 24, 103);
}

#[test]
fn cross_entropy_forward_and_backward() {
    for (rows, vocab) in [(37, 65), (300, 300), (19, 4096)] {
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
fn cross_entropy_over_more_than_65535_rows_folds_the_grid() {
    // One workgroup per row: 66,000 rows fold the grid. (Central differences
    // are left to the smaller shapes: the gradient of one logit is ~1/W here,
    // below the f32 resolution of the loss.)
    let (rows, vocab) = (66_000, 5);
    let s = LossShape { rows, cols: vocab };
    let mut rng = Rng::new(104);
    let logits = rng.normals(rows * vocab);
    let targets: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u64) as u32).collect();
    let w = weights(&mut rng, rows);
    let (gl, gtg, gw, lse, dl) = (
        upload("logits", &[rows, vocab], &logits),
        upload_u32("targets", &[rows], &targets),
        upload("w", &[rows], &w),
        zeros("lse", &[rows]),
        zeros("dlogits", &[rows, vocab]),
    );
    let stats = stats_with_scale(1.0);
    let mut program = loss::weight_sum(gpu(), &gw, &stats, SLOTS).unwrap();
    program
        .extend(loss::ce_forward(gpu(), s, SLOTS, &gl, &gtg, &gw, &lse, &stats, NUM, OUT).unwrap());
    program
        .push(loss::ce_backward(gpu(), s, SLOTS, 1.0, &gl, &gtg, &gw, &lse, &stats, &dl).unwrap());
    run(program);
    check(
        "ce 66000x5 fwd",
        &[read(&stats)[OUT]],
        &[reference::ce(&logits, &targets, &w, vocab)],
        TOL_F32,
    );
    check(
        "ce 66000x5 gpu vs ref",
        &read(&dl),
        &reference::ce_backward(&logits, &targets, &w, vocab, 1.0),
        TOL_F32,
    );
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

#[test]
fn all_excluded_positions_give_zero_loss_and_gradient() {
    let (rows, d, vocab) = (37, 24, 65);
    let mut rng = Rng::new(102);
    let (pred, target, logits) = (
        upload("pred", &[rows, d], &rng.normals(rows * d)),
        upload("target", &[rows, d], &rng.normals(rows * d)),
        upload("logits", &[rows, vocab], &rng.normals(rows * vocab)),
    );
    let targets: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u64) as u32).collect();
    let (gtg, gw, lse) = (
        upload_u32("targets", &[rows], &targets),
        upload("w", &[rows], &vec![0.0; rows]),
        zeros("lse", &[rows]),
    );
    let (dp, dt, dl) = (
        upload("dpred", &[rows, d], &vec![5.0; rows * d]),
        upload("dtarget", &[rows, d], &vec![5.0; rows * d]),
        upload("dlogits", &[rows, vocab], &vec![5.0; rows * vocab]),
    );
    let (mse_s, ce_s) = (LossShape { rows, cols: d }, LossShape { rows, cols: vocab });
    let stats = stats_with_scale(1.0);
    let mut program = loss::weight_sum(gpu(), &gw, &stats, SLOTS).unwrap();
    program.extend(
        loss::mse_forward(gpu(), mse_s, SLOTS, &pred, &target, &gw, &stats, NUM, OUT).unwrap(),
    );
    program.extend(
        loss::ce_forward(gpu(), ce_s, SLOTS, &logits, &gtg, &gw, &lse, &stats, 4, 5).unwrap(),
    );
    program.push(
        loss::mse_backward(
            gpu(),
            mse_s,
            SLOTS,
            1.0,
            &pred,
            &target,
            &gw,
            &stats,
            &dp,
            &dt,
        )
        .unwrap(),
    );
    program.push(
        loss::ce_backward(
            gpu(),
            ce_s,
            SLOTS,
            1.0,
            &logits,
            &gtg,
            &gw,
            &lse,
            &stats,
            &dl,
        )
        .unwrap(),
    );
    run(program);
    let s = read(&stats);
    assert_eq!((s[SLOTS.weight_sum], s[OUT], s[5]), (0.0, 0.0, 0.0));
    for (name, t) in [("dpred", &dp), ("dtarget", &dt), ("dlogits", &dl)] {
        assert!(read(t).iter().all(|&x| x == 0.0), "{name} is not all zero");
    }
}
