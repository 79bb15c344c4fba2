//! Training on the test adapter: the tiny config's loss falls (in f32 and in
//! mixed precision), a checkpoint round-trips bit-exactly, a resumed run
//! reproduces the loss curve of an uninterrupted one, overflowing or NaN
//! steps are skipped and survived, and a step's profile accounts for every
//! dispatch.

use samnet_core::checkpoint::{self, NamedTensor, StoreAs};
use samnet_core::config::{Config, Precision};
use samnet_core::data::{TextData, Windows};
use samnet_core::eval;
use samnet_core::gpu::{Gpu, GpuOptions, LimitsPolicy};
use samnet_core::model::Model;
use samnet_core::model::graph::OptimizerState;
use samnet_core::sample::{SampleOptions, Sampler};
use samnet_core::schedule::NoiseSchedule;
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::{Snapshot, TrainState, Trainer};
use samnet_tests::{check, gpu, read};

fn corpus() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/tinyshakespeare.txt"
    );
    std::fs::read_to_string(path).expect("../shared/data/tinyshakespeare.txt (the CI layout)")
}

fn setup(config: &Config) -> (Trainer, TextData, Tokenizer) {
    let text = corpus();
    let tokenizer = Tokenizer::char_level(&text).unwrap();
    let data = TextData::new(&text, &tokenizer, config.train.seq_len, "tinyshakespeare").unwrap();
    setup_from(config, &TrainState::default(), data, tokenizer)
}

fn setup_from(
    config: &Config,
    state: &TrainState,
    data: TextData,
    tokenizer: Tokenizer,
) -> (Trainer, TextData, Tokenizer) {
    let model = Model::new(gpu(), config, config.train.seed).unwrap();
    let optimizer = OptimizerState::new(gpu(), &model).unwrap();
    (
        Trainer::new(gpu(), model, optimizer, state).unwrap(),
        data,
        tokenizer,
    )
}

/// The same tensors (in any order) with the same bits.
fn same_bits(a: &[NamedTensor], b: &[NamedTensor]) -> bool {
    let key = |v: &[NamedTensor]| {
        let mut k: Vec<(String, Vec<usize>, Vec<u32>)> = v
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.shape.clone(),
                    t.data.iter().map(|x| x.to_bits()).collect(),
                )
            })
            .collect();
        k.sort();
        k
    };
    key(a) == key(b)
}

fn mean_val_loss(trainer: &Trainer, data: &TextData) -> f64 {
    let cfg = &trainer.config;
    let val = pollster::block_on(eval::validation_loss(
        gpu(),
        &trainer.model,
        data,
        cfg.train.seq_len,
    ))
    .unwrap();
    let d = &cfg.diffusion;
    val.iter()
        .map(|v| (d.mse_weight * v.mse + d.ce_weight * v.ce) as f64)
        .sum::<f64>()
        / val.len() as f64
}

#[test]
fn tiny_config_loss_falls_by_at_least_30_percent() {
    loss_falls_by_at_least_30_percent(&Config::preset("tiny").unwrap());
}

/// The gaussian kind with every lever on: a 16-wide embedding table, the
/// output prior, CE alone (mse_weight 0); the trained model samples with
/// soft estimates, the same seed giving the same text.
#[test]
fn tiny_gaussian_with_its_levers_loss_falls_and_it_samples() {
    let mut config = Config::preset("tiny").unwrap();
    let d = &mut config.diffusion;
    (d.embed_dim, d.output_prior, d.mse_weight, d.soft_x0) = (Some(16), 1.0, 0.0, true);
    config.validate().unwrap();
    let trainer = loss_falls_by_at_least_30_percent(&config);
    let sampler = Sampler::new(gpu(), &trainer.model, 2, 24).unwrap();
    let options = SampleOptions::from_config(&config.diffusion);
    let schedule = NoiseSchedule::new(&config.diffusion);
    let run = || pollster::block_on(sampler.run(gpu(), &schedule, &options, None, None)).unwrap();
    let (first, again) = (run(), run());
    assert_eq!(first, again, "same seed, same text");
    assert_eq!(first.len(), 48);
    let distinct: std::collections::HashSet<u32> = first.iter().copied().collect();
    assert!(
        distinct.len() > 3,
        "a soft sampler collapsed to {distinct:?}"
    );
}

fn loss_falls_by_at_least_30_percent(config: &Config) -> Trainer {
    let (mut trainer, data, _) = setup(config);
    let before = mean_val_loss(&trainer, &data);
    for _ in 0..config.train.steps {
        trainer.step(gpu(), &data).unwrap();
    }
    let after = mean_val_loss(&trainer, &data);
    println!(
        "validation loss (mean over t ∈ {{50, 250, 500, 750, 950}}): {before:.4} → {after:.4} after {} steps",
        config.train.steps
    );
    assert!(
        after <= 0.7 * before,
        "loss fell from {before} to {after}, less than 30 %"
    );
    trainer
}

/// diffusion.kind "hybrid" on the tiny model: its validation loss (the
/// ELBO's CE term) falls, and the trained model samples — every position
/// frozen to a token by the last step, known positions kept, the same seed
/// giving the same text and another seed other text.
#[test]
fn tiny_hybrid_loss_falls_and_it_samples() {
    discrete_loss_falls_and_it_samples("tiny-hybrid");
}

/// The same for diffusion.kind "masked" (MDLM).
#[test]
fn tiny_masked_loss_falls_and_it_samples() {
    discrete_loss_falls_and_it_samples("tiny-masked");
}

fn discrete_loss_falls_and_it_samples(preset: &str) {
    use samnet_core::conditioning::Known;
    use samnet_core::config::RevealOrder;
    use samnet_core::sample::StepOutput;
    use std::ops::ControlFlow;
    let config = Config::preset(preset).unwrap();
    let kind = config.diffusion.kind.name();
    let (mut trainer, data, tokenizer) = setup(&config);
    let before = mean_val_loss(&trainer, &data);
    for _ in 0..config.train.steps {
        trainer.step(gpu(), &data).unwrap();
    }
    let after = mean_val_loss(&trainer, &data);
    println!(
        "{kind} validation loss: {before:.4} → {after:.4} after {} steps",
        config.train.steps
    );
    assert!(
        after <= 0.75 * before,
        "loss fell from {before} to {after}, less than 25 %"
    );
    // Uniform guessing scores ln V; 20 % below it takes more than letter frequencies.
    let uniform = (config.model.vocab_size as f64).ln();
    assert!(after < 0.8 * uniform, "loss {after} vs ln V = {uniform}");

    let len = config.train.seq_len;
    let sampler = Sampler::new(gpu(), &trainer.model, 1, len).unwrap();
    let schedule = NoiseSchedule::new(&config.diffusion);
    let prompt = tokenizer.encode("ROMEO:").unwrap();
    let mut known = Known {
        tokens: vec![0; len],
        mask: vec![false; len],
    };
    for (i, &t) in prompt.iter().enumerate() {
        (known.tokens[i], known.mask[i]) = (t, true);
    }
    for order in [
        RevealOrder::Random,
        RevealOrder::Confident,
        RevealOrder::Left,
        RevealOrder::Blocks,
    ] {
        let options = SampleOptions {
            order,
            ..SampleOptions::from_config(&config.diffusion)
        };
        let (mut shown, mut frozen) = (Vec::new(), Vec::new());
        let mut watch = |s: StepOutput| {
            let graph = sampler.graph();
            frozen.push(s.frozen);
            shown.push((s.tokens, read(&graph.x_t), read(&graph.logits)));
            ControlFlow::Continue(())
        };
        let run = |seed: u64, on_step: Option<&mut dyn FnMut(StepOutput) -> ControlFlow<()>>| {
            let o = SampleOptions {
                seed,
                ..options.clone()
            };
            pollster::block_on(sampler.run(gpu(), &schedule, &o, Some(&known), on_step)).unwrap()
        };
        let a = run(1, Some(&mut watch));
        assert_eq!(shown.len(), options.steps, "{order:?}");
        for (step, (tokens, _, _)) in shown.iter().enumerate() {
            assert!(
                tokens[..prompt.len()] == prompt[..],
                "{order:?} step {step}: prompt lost"
            );
        }
        assert_eq!(
            a,
            shown[shown.len() - 1].0,
            "the last step shows the result"
        );
        check_frozen_masks(&known, &frozen, &shown);
        assert_eq!(a, run(1, None), "{order:?}: same seed, same sample");
        assert_ne!(a, run(2, None), "{order:?}: another seed, another sample");
        assert!(a.iter().all(|&t| (t as usize) < config.model.vocab_size));
        println!(
            "{kind} sample ({order:?}): {:?}",
            tokenizer.decode(&a).unwrap()
        );
        if order == RevealOrder::Random {
            let graph = sampler.graph();
            let tables = (read(&graph.e_hat), graph.mask_hat.as_ref().map(read));
            check_first_two_inputs(&config, &known, &options, 1, &tables, &shown);
        }
    }
    check_nucleus_draws(&config, &sampler, &schedule, &known);
}

/// With top_p 0.5, every token a step draws for a position not yet frozen
/// lies in the nucleus of that step's softmax(logits / τ).
fn check_nucleus_draws(
    config: &Config,
    sampler: &Sampler,
    schedule: &NoiseSchedule,
    known: &samnet_core::conditioning::Known,
) {
    use samnet_core::reference::{reveal, sampling};
    use samnet_core::sample::StepOutput;
    use std::ops::ControlFlow;
    let options = SampleOptions {
        temperature: 0.8,
        top_p: 0.5,
        seed: 3,
        ..SampleOptions::from_config(&config.diffusion)
    };
    let mut steps = Vec::new();
    let mut watch = |s: StepOutput| {
        steps.push((s.tokens, s.frozen, read(&sampler.graph().logits)));
        ControlFlow::Continue(())
    };
    pollster::block_on(sampler.run(gpu(), schedule, &options, Some(known), Some(&mut watch)))
        .unwrap();
    let vocab = config.model.vocab_size;
    let (mut frozen_before, mut checked) = (known.mask.clone(), 0);
    for (tokens, frozen, logits) in &steps {
        let probs = reveal::tempered_softmax(logits, tokens.len(), vocab, 0.8);
        for (r, &token) in tokens.iter().enumerate() {
            let (kept, margin) = sampling::nucleus(&probs[r * vocab..][..vocab], 0.5);
            if !frozen_before[r] && margin > 2e-5 {
                assert!(
                    kept[token as usize],
                    "position {r}: {token} outside the nucleus"
                );
                checked += 1;
            }
        }
        frozen_before = frozen.clone();
    }
    let unknown = known.mask.iter().filter(|&&m| !m).count();
    assert!(
        2 * checked > unknown,
        "{checked} draws checked of {unknown} positions"
    );
}

/// Each step's frozen mask holds the known positions and every position
/// frozen before it, whose token stays; after the last step all are frozen.
fn check_frozen_masks(
    known: &samnet_core::conditioning::Known,
    frozen: &[Vec<bool>],
    shown: &[(Vec<u32>, Vec<f64>, Vec<f64>)],
) {
    let mut before = known.mask.clone();
    let mut before_tokens = &known.tokens;
    for (step, (mask, (tokens, _, _))) in frozen.iter().zip(shown).enumerate() {
        for r in 0..mask.len() {
            if before[r] {
                assert!(mask[r], "step {step}: position {r} unfrozen");
                assert_eq!(
                    tokens[r], before_tokens[r],
                    "step {step}: frozen {r} changed"
                );
            }
        }
        (before, before_tokens) = (mask.clone(), tokens);
    }
    assert!(before.iter().all(|&f| f), "all frozen after the last step");
    let first = frozen[0].iter().filter(|&&f| f).count();
    assert!(first < before.len(), "not everything frozen at step 0");
}

/// The sampler's first two denoiser inputs against an f64 replay from the
/// same draws, the random reveal of step 0 regenerated from its counter
/// hash: frozen positions read Ê[token], the others (masked) the mask row
/// m̂ or (hybrid) z/sqrt(1 + sigma²), where z = sigma(1)·randn(seed), then
/// z ← x̂0 + (sigma_s/sigma_t)(z − x̂0) with x̂0 = softmax(logits/τ)·Ê.
fn check_first_two_inputs(
    config: &Config,
    known: &samnet_core::conditioning::Known,
    options: &SampleOptions,
    seed: u64,
    (e_hat, mask_hat): &(Vec<f64>, Option<Vec<f64>>),
    shown: &[(Vec<u32>, Vec<f64>, Vec<f64>)],
) {
    use samnet_core::hybrid;
    use samnet_core::reference::{random, reveal};
    use samnet_core::sample::{HYBRID_INIT_STREAM, HYBRID_REVEAL_STREAM, step_key};
    let (d, vocab, len) = (
        config.model.d_model,
        config.model.vocab_size,
        known.tokens.len(),
    );
    let t_max = config.diffusion.timesteps;
    let grid = hybrid::sampling_timesteps(t_max, options.steps);
    let time = |i: usize| grid[i] as f64 / t_max as f64;
    let sigma = |i: usize| hybrid::sigma(&config.diffusion, time(i), d);
    let key = [seed as u32, (seed >> 32) as u32];
    // The unfrozen positions' inputs at steps 0 and 1.
    let noisy: [Vec<f64>; 2] = match mask_hat {
        Some(m) => [0, 1].map(|_| (0..len * d).map(|i| m[i % d]).collect()),
        None => {
            let z0 = random::randn(len * d, key, HYBRID_INIT_STREAM, sigma(0) as f32 as f64);
            let temperature = if options.temperature > 0.0 {
                options.temperature as f64
            } else {
                1.0
            };
            let probs = reveal::tempered_softmax(&shown[0].2, len, vocab, temperature);
            let ratio = sigma(1) / sigma(0);
            let z1: Vec<f64> = (0..len * d)
                .map(|i| {
                    let (r, c) = (i / d, i % d);
                    let x0: f64 = (0..vocab)
                        .map(|v| probs[r * vocab + v] * e_hat[v * d + c])
                        .sum();
                    x0 + ratio * (z0[i] - x0)
                })
                .collect();
            let scale = |z: &[f64], s: f64| z.iter().map(|x| x / (1.0 + s * s).sqrt()).collect();
            [scale(&z0, sigma(0)), scale(&z1, sigma(1))]
        }
    };
    let input = |frozen: &dyn Fn(usize) -> Option<u32>, step: usize| -> Vec<f64> {
        (0..len * d)
            .map(|i| match frozen(i / d) {
                Some(tok) => e_hat[tok as usize * d + i % d],
                None => noisy[step][i],
            })
            .collect()
    };
    let known_token = |r: usize| known.mask[r].then_some(known.tokens[r]);
    check("input, step 0", &shown[0].1, &input(&known_token, 0), 1e-4);
    let p0 = ((time(0) - time(1)) / time(0)) as f32;
    let step0 = step_key(seed, 0);
    let frozen_after_0 = |r: usize| {
        let revealed = known.mask[r]
            || random::uniform(r as u64, reveal::REVEAL_SALT, step0, HYBRID_REVEAL_STREAM) as f32
                <= p0;
        revealed.then_some(shown[0].0[r])
    };
    check(
        "input, step 1",
        &shown[1].1,
        &input(&frozen_after_0, 1),
        1e-4,
    );
}

#[test]
fn checkpoint_round_trips_and_resume_reproduces_the_loss_curve() {
    let mut config = Config::preset("tiny").unwrap();
    config.train.steps = 12;
    let (split_at, total) = (5, config.train.steps);

    // Uninterrupted run: the loss after every step.
    let (mut straight, data, tokenizer) = setup(&config);
    let mut curve = Vec::new();
    for _ in 0..total {
        straight.step(gpu(), &data).unwrap();
        curve.push(pollster::block_on(straight.metrics(gpu())).unwrap().loss);
    }

    // Interrupted run: save at `split_at`, load everything back, continue.
    let (mut first, _, _) = setup(&config);
    for _ in 0..split_at {
        first.step(gpu(), &data).unwrap();
    }
    let snapshot = pollster::block_on(first.snapshot(gpu())).unwrap();
    let dir = std::env::temp_dir().join(format!("samnet-resume-{}", std::process::id()));
    let files = snapshot.encode(&tokenizer, StoreAs::F32).unwrap();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    checkpoint::write_dir(&dir, &refs).unwrap();
    let read = |name: &str| Ok(Some(checkpoint::read_file(&dir, name)?));
    let (loaded, loaded_tokenizer) = Snapshot::decode(&read, "resume test").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // Bit-exact round trip of weights, optimizer state and training state.
    assert!(
        same_bits(&loaded.model, &snapshot.model),
        "weights changed in the round trip"
    );
    assert!(
        same_bits(
            loaded.optimizer.as_deref().unwrap(),
            snapshot.optimizer.as_deref().unwrap()
        ),
        "optimizer state changed"
    );
    assert_eq!(loaded.state, snapshot.state);
    assert_eq!(loaded.config, snapshot.config);
    assert_eq!(
        loaded_tokenizer.to_json().unwrap(),
        tokenizer.to_json().unwrap()
    );

    let model =
        Model::from_tensors(gpu(), &loaded.config, loaded.model.clone(), "resume test").unwrap();
    let optimizer = loaded
        .optimizer_state(gpu(), &model, "resume test")
        .unwrap();
    let mut resumed = Trainer::new(gpu(), model, optimizer, &loaded.state).unwrap();
    assert_eq!(resumed.step, split_at);
    for expected in &curve[split_at..] {
        resumed.step(gpu(), &data).unwrap();
        let loss = pollster::block_on(resumed.metrics(gpu())).unwrap().loss;
        assert_eq!(
            loss.to_bits(),
            expected.to_bits(),
            "step {}: resumed {loss} vs uninterrupted {expected}",
            resumed.step
        );
    }
    println!(
        "resumed run matched the uninterrupted loss curve bit for bit over steps {}..{total}",
        split_at + 1
    );
}

#[test]
fn an_injected_nan_skips_the_step_and_the_run_recovers() {
    let mut config = Config::preset("tiny").unwrap();
    config.train.steps = 10;
    let (mut trainer, data, _) = setup(&config);
    let poisoned = 4;
    trainer.inject_nan.insert(poisoned);
    for _ in 1..poisoned {
        trainer.step(gpu(), &data).unwrap();
    }
    let before = pollster::block_on(trainer.snapshot(gpu())).unwrap();
    assert_eq!(before.state.skipped_steps, 0);

    trainer.step(gpu(), &data).unwrap();
    let m = pollster::block_on(trainer.metrics(gpu())).unwrap();
    assert!(m.skipped, "step {poisoned} was not skipped: {m:?}");
    assert_eq!(m.skipped_steps, 1);
    assert!(!m.loss.is_finite(), "the poisoned loss is {}", m.loss);
    assert!(!m.grad_norm.is_finite(), "grad norm {}", m.grad_norm);
    let after = pollster::block_on(trainer.snapshot(gpu())).unwrap();
    assert!(
        same_bits(&before.model, &after.model),
        "a skipped step changed the weights"
    );
    assert!(
        same_bits(
            before.optimizer.as_deref().unwrap(),
            after.optimizer.as_deref().unwrap()
        ),
        "a skipped step changed the AdamW moments"
    );

    let mut losses = Vec::new();
    for _ in poisoned..config.train.steps {
        trainer.step(gpu(), &data).unwrap();
        let m = pollster::block_on(trainer.metrics(gpu())).unwrap();
        assert!(!m.skipped && m.skipped_steps == 1, "step {}: {m:?}", m.step);
        assert!(m.loss.is_finite() && m.grad_norm.is_finite(), "{m:?}");
        losses.push(m.loss);
    }
    let end = pollster::block_on(trainer.snapshot(gpu())).unwrap();
    assert!(
        !same_bits(&after.model, &end.model),
        "the weights stopped changing after the skipped step"
    );
    println!(
        "NaN injected at step {poisoned}: skipped (weights and moments bit-identical), then {} finite steps, losses {losses:?}",
        losses.len()
    );
}

#[test]
fn deferred_metrics_are_those_of_their_step() {
    let config = Config::preset("tiny").unwrap();
    let (mut trainer, data, _) = setup(&config);
    trainer.step(gpu(), &data).unwrap();
    trainer.step(gpu(), &data).unwrap();
    let pending = trainer.metrics_later(gpu());
    let now = pollster::block_on(trainer.metrics(gpu())).unwrap();
    // Later steps run before the deferred read is collected.
    trainer.step(gpu(), &data).unwrap();
    trainer.step(gpu(), &data).unwrap();
    let later = loop {
        if let Some(m) = trainer.collect_metrics(gpu(), &pending, false).unwrap() {
            break m;
        }
        std::thread::yield_now();
    };
    assert_eq!(later.step, 2);
    assert_eq!(later.loss.to_bits(), now.loss.to_bits());
    assert_eq!(later.grad_norm.to_bits(), now.grad_norm.to_bits());
    let fourth = pollster::block_on(trainer.metrics(gpu())).unwrap();
    assert_ne!(fourth.loss.to_bits(), later.loss.to_bits());
}

/// All gradients of the last step, unscaled by the loss scale.
fn unscaled_grads(trainer: &Trainer) -> Vec<f64> {
    let scale = pollster::block_on(trainer.metrics(gpu()))
        .unwrap()
        .loss_scale as f64;
    trainer
        .graph
        .grads
        .iter()
        .flat_map(|g| gpu().read_f32_blocking(g).unwrap())
        .map(|x| x as f64 / scale)
        .collect()
}

/// Mixed precision (f16 operands, f32 master weights, loss scale 2^16) on
/// the same seed and batches as f32: the first step's gradients agree to
/// within 1 % yet differ (the rounding is there), the loss falls by ≥ 30 %
/// and ends within 2 % of the f32 run's, with no overflow at 2^16.
#[test]
fn mixed_precision_trains_like_f32() {
    let mut config = Config::preset("tiny").unwrap();
    let (mut full, data, _) = setup(&config);
    config.train.precision = Precision::F16;
    let (mut mixed, _, _) = setup(&config);
    assert_eq!(
        (full.precision(), mixed.precision()),
        ("f32", "mixed f16/f32")
    );
    let before = mean_val_loss(&mixed, &data);
    full.step(gpu(), &data).unwrap();
    mixed.step(gpu(), &data).unwrap();
    let (g32, g16) = (unscaled_grads(&full), unscaled_grads(&mixed));
    let scale = g32.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let err = g16
        .iter()
        .zip(&g32)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    println!("ERR mixed-precision gradients vs f32 {err:.3e}");
    assert!(
        err < 1e-2 && err > 0.0,
        "gradients differ by {err:.3e} of their scale"
    );

    for _ in 1..config.train.steps {
        full.step(gpu(), &data).unwrap();
        mixed.step(gpu(), &data).unwrap();
    }
    let m = pollster::block_on(mixed.metrics(gpu())).unwrap();
    assert_eq!((m.loss_scale, m.skipped_steps), (65536.0, 0), "{m:?}");
    let (after16, after32) = (mean_val_loss(&mixed, &data), mean_val_loss(&full, &data));
    println!(
        "mixed precision: validation loss {before:.4} → {after16:.4} after {} steps (f32: {after32:.4})",
        config.train.steps
    );
    assert!(
        after16 <= 0.7 * before,
        "loss fell from {before} to {after16}"
    );
    assert!(
        (after16 - after32).abs() <= 0.02 * after32,
        "mixed {after16} vs f32 {after32}"
    );
}

/// A loss scale far too large overflows f16: each such step is skipped
/// (weights untouched) and halves the scale, until the scaled gradients fit
/// and training goes on.
#[test]
fn an_overflowing_loss_scale_backs_off_and_training_goes_on() {
    let mut config = Config::preset("tiny").unwrap();
    config.train.precision = Precision::F16;
    let text = corpus();
    let tokenizer = Tokenizer::char_level(&text).unwrap();
    let data = TextData::new(&text, &tokenizer, config.train.seq_len, "tinyshakespeare").unwrap();
    let start = 2f32.powi(30);
    let state = TrainState {
        loss_scale: start,
        ..Default::default()
    };
    let (mut trainer, data, _) = setup_from(&config, &state, data, tokenizer);
    let initial = pollster::block_on(trainer.snapshot(gpu())).unwrap();
    let mut scale = start;
    let mut skipped = 0;
    loop {
        trainer.step(gpu(), &data).unwrap();
        let m = pollster::block_on(trainer.metrics(gpu())).unwrap();
        if !m.skipped {
            assert_eq!(m.loss_scale, scale, "a clean step keeps the scale: {m:?}");
            break;
        }
        skipped += 1;
        scale /= 2.0;
        assert!(m.loss.is_finite(), "the forward itself stays finite: {m:?}");
        assert_eq!((m.loss_scale, m.skipped_steps), (scale, skipped), "{m:?}");
        assert!(skipped < 20, "still overflowing at a scale of {scale}");
        let now = pollster::block_on(trainer.snapshot(gpu())).unwrap();
        assert!(
            same_bits(&initial.model, &now.model),
            "an overflowing step changed the weights"
        );
    }
    assert!(skipped > 0, "a scale of 2^30 did not overflow f16");
    for _ in 0..5 {
        trainer.step(gpu(), &data).unwrap();
        let m = pollster::block_on(trainer.metrics(gpu())).unwrap();
        assert!(!m.skipped && m.skipped_steps == skipped, "{m:?}");
    }
    println!(
        "loss scale 2^30: {skipped} overflowing steps skipped, settled at 2^{}",
        scale.log2()
    );
}

/// An adapter without SHADER_F16 refuses f16 training by name, and `auto`
/// falls back to f32 there.
#[test]
fn f16_without_shader_f16_is_refused_and_auto_falls_back() {
    let mut no_f16 = Gpu::new_blocking(&GpuOptions {
        limits: LimitsPolicy::WebGpuDefault,
        ..Default::default()
    })
    .unwrap();
    no_f16.features.shader_f16 = false;
    let mut config = Config::preset("tiny").unwrap();
    let text = corpus();
    config.model.vocab_size = Tokenizer::char_level(&text).unwrap().vocab_size();
    let trainer = |config: &Config| {
        let model = Model::new(&no_f16, config, 0).unwrap();
        let optimizer = OptimizerState::new(&no_f16, &model).unwrap();
        Trainer::new(&no_f16, model, optimizer, &TrainState::default())
    };
    config.train.precision = Precision::F16;
    let err = trainer(&config)
        .err()
        .expect("f16 without SHADER_F16")
        .to_string();
    assert!(
        err.contains("train.precision \"f16\"")
            && err.contains("SHADER_F16")
            && err.contains(&no_f16.info.name),
        "{err}"
    );
    config.train.precision = Precision::Auto;
    assert_eq!(trainer(&config).unwrap().precision(), "f32");
}

/// `bench train --profile`: every dispatch is timed once, in the stream with
/// GPU timestamps where the adapter has them; copies and clears still run
/// (the second axpby reads what the clear left).
#[test]
fn a_profile_times_every_dispatch_once() {
    use samnet_core::gpu::{Command, Program};
    use samnet_core::ops::elementwise::{axpby, fill};
    use samnet_core::profile::{Clock, profile};
    use samnet_tests::zeros;
    let gpu = gpu();
    let (x, out) = (zeros("x", &[300]), zeros("out", &[300]));
    let mut program = Program::new();
    program.push(fill(gpu, &x, 2.0).unwrap());
    program.push(axpby(gpu, 1.0, &x, 0.0, &out).unwrap());
    program.push(Command::Zero(x.clone()));
    program.push(axpby(gpu, 1.0, &x, 1.0, &out).unwrap());
    let profile = pollster::block_on(profile(gpu, &[&program])).unwrap();
    let want_clock = if gpu.features.timestamps {
        Clock::GpuTimestamps
    } else {
        Clock::WallPerCommand
    };
    assert_eq!(profile.clock, want_clock);
    let calls = |name: &str| {
        profile
            .kernels
            .iter()
            .find(|k| k.kernel == name)
            .map(|k| k.calls)
    };
    assert_eq!(calls("elementwise::fill"), Some(1));
    assert_eq!(calls("elementwise::axpby"), Some(2));
    assert!(
        profile
            .kernels
            .iter()
            .all(|k| k.total_ms.is_finite() && k.total_ms >= 0.0),
        "{:?}",
        profile.kernels
    );
    check(
        "profiled program's result",
        &read(&out),
        &vec![2.0; 300],
        0.0,
    );
}

/// The example pipeline end to end, prompt to loss: a tiny hybrid model
/// trained on examples whose response repeats its prompt's letters learns
/// to read the prompt — held-out responses cost fewer nats per token given
/// their own prompt than given another's ([`Windows::prompt_pairs`]), a gap
/// the untrained model does not have — with its examples packed and padded.
/// Phase 4's model shows no such gap (docs/pipeline.md); this says the known
/// prompts, their layout and the loss are not why.
#[test]
fn a_tiny_model_learns_to_read_its_prompt() {
    use samnet_core::corpus::{Body, Document};
    use samnet_core::rng::Rng;
    let mut rng = Rng::new(7);
    let mut copy = || {
        let word: String = (0..4)
            .map(|_| char::from(b'a' + rng.below(8) as u8))
            .collect();
        (format!("{word}="), word)
    };
    let docs: Vec<Document> = (0..2000)
        .map(|i| {
            let (prompt, response) = copy();
            Document {
                source: format!("copy {i}"),
                body: Body::Example { prompt, response },
                always_trains: false,
            }
        })
        .collect();
    let held_out: Vec<(String, String)> = (0..24).map(|_| copy()).collect();
    let tokenizer = Tokenizer::char_level("abcdefgh=\n").unwrap();
    let mut config = Config::preset("tiny-hybrid").unwrap();
    config.model.vocab_size = tokenizer.vocab_size();
    (config.train.example_share, config.train.steps) = (0.5, 600);
    config.validate().unwrap();
    let seq = config.train.seq_len;
    let prompts: Vec<&str> = held_out.iter().map(|c| c.0.as_str()).collect();
    let references: Vec<&str> = held_out.iter().map(|c| c.1.as_str()).collect();
    let pairs = Windows::prompt_pairs(&tokenizer, (&prompts, &references), seq).unwrap();
    // Nats per response token over the five timesteps: (own prompt, another's).
    let nll = |model: &Model| {
        pairs.clone().map(|windows| {
            let origins = windows.scored_starts(seq);
            let nats =
                pollster::block_on(eval::scored_nats(gpu(), model, &windows, (seq, &origins)))
                    .unwrap();
            let scored = f64::from(windows.weight.iter().sum::<f32>());
            nats.iter().map(|n| n.1).sum::<f64>() / nats.len() as f64 / scored
        })
    };
    for padded in [false, true] {
        config.train.pad_examples = padded;
        let data = TextData::from_documents(&docs, &tokenizer, seq, 1, "copies")
            .unwrap()
            .with_example_padding(config.train.example_padding());
        let (mut trainer, data, _) =
            setup_from(&config, &TrainState::default(), data, tokenizer.clone());
        let before = nll(&trainer.model);
        for _ in 0..config.train.steps {
            trainer.step(gpu(), &data).unwrap();
        }
        let after = nll(&trainer.model);
        println!(
            "padded {padded}: nats per response token, own prompt / another's: \
             {:.3} / {:.3} untrained, {:.3} / {:.3} after {} steps",
            before[0], before[1], after[0], after[1], config.train.steps
        );
        assert!((before[1] - before[0]).abs() < 0.1, "untrained: {before:?}");
        assert!(
            after[1] - after[0] > 2.0,
            "padded {padded}: the prompt is not read: {after:?}"
        );
    }
}
