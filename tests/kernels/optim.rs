use samnet_core::ops::optim::{self, AdamW, OptimSlots};
use samnet_core::reference::optim as reference;
use samnet_tests::*;

const SLOTS: OptimSlots = OptimSlots {
    sumsq: 0,
    norm: 1,
    factor: 2,
    skip: 3,
    skipped: 4,
    loss_scale: 5,
    clean_steps: 6,
};

struct Case {
    max_norm: f32,
    weight_decay: f32,
    grad_scale: f64,
}

fn run_case(c: Case, seed: u64) {
    let sizes = [37, 300];
    let mut rng = Rng::new(seed);
    let hp = AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: c.weight_decay,
    };
    let mut params: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.normals(n)).collect();
    let mut ms: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
    let mut vs = ms.clone();
    let gp: Vec<_> = params.iter().map(|p| upload("p", &[p.len()], p)).collect();
    let gg: Vec<_> = sizes.iter().map(|&n| zeros("g", &[n])).collect();
    let gm: Vec<_> = sizes.iter().map(|&n| zeros("m", &[n])).collect();
    let gv: Vec<_> = sizes.iter().map(|&n| zeros("v", &[n])).collect();
    let stats = upload("stats", &[8], &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    let step = zeros("step", &[3]);
    let mut program =
        optim::grad_sumsq(gpu(), &gg.iter().collect::<Vec<_>>(), &stats, SLOTS).unwrap();
    program.push(optim::clip_scale(gpu(), &stats, SLOTS, c.max_norm).unwrap());
    for i in 0..sizes.len() {
        program.push(
            optim::adamw(
                gpu(),
                hp,
                SLOTS,
                &stats,
                &step,
                &gp[i],
                &gg[i],
                &gm[i],
                &gv[i],
            )
            .unwrap(),
        );
    }
    let lr = 0.01;
    for t in 1..=3 {
        let grads: Vec<Vec<f64>> = sizes
            .iter()
            .map(|&n| rng.normals(n).iter().map(|g| c.grad_scale * g).collect())
            .collect();
        for (g, t) in grads.iter().zip(&gg) {
            write(t, g);
        }
        write(&step, &[lr, 1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t)]);
        run(program.clone());
        let (norm, factor, skip) = reference::clip(
            &grads.iter().map(|g| g.as_slice()).collect::<Vec<_>>(),
            c.max_norm as f64,
            1.0,
        );
        assert!(!skip);
        for i in 0..sizes.len() {
            reference::adamw(
                &mut params[i],
                &grads[i],
                &mut ms[i],
                &mut vs[i],
                lr,
                (0.9, 0.999),
                1e-8,
                c.weight_decay as f64,
                t,
                factor,
            );
        }
        let s = read(&stats);
        check(
            &format!("grad norm (clip {})", c.max_norm),
            &[s[SLOTS.norm]],
            &[norm],
            TOL_F32,
        );
        check(
            &format!("clip factor (clip {})", c.max_norm),
            &[s[SLOTS.factor]],
            &[factor],
            TOL_F32,
        );
    }
    for i in 0..sizes.len() {
        let label = format!("adamw wd={} clip={} tensor {i}", c.weight_decay, c.max_norm);
        check(&format!("{label} p"), &read(&gp[i]), &params[i], TOL_F32);
        check(&format!("{label} m"), &read(&gm[i]), &ms[i], TOL_F32);
        check(&format!("{label} v"), &read(&gv[i]), &vs[i], TOL_F32);
    }
}

#[test]
fn adamw_matches_pytorch_semantics_with_and_without_clipping_and_decay() {
    run_case(
        Case {
            max_norm: 0.0,
            weight_decay: 0.0,
            grad_scale: 1.0,
        },
        110,
    );
    run_case(
        Case {
            max_norm: 1.0,
            weight_decay: 0.1,
            grad_scale: 1.0,
        },
        111,
    );
    run_case(
        Case {
            max_norm: 1000.0,
            weight_decay: 0.01,
            grad_scale: 0.01,
        },
        112,
    );
}

#[test]
fn a_nan_gradient_skips_the_step_and_is_counted() {
    let n = 50;
    let mut rng = Rng::new(113);
    let p = rng.normals(n);
    let mut g = rng.normals(n);
    g[17] = f64::NAN;
    let hp = AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let (gp, gg, gm, gv) = (
        upload("p", &[n], &p),
        upload("g", &[n], &g),
        zeros("m", &[n]),
        zeros("v", &[n]),
    );
    let stats = upload("stats", &[8], &[0.0, 0.0, 0.0, 0.0, 2.0, 1.0, 0.0, 0.0]);
    let step = upload("step", &[3], &[0.01, 0.1, 0.001]);
    let mut program = optim::grad_sumsq(gpu(), &[&gg], &stats, SLOTS).unwrap();
    program.push(optim::clip_scale(gpu(), &stats, SLOTS, 1.0).unwrap());
    program.push(optim::adamw(gpu(), hp, SLOTS, &stats, &step, &gp, &gg, &gm, &gv).unwrap());
    run(program);
    let s = read(&stats);
    assert_eq!((s[SLOTS.skip], s[SLOTS.skipped]), (1.0, 3.0));
    let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>();
    assert_eq!(
        read(&gp),
        as_f32(&p),
        "parameters changed on a skipped step"
    );
    assert!(read(&gm).iter().chain(read(&gv).iter()).all(|&x| x == 0.0));
}

#[test]
fn loss_scale_halves_on_overflow_and_grows_after_clean_steps() {
    let stats = upload("stats", &[8], &[0.0, 0.0, 0.0, 1.0, 0.0, 1024.0, 0.0, 0.0]);
    run(vec![
        optim::update_loss_scale(gpu(), &stats, SLOTS, 2).unwrap(),
    ]);
    assert_eq!(read(&stats)[SLOTS.loss_scale], 512.0);
    write(&stats, &[0.0, 0.0, 0.0, 0.0, 0.0, 512.0, 0.0, 0.0]);
    let grow = optim::update_loss_scale(gpu(), &stats, SLOTS, 2).unwrap();
    run(vec![grow.clone()]);
    assert_eq!(read(&stats)[SLOTS.loss_scale], 512.0);
    run(vec![grow]);
    assert_eq!(read(&stats)[SLOTS.loss_scale], 1024.0);
}
