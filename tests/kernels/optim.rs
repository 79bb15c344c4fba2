use samnet_core::gpu::{Dispatch, Packed, Packing, Tensor};
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

const HP: AdamW = AdamW {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.0,
};

/// GPU state of several parameter tensors, packed as the model packs them
/// (in two groups, with small chunks, so that both spans and chunks are
/// several), the optimizer program over them, and the f64 reference state
/// next to it.
struct Run {
    sizes: Vec<usize>,
    weight_decay: f32,
    max_norm: f32,
    loss_scale: f64,
    params: Vec<Vec<f64>>,
    ms: Vec<Vec<f64>>,
    vs: Vec<Vec<f64>>,
    gp: Vec<Tensor>,
    gg: Vec<Tensor>,
    gm: Vec<Tensor>,
    gv: Vec<Tensor>,
    stats: Tensor,
    step: Tensor,
    program: Vec<Dispatch>,
    lr: f64,
}

impl Run {
    fn new(
        sizes: &[usize],
        weight_decay: f32,
        max_norm: f32,
        loss_scale: f64,
        rng: &mut Rng,
    ) -> Run {
        let params: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.normals(n)).collect();
        let ms: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let vs = ms.clone();
        let tensors: Vec<(&str, usize, usize)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| ("t", n, i % 2))
            .collect();
        let packing = Packing::new(&tensors, 256, 1300).unwrap();
        let shapes: Vec<Vec<usize>> = sizes.iter().map(|&n| vec![n]).collect();
        let named: Vec<(&str, &[usize])> = shapes.iter().map(|s| ("t", s.as_slice())).collect();
        let pack = |prefix: &str| gpu().packed(prefix, &named, &packing).unwrap();
        let (p, g, m, v) = (pack("p"), pack("g"), pack("m"), pack("v"));
        for (t, values) in p.tensors.iter().zip(&params) {
            write(t, values);
        }
        let mut stats_init = vec![0.0; 8];
        stats_init[SLOTS.loss_scale] = loss_scale;
        let stats = upload("stats", &[8], &stats_init);
        let step = zeros("step", &[3]);
        let h = AdamW { weight_decay, ..HP };
        let mut program =
            optim::grad_sumsq(gpu(), &g.chunks.iter().collect::<Vec<_>>(), &stats, SLOTS).unwrap();
        program.push(optim::clip_scale(gpu(), &stats, SLOTS, max_norm).unwrap());
        for span in &packing.spans {
            let [sp, sg, sm, sv] = [&p, &g, &m, &v].map(|t: &Packed| t.span(span));
            program.push(optim::adamw(gpu(), h, SLOTS, &stats, &step, &sp, &sg, &sm, &sv).unwrap());
        }
        let (gp, gg, gm, gv) = (p.tensors, g.tensors, m.tensors, v.tensors);
        Run {
            sizes: sizes.to_vec(),
            weight_decay,
            max_norm,
            loss_scale,
            params,
            ms,
            vs,
            gp,
            gg,
            gm,
            gv,
            stats,
            step,
            program,
            lr: 0.01,
        }
    }

    /// Gradients as the backward leaves them: true gradients times the loss scale.
    fn gradients(&self, rng: &mut Rng, magnitude: f64) -> Vec<Vec<f64>> {
        self.sizes
            .iter()
            .map(|&n| {
                rng.normals(n)
                    .iter()
                    .map(|g| magnitude * self.loss_scale * g)
                    .collect()
            })
            .collect()
    }

    /// Runs step `t` on the GPU (the CPU writes lr and the bias corrections).
    fn gpu_step(&self, t: i32, grads: &[Vec<f64>]) {
        for (g, tensor) in grads.iter().zip(&self.gg) {
            write(tensor, g);
        }
        let (b1, b2) = (HP.beta1 as f64, HP.beta2 as f64);
        write(&self.step, &[self.lr, 1.0 - b1.powi(t), 1.0 - b2.powi(t)]);
        run(self.program.clone());
    }

    /// Step `t` on the GPU and the reference; checks norm and clip factor.
    fn step_and_check(&mut self, t: i32, grads: &[Vec<f64>]) {
        self.gpu_step(t, grads);
        let (norm, factor, skip) = reference::clip(
            &grads.iter().map(|g| g.as_slice()).collect::<Vec<_>>(),
            self.max_norm as f64,
            self.loss_scale,
        );
        assert!(!skip);
        for (i, g) in grads.iter().enumerate() {
            reference::adamw(
                &mut self.params[i],
                g,
                &mut self.ms[i],
                &mut self.vs[i],
                self.lr,
                (HP.beta1 as f64, HP.beta2 as f64),
                HP.eps as f64,
                self.weight_decay as f64,
                t,
                factor,
            );
        }
        let s = read(&self.stats);
        let label = self.label();
        check(
            &format!("{label} norm step {t}"),
            &[s[SLOTS.norm]],
            &[norm],
            TOL_F32,
        );
        check(
            &format!("{label} factor step {t}"),
            &[s[SLOTS.factor]],
            &[factor],
            TOL_F32,
        );
        assert_eq!(s[SLOTS.skip], 0.0, "{label}: a finite step was flagged");
    }

    fn check_state(&self, what: &str) {
        let label = self.label();
        for i in 0..self.sizes.len() {
            let l = format!("{label} {what} tensor {i}");
            check(
                &format!("{l} p"),
                &read(&self.gp[i]),
                &self.params[i],
                TOL_F32,
            );
            check(&format!("{l} m"), &read(&self.gm[i]), &self.ms[i], TOL_F32);
            check(&format!("{l} v"), &read(&self.gv[i]), &self.vs[i], TOL_F32);
        }
    }

    fn label(&self) -> String {
        format!(
            "adamw wd={} clip={} scale={}",
            self.weight_decay, self.max_norm, self.loss_scale
        )
    }

    /// The GPU (p, m, v) of every tensor.
    fn gpu_state(&self) -> Vec<Vec<f64>> {
        (0..self.sizes.len())
            .flat_map(|i| [read(&self.gp[i]), read(&self.gm[i]), read(&self.gv[i])])
            .collect()
    }
}

#[test]
fn adamw_matches_pytorch_semantics_with_and_without_clipping_and_decay() {
    // (weight decay, max norm, loss scale, gradient magnitude): no clipping,
    // clipping active (norm ≈ 17 > 1), clipping on but inactive, and a loss
    // scale of 1024 that the clip factor must divide out.
    let cases = [
        (0.0, 0.0, 1.0, 1.0),
        (0.1, 1.0, 1.0, 1.0),
        (0.01, 1000.0, 1.0, 0.01),
        (0.1, 1.0, 1024.0, 1.0),
    ];
    for (i, (wd, max_norm, loss_scale, magnitude)) in cases.into_iter().enumerate() {
        let mut rng = Rng::new(110 + i as u64);
        let mut r = Run::new(&[37, 300], wd, max_norm, loss_scale, &mut rng);
        for t in 1..=4 {
            let grads = r.gradients(&mut rng, magnitude);
            r.step_and_check(t, &grads);
        }
        r.check_state("after 4 steps");
    }
}

#[test]
fn a_non_finite_gradient_skips_the_step_and_is_counted() {
    let mut rng = Rng::new(113);
    let mut r = Run::new(&[50, 37], 0.1, 1.0, 1.0, &mut rng);
    let grads = r.gradients(&mut rng, 1.0);
    r.step_and_check(1, &grads);
    let before = r.gpu_state();
    // A NaN, and finite values whose squares overflow f32 (sumsq = inf).
    let mut nan = r.gradients(&mut rng, 1.0);
    nan[0][17] = f64::NAN;
    let overflow: Vec<Vec<f64>> = r.sizes.iter().map(|&n| vec![3e19; n]).collect();
    for (k, bad) in [nan, overflow].iter().enumerate() {
        r.gpu_step(2, bad);
        let s = read(&r.stats);
        assert_eq!(s[SLOTS.skip], 1.0, "non-finite step {k} not flagged");
        assert_eq!(
            s[SLOTS.skipped],
            (k + 1) as f64,
            "skipped steps not counted"
        );
        assert_eq!(r.gpu_state(), before, "a skipped step changed p, m or v");
    }
    // The next finite step is applied as step 2 and clears the flag.
    let grads = r.gradients(&mut rng, 1.0);
    r.step_and_check(2, &grads);
    assert_eq!(read(&r.stats)[SLOTS.skipped], 2.0);
    r.check_state("after skipped steps");
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
