//! The SPEC's evaluation: validation loss at fixed timesteps, and the
//! sample-quality figures on fixed seeds.

use serde::Serialize;

use crate::Result;
use crate::config::DiffusionKind;
use crate::data::{TextData, Windows};
use crate::gpu::Gpu;
use crate::hybrid;
use crate::metrics;
use crate::model::Model;
use crate::model::graph::{Graph, GraphOptions, slot};
use crate::rng::Rng;
use crate::sample::{OnStep, SampleOptions, Sampler};
use crate::schedule::NoiseSchedule;
use crate::tokenizer::Tokenizer;

/// The fixed timesteps of the validation loss, for T = 1000 (scaled to other T).
pub const EVAL_TIMESTEPS: [usize; 5] = [50, 250, 500, 750, 950];
/// Validation windows per timestep.
pub const VAL_WINDOWS: usize = 16;
/// Seeds 0..QUALITY_SAMPLES of the quality figures.
pub const QUALITY_SAMPLES: u64 = 8;

#[derive(Clone, Debug, Serialize)]
pub struct ValLoss {
    pub t: usize,
    pub mse: f32,
    pub ce: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Quality {
    pub valid_word_rate: f64,
    pub valid_long_word_rate: f64,
    pub diversity: f64,
    pub novelty: f64,
    pub samples: Vec<String>,
    pub steps: usize,
    pub len: usize,
}

/// MSE and CE on fixed validation windows with fixed noise at each of
/// [`EVAL_TIMESTEPS`] (the same numbers every time, for a given model);
/// hybrid: the ELBO's CE term at t = k/T with a fixed corruption, MSE 0.
pub async fn validation_loss(
    gpu: &Gpu,
    model: &Model,
    data: &TextData,
    seq: usize,
) -> Result<Vec<ValLoss>> {
    windows_loss(
        gpu,
        model,
        &data.val_window_set(VAL_WINDOWS, seq),
        (seq, &[]),
    )
    .await
}

/// [`validation_loss`] of any windows of `seq` positions: their weighted
/// positions scored, their known ones held as training holds them. The
/// hybrid and masked kinds draw which positions are corrupted from each
/// row's `origins` entry on ([`hybrid::corrupt`]; empty: from 0), so two
/// window sets holding one text at different positions can corrupt it
/// alike (the noise itself is drawn per position on the GPU).
pub async fn windows_loss(
    gpu: &Gpu,
    model: &Model,
    windows: &Windows,
    (seq, origins): (usize, &[usize]),
) -> Result<Vec<ValLoss>> {
    let cfg = &model.config;
    let count = windows.tokens.len() / seq;
    let options = GraphOptions {
        batch: count,
        seq,
        train: false,
        generate_noise: true,
        dropout: false,
        half_operands: false,
    };
    let graph = Graph::new(gpu, model, options, None)?;
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    graph.write_known(gpu, &windows.known)?;
    let t_max = schedule.timesteps();
    // Self-conditioned models are evaluated as they sample: with their estimate.
    graph.write_self_condition_mask(gpu, &vec![true; count])?;
    let mut stats = vec![0.0f32; slot::COUNT];
    stats[slot::LOSS_SCALE] = 1.0;
    let mut out = Vec::new();
    for t in EVAL_TIMESTEPS {
        let t = (t * t_max).div_ceil(1000).clamp(1, t_max);
        let timesteps = vec![t as u32; count];
        match cfg.diffusion.kind {
            DiffusionKind::Gaussian => {
                graph.write_batch(gpu, &schedule, &windows.tokens, &timesteps, &windows.weight)?
            }
            DiffusionKind::Hybrid | DiffusionKind::Masked => {
                let mut rng = Rng::new(0x5EED ^ t as u64);
                let c = hybrid::corrupt(
                    &cfg.diffusion,
                    cfg.embed_dim(),
                    &timesteps,
                    (&windows.weight, &windows.known),
                    origins,
                    &mut rng,
                );
                graph.write_corruption(gpu, &windows.tokens, &c)?
            }
        }
        gpu.write_u32(&graph.inputs.rng_key, &[0x5EED, t as u32, 0])?;
        gpu.write_f32(&graph.stats, &stats)?;
        gpu.run(&graph.eval_step())?;
        let s = gpu.read_f32(&graph.stats).await?;
        out.push(ValLoss {
            t,
            mse: s[slot::MSE],
            ce: s[slot::CE],
        });
    }
    Ok(out)
}

/// The nats the CE term of [`windows_loss`] spends on `windows`' weighted
/// positions at each validation timestep, `(t, nats)`: the term is a mean
/// over every position of the windows, so its sum over several batches of
/// windows, divided by their weighted positions, is nats per scored token.
pub async fn scored_nats(
    gpu: &Gpu,
    model: &Model,
    windows: &Windows,
    (seq, origins): (usize, &[usize]),
) -> Result<Vec<(usize, f64)>> {
    let positions = windows.tokens.len() as f64;
    let losses = windows_loss(gpu, model, windows, (seq, origins)).await?;
    Ok(losses
        .iter()
        .map(|loss| (loss.t, f64::from(loss.ce) * positions))
        .collect())
}

/// Samples seeds 0..8 (each on its own, otherwise with `options`) and scores
/// them against the training text. `on_step` (if given) receives every
/// step of every sample, seed by seed, as [`Sampler::run`]'s does (its Break
/// cancels the evaluation).
pub async fn quality(
    gpu: &Gpu,
    model: &Model,
    tokenizer: &Tokenizer,
    train_text: &str,
    len: usize,
    options: &SampleOptions,
    mut on_step: OnStep<'_>,
) -> Result<Quality> {
    let sampler = Sampler::new(gpu, model, 1, len)?;
    let schedule = NoiseSchedule::new(&model.config.diffusion);
    let mut samples = Vec::new();
    for seed in 0..QUALITY_SAMPLES {
        let tokens = sampler
            .run(
                gpu,
                &schedule,
                &SampleOptions {
                    seed,
                    ..options.clone()
                },
                None,
                // Lent to each sample's run in turn.
                on_step.as_mut().map(|f| &mut **f as _),
            )
            .await?;
        samples.push(tokenizer.decode(&tokens)?);
    }
    let vocabulary = metrics::vocabulary(train_text);
    Ok(Quality {
        valid_word_rate: metrics::valid_word_rate(&samples, &vocabulary),
        valid_long_word_rate: metrics::valid_long_word_rate(&samples, &vocabulary),
        diversity: metrics::diversity(&samples),
        novelty: metrics::novelty(&samples, train_text),
        samples,
        steps: options.steps,
        len,
    })
}
