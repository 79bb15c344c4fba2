//! Hybrid sampling (CANDI-style): every position starts corrupted, z ~
//! N(0, sigma(1)²); step i goes from t = k_i/T to s = k_{i+1}/T:
//!   input   x = Ê[frozen] at frozen positions, z/sqrt(1 + sigma_t²) elsewhere
//!   draw    a token per position from softmax(logits / τ) (argmax at τ = 0)
//!   update  x̂0 = softmax(logits / τ)·Ê;  z ← x̂0 + (sigma_s/sigma_t)(z − x̂0)
//!   reveal  each unfrozen position freezes to its drawn token with
//!           probability (t − s)/t (all of them at s = 0), or (order
//!           "confident") that share of them, the most confident first
//!           (order "left": the leftmost first)
//! Known positions are frozen from the start.
//! Guidance w (above 0) runs each step's model twice: once as above, once
//! with every known position hidden (hybrid: the starting noise scaled to
//! the step's level; masked: m̂), and decodes (1 + w)·cond − w·uncond.
//! Masked (MDLM) sampling is the same without the latent: every unfrozen
//! position's input is the mask row m̂, and a step only draws and reveals.

use std::cell::OnceCell;

use super::{
    OnStep, SampleOptions, Sampler, Settled, decode, expected_embedding, first_hidden_rows,
    key_words, mask_values, report, step_key,
};
use crate::conditioning::Known;
use crate::config::{DiffusionConfig, REVEAL_BLOCK, RevealOrder};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::hybrid;
use crate::model::Model;
use crate::model::graph::Graph;
use crate::ops::diffusion::{self, SeqShape};
use crate::ops::elementwise::{axpby, mul};
use crate::ops::embedding;
use crate::ops::random::{KEY_WORDS, randn};
use crate::ops::reveal::{Rank, reveal, reveal_ranked};
use crate::ops::sampling::Draw;
use crate::{Error, Result};

/// The stream of the starting noise z (keyed by the seed).
pub const INIT_STREAM: u32 = 201;
const DECODE_STREAM: u32 = 202;
/// The stream of the random reveals (keyed by [`step_key`]).
pub const REVEAL_STREAM: u32 = 203;

/// The hybrid kind's continuous state at the noisy positions.
struct Latent {
    /// (rows, d) x̂0 + sigma·noise.
    z: Tensor,
    z_next: Tensor,
    /// (rows, V) softmax(logits / τ).
    probs: Tensor,
    /// (rows, d) probs · Ê.
    x0_soft: Tensor,
    /// (count, 4) per sequence (1 − r, r, ·, ·) with r = sigma_s / sigma_t.
    coef_update: Tensor,
}

/// The unconditional pass of guidance, allocated by the first guided run.
struct Guide {
    /// (rows) 1 where a position is not known.
    open: Tensor,
    /// (rows, V) the unconditional logits.
    logits: Tensor,
    /// hybrid: the known positions' input.
    noise: Option<GuideNoise>,
    /// Sets the unconditional input x_t (after `Steps::input`).
    input: Program,
    /// Keeps the unconditional logits.
    keep: Program,
}

/// hybrid: known positions hidden as the starting noise scaled to the
/// step's level, independent of the text (the latent z there drifts towards
/// the known tokens' embeddings). The starting noise and the hidden latent
/// live in the programs' bindings.
struct GuideNoise {
    /// (count, 4) (0, sigma_t/sigma(1), ·, ·).
    coef: Tensor,
    /// Copies the starting z.
    keep_start: Program,
}

enum Noisy {
    /// hybrid.
    Latent(Box<Latent>),
    /// masked: (1, d) m̂.
    Mask(Tensor),
}

pub(super) struct Steps {
    /// (rows) u32 this step's token per position (the frozen one where frozen).
    drawn: Tensor,
    /// (rows) its probability.
    confidence: Tensor,
    /// (rows) u32 the token a frozen position holds.
    frozen: Tensor,
    /// (rows) 1 where frozen.
    revealed: Tensor,
    /// (rows, d) Ê[frozen].
    clean: Tensor,
    /// What an unfrozen position's input comes from.
    noisy: Noisy,
    /// (4) the step's reveal probability (t − s)/t, then zeros.
    reveal_step: Tensor,
    /// (count) u32 each sequence's first hidden row, where `--order blocks`
    /// counts its blocks from.
    block_origin: Tensor,
    /// (3) the key of the step's draws.
    decode_key: Tensor,
    shape: SeqShape,
    width: usize,
    diffusion: DiffusionConfig,
    init: Program,
    /// The denoiser's input from z and the frozen tokens.
    input: Program,
    guide: OnceCell<Guide>,
}

impl Steps {
    pub fn new(gpu: &Gpu, model: &Model, graph: &Graph, count: usize, len: usize) -> Result<Steps> {
        let cfg = &model.config;
        let (rows, d, vocab) = (count * len, cfg.embed_dim(), cfg.model.vocab_size);
        let f = |name: &str, shape: &[usize]| gpu.zeros(name, shape, DType::F32);
        let mut init = graph.embed_table.clone();
        let noisy = if let Some(mask) = &graph.mask_hat {
            Noisy::Mask(mask.clone())
        } else {
            let z = f("hybrid.z", &[rows, d])?;
            let sigma_start = hybrid::sigma(&cfg.diffusion, 1.0, d) as f32;
            init.push(randn(
                gpu,
                &graph.inputs.rng_key,
                INIT_STREAM,
                sigma_start,
                (&z, count),
            )?);
            Noisy::Latent(Box::new(Latent {
                z,
                z_next: f("hybrid.z_next", &[rows, d])?,
                probs: f("hybrid.probs", &[rows, vocab])?,
                x0_soft: f("hybrid.x0_soft", &[rows, d])?,
                coef_update: f("hybrid.coef_update", &[count, 4])?,
            }))
        };
        let mut steps = Steps {
            drawn: gpu.zeros("hybrid.drawn", &[rows], DType::U32)?,
            confidence: f("hybrid.confidence", &[rows])?,
            frozen: gpu.zeros("hybrid.frozen", &[rows], DType::U32)?,
            revealed: f("hybrid.revealed", &[rows])?,
            clean: f("hybrid.clean", &[rows, d])?,
            noisy,
            reveal_step: f("hybrid.reveal_step", &[4])?,
            block_origin: gpu.zeros("hybrid.block_origin", &[count], DType::U32)?,
            decode_key: gpu.zeros("hybrid.decode_key", &[KEY_WORDS], DType::U32)?,
            shape: SeqShape {
                batch: count,
                seq: len,
                cols: d,
            },
            width: d,
            diffusion: cfg.diffusion.clone(),
            init,
            input: Program::new(),
            guide: OnceCell::new(),
        };
        steps.input = steps.record_input(gpu, graph)?;
        Ok(steps)
    }

    fn record_input(&self, gpu: &Gpu, graph: &Graph) -> Result<Program> {
        let mut p = Program::new();
        p.push(embedding::forward(
            gpu,
            &self.frozen,
            &graph.e_hat,
            1.0,
            &self.clean,
        )?);
        p.push(match &self.noisy {
            // x = clean where frozen, 0·clean + z/sqrt(1 + sigma_t²) elsewhere.
            Noisy::Latent(latent) => diffusion::q_sample_held_forward(
                gpu,
                self.shape,
                &graph.inputs.coef,
                &self.clean,
                &latent.z,
                &self.revealed,
                &graph.x_t,
            )?,
            // x = clean where frozen, m̂ elsewhere.
            Noisy::Mask(mask) => {
                let (clean, frozen) = (&self.clean, &self.revealed);
                diffusion::mask_forward(gpu, self.shape, mask, clean, frozen, &graph.x_t)?
            }
        });
        Ok(p)
    }

    fn record_guide(&self, gpu: &Gpu, graph: &Graph) -> Result<Guide> {
        let rows = self.shape.batch * self.shape.seq;
        let f = |name: &str, shape: &[usize]| gpu.zeros(name, shape, DType::F32);
        let open = f("guide.open", &[rows])?;
        // (rows) 1 where a position is frozen and not known.
        let frozen_open = f("guide.frozen_open", &[rows])?;
        let logits = f("guide.logits", graph.logits.shape())?;
        let mut input = Program::new();
        input.push(mul(gpu, 1.0, &self.revealed, &open, &frozen_open)?);
        let noise = match &self.noisy {
            Noisy::Latent(latent) => {
                let z = &latent.z;
                // (rows, d) z as drawn at the start, at sigma(1); z where open,
                // start·sigma_t/sigma(1) where known.
                let (start, hidden) = (f("guide.start", z.shape())?, f("guide.latent", z.shape())?);
                let coef = f("guide.coef", &[self.shape.batch, 4])?;
                let shape = self.shape;
                input.push(diffusion::q_sample_held_forward(
                    gpu, shape, &coef, z, &start, &open, &hidden,
                )?);
                // x = clean where frozen and open, hidden/sqrt(1 + sigma_t²) elsewhere.
                input.push(diffusion::q_sample_held_forward(
                    gpu,
                    shape,
                    &graph.inputs.coef,
                    &self.clean,
                    &hidden,
                    &frozen_open,
                    &graph.x_t,
                )?);
                let mut keep_start = Program::new();
                keep_start.push(axpby(gpu, 1.0, z, 0.0, &start)?);
                Some(GuideNoise { coef, keep_start })
            }
            Noisy::Mask(mask) => {
                let (clean, shape) = (&self.clean, self.shape);
                input.push(diffusion::mask_forward(
                    gpu,
                    shape,
                    mask,
                    clean,
                    &frozen_open,
                    &graph.x_t,
                )?);
                None
            }
        };
        let mut keep = Program::new();
        keep.push(axpby(gpu, 1.0, &graph.logits, 0.0, &logits)?);
        Ok(Guide {
            open,
            logits,
            noise,
            input,
            keep,
        })
    }

    /// What follows the denoiser, decoding by `draw` (kernel parameters, so
    /// recorded per run) the logits guided by `guide`'s at weight `guidance`.
    fn record_decode(
        &self,
        gpu: &Gpu,
        graph: &Graph,
        draw: Draw,
        order: RevealOrder,
        guide: Option<(&Guide, f32)>,
    ) -> Result<Program> {
        let mut p = Program::new();
        if let Some((guide, w)) = guide {
            p.push(axpby(gpu, -w, &guide.logits, 1.0 + w, &graph.logits)?);
        }
        let (drawn, confidence) = (&self.drawn, &self.confidence);
        p.push(decode(
            gpu,
            (&graph.logits, self.shape.batch),
            (&self.decode_key, DECODE_STREAM),
            draw,
            (drawn, confidence),
        )?);
        if let Noisy::Latent(latent) = &self.noisy {
            p.push_all(expected_embedding(
                gpu,
                (&graph.logits, &graph.e_hat),
                draw.temperature,
                &latent.probs,
                (1.0, &latent.x0_soft),
            )?);
            p.push(diffusion::q_sample_forward(
                gpu,
                self.shape,
                &latent.coef_update,
                &latent.x0_soft,
                &latent.z,
                &latent.z_next,
            )?);
            p.push(axpby(gpu, 1.0, &latent.z_next, 0.0, &latent.z)?);
        }
        let state = [drawn, confidence, &self.frozen, &self.revealed];
        let ranked = |rank| {
            let blocks = (rank, &self.block_origin);
            reveal_ranked(gpu, self.shape.seq, blocks, &self.reveal_step, state)
        };
        p.push(match order {
            RevealOrder::Random => reveal(
                gpu,
                (&self.decode_key, REVEAL_STREAM),
                &self.reveal_step,
                (drawn, self.shape.batch),
                confidence,
                &self.frozen,
                &self.revealed,
            )?,
            RevealOrder::Confident => ranked(Rank::Confidence)?,
            RevealOrder::Left => ranked(Rank::Blocks(1))?,
            RevealOrder::Blocks => ranked(Rank::Blocks(REVEAL_BLOCK))?,
        });
        Ok(p)
    }

    pub async fn run(
        &self,
        gpu: &Gpu,
        sampler: &Sampler,
        options: &SampleOptions,
        known: Option<&Known>,
        mut on_step: OnStep<'_>,
    ) -> Result<Vec<u32>> {
        if options.eta != 0.0 || options.clamp {
            return Err(Error::Invalid(format!(
                "eta and clamp apply to gaussian checkpoints; this one is diffusion.kind \"{}\"",
                self.diffusion.kind.name()
            )));
        }
        let graph = sampler.graph();
        let (count, rows) = (sampler.count, sampler.count * sampler.len);
        let diffusion = &self.diffusion;
        match known {
            Some(k) => {
                gpu.write_u32(&self.frozen, &k.tokens)?;
                gpu.write_f32(&self.revealed, &mask_values(k))?;
                gpu.write_u32(&self.block_origin, &first_hidden_rows(k, sampler.len))?;
            }
            None => {
                gpu.write_u32(&self.frozen, &vec![0; rows])?;
                gpu.write_f32(&self.revealed, &vec![0.0; rows])?;
                gpu.write_u32(&self.block_origin, &vec![0; count])?;
            }
        }
        let guide = if options.guidance > 0.0 {
            let guide = match self.guide.get() {
                Some(guide) => guide,
                None => {
                    let guide = self.record_guide(gpu, graph)?;
                    self.guide.get_or_init(|| guide)
                }
            };
            let open: Vec<f32> = match known {
                Some(k) => mask_values(k).iter().map(|m| 1.0 - m).collect(),
                None => vec![1.0; rows],
            };
            gpu.write_f32(&guide.open, &open)?;
            Some((guide, options.guidance))
        } else {
            None
        };
        let decode = self.record_decode(gpu, graph, options.draw()?, options.order, guide)?;
        let step: Vec<&Program> = match guide {
            Some((g, _)) => vec![
                &self.input,
                &g.input,
                &graph.core,
                &g.keep,
                &self.input,
                &graph.core,
                &decode,
            ],
            None => vec![&self.input, &graph.core, &decode],
        };
        let sigma_start = hybrid::sigma(diffusion, 1.0, self.width);
        let t_max = diffusion.timesteps;
        let grid = hybrid::sampling_timesteps(t_max, options.steps);
        let mut last = Vec::new();
        for (i, pair) in grid.windows(2).enumerate() {
            let (k_t, k_s) = (pair[0], pair[1]);
            let (t, s) = (k_t as f64 / t_max as f64, k_s as f64 / t_max as f64);
            gpu.write_u32(&graph.inputs.timesteps, &vec![k_t as u32; count])?;
            if let Noisy::Latent(latent) = &self.noisy {
                let (sigma_t, sigma_s) = (
                    hybrid::sigma(diffusion, t, self.width),
                    hybrid::sigma(diffusion, s, self.width),
                );
                let input = 1.0 / (1.0 + sigma_t * sigma_t).sqrt();
                let r = sigma_s / sigma_t;
                gpu.write_f32(
                    &graph.inputs.coef,
                    &[0.0, input as f32, 0.0, 0.0].repeat(count),
                )?;
                gpu.write_f32(
                    &latent.coef_update,
                    &[(1.0 - r) as f32, r as f32, 0.0, 0.0].repeat(count),
                )?;
                if let Some(noise) = guide.and_then(|(g, _)| g.noise.as_ref()) {
                    let level = (sigma_t / sigma_start) as f32;
                    gpu.write_f32(&noise.coef, &[0.0, level, 0.0, 0.0].repeat(count))?;
                }
            }
            gpu.write_f32(&self.reveal_step, &[((t - s) / t) as f32, 0.0, 0.0, 0.0])?;
            let key = step_key(options.seed, i);
            gpu.write_u32(&self.decode_key, &key_words(key, options.first_sequence))?;
            if i == 0 {
                match guide.and_then(|(g, _)| g.noise.as_ref()) {
                    Some(noise) => gpu.submit(&[&self.init, &noise.keep_start]),
                    None => gpu.submit(&[&self.init]),
                };
            }
            gpu.submit(&step);
            let outputs = (&self.drawn, &self.confidence);
            let settled = Settled {
                known,
                frozen: Some(&self.revealed),
            };
            let at = (i, k_t, k_s == 0);
            report(gpu, outputs, settled, at, &mut on_step, &mut last).await?;
        }
        Ok(last)
    }
}
