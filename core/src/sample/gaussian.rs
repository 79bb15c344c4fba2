//! Gaussian sampling: from x_T ~ N(0, I), `steps` denoising steps (DDIM, with
//! its eta for stochastic steps) to text, every position at once. Each step predicts
//! z0, decodes it (argmax of the logits, with its probability as a
//! confidence), optionally replaces the estimate by its token's embedding
//! (the clamping trick) or by the expected embedding under the logits
//! (`soft_x0`), and moves x_t to the next timestep. Known positions (a
//! prompt, the text around an infill) are re-noised from their true
//! embedding at every step.

use super::{
    OnStep, SampleOptions, Sampler, Settled, decode, expected_embedding, key_words, mask_values,
    report, step_key,
};
use crate::conditioning::Known;
use crate::config::KnownPositions;
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::model::Model;
use crate::model::graph::Graph;
use crate::ops::diffusion::{self, SeqShape};
use crate::ops::elementwise::{axpby, fill};
use crate::ops::embedding;
use crate::ops::random::{KEY_WORDS, randn};
use crate::ops::sampling::Draw;
use crate::schedule::NoiseSchedule;
use crate::{Error, Result};

const INIT_STREAM: u32 = 101;
const KNOWN_STREAM: u32 = 102;
const DECODE_STREAM: u32 = 103;
/// The stream of the fresh noise of stochastic steps (eta > 0), keyed by [`step_key`].
pub const STEP_NOISE_STREAM: u32 = 104;

/// The buffers and recorded steps of the gaussian sampler.
pub(super) struct Steps {
    tokens: Tensor,
    confidence: Tensor,
    known_tokens: Tensor,
    known_mask: Tensor,
    coef_next: Tensor,
    x0_hat: Tensor,
    /// (rows, V) the soft estimate's token probabilities.
    probs: Tensor,
    x_next: Tensor,
    /// (count, 4) per sequence (1, sigma, ·, ·): the fresh noise a stochastic step adds.
    coef_sigma: Tensor,
    /// (rows, d) that noise.
    step_noise: Tensor,
    /// (3) the key of the step's random draws (tokens at temperature > 0, noise at eta > 0).
    decode_key: Tensor,
    signal_scale: f32,
    self_condition: bool,
    /// Known positions are held at their clean embedding (`known_positions: clean`).
    known_clean: bool,
    init: Program,
    /// The steps that decode by argmax, recorded once; a temperature's are
    /// recorded per run (its value is a kernel parameter).
    step_plain: Program,
    step_clamped: Program,
    blend: Program,
}

/// What a recorded denoising step does besides the model.
#[derive(Clone, Copy)]
struct StepKind {
    estimate: Estimate,
    draw: Draw,
    stochastic: bool,
}

/// The z0 a step moves x_t with.
#[derive(Clone, Copy, PartialEq)]
enum Estimate {
    /// The denoiser's z0_pred.
    Raw,
    /// signal_scale · Ê[decoded token].
    Clamp,
    /// signal_scale · softmax(logits / T)·Ê.
    Soft,
}

impl Estimate {
    fn of(options: &SampleOptions) -> Estimate {
        match (options.clamp, options.soft_x0) {
            (_, true) => Estimate::Soft,
            (true, false) => Estimate::Clamp,
            (false, false) => Estimate::Raw,
        }
    }
}

impl Steps {
    pub fn new(gpu: &Gpu, model: &Model, graph: &Graph, count: usize, len: usize) -> Result<Steps> {
        let (rows, d, vocab) = (
            count * len,
            model.config.embed_dim(),
            model.config.model.vocab_size,
        );
        let f = |name: &str, shape: &[usize]| gpu.zeros(name, shape, DType::F32);
        let tokens = gpu.zeros("sample.tokens", &[rows], DType::U32)?;
        let known_tokens = gpu.zeros("sample.known_tokens", &[rows], DType::U32)?;
        let (confidence, x0_hat, x_next) = (
            f("sample.confidence", &[rows])?,
            f("sample.x0_hat", &[rows, d])?,
            f("sample.x_next", &[rows, d])?,
        );
        let (known_mask, known_z0, known_eps) = (
            f("sample.known_mask", &[rows])?,
            f("sample.known_z0", &[rows, d])?,
            f("sample.known_eps", &[rows, d])?,
        );
        let coef_next = f("sample.coef_next", &[count, 4])?;
        let coef_sigma = f("sample.coef_sigma", &[count, 4])?;
        let step_noise = f("sample.step_noise", &[rows, d])?;
        let signal_scale = model.config.diffusion.signal_scale;
        let shape = SeqShape {
            batch: count,
            seq: len,
            cols: d,
        };
        let key = &graph.inputs.rng_key;

        // Bind groups keep every buffer they use alive, so the programs own them.
        let mut init = graph.embed_table.clone();
        init.push(randn(gpu, key, INIT_STREAM, 1.0, (&graph.x_t, count))?);
        init.push(randn(gpu, key, KNOWN_STREAM, 1.0, (&known_eps, count))?);
        init.push(embedding::forward(
            gpu,
            &known_tokens,
            &graph.e_hat,
            signal_scale,
            &known_z0,
        )?);
        let self_condition = model.config.diffusion.self_condition;
        if self_condition {
            init.push(fill(gpu, &graph.sc, 0.0)?);
        }

        let mut blend = Program::new();
        blend.push(diffusion::infill_blend(
            gpu,
            shape,
            &coef_next,
            &known_z0,
            &known_eps,
            &known_mask,
            &graph.x_t,
        )?);

        let mut steps = Steps {
            tokens,
            confidence,
            known_tokens,
            known_mask,
            coef_next,
            x0_hat,
            probs: f("sample.probs", &[rows, vocab])?,
            x_next,
            coef_sigma,
            step_noise,
            decode_key: gpu.zeros("sample.decode_key", &[KEY_WORDS], DType::U32)?,
            signal_scale,
            self_condition,
            known_clean: model.config.diffusion.known_positions == KnownPositions::Clean,
            init,
            step_plain: Program::new(),
            step_clamped: Program::new(),
            blend,
        };
        let deterministic = StepKind {
            estimate: Estimate::Raw,
            draw: Draw {
                temperature: 0.0,
                top_p: 1.0,
            },
            stochastic: false,
        };
        steps.step_plain = steps.record_step(gpu, graph, deterministic)?;
        steps.step_clamped = steps.record_step(
            gpu,
            graph,
            StepKind {
                estimate: Estimate::Clamp,
                ..deterministic
            },
        )?;
        Ok(steps)
    }

    /// One denoising step: the model, decoding (argmax at temperature 0),
    /// the estimate, and the DDIM update of x_t (plus fresh noise when
    /// stochastic).
    fn record_step(&self, gpu: &Gpu, graph: &Graph, kind: StepKind) -> Result<Program> {
        let StepKind {
            estimate,
            draw,
            stochastic,
        } = kind;
        let (batch, rows, d) = (
            self.coef_next.shape()[0],
            self.tokens.len(),
            self.x_next.shape()[1],
        );
        let shape = SeqShape {
            batch,
            seq: rows / batch,
            cols: d,
        };
        let mut p = graph.core.clone();
        p.push(decode(
            gpu,
            (&graph.logits, shape.batch),
            (&self.decode_key, DECODE_STREAM),
            draw,
            (&self.tokens, &self.confidence),
        )?);
        match estimate {
            Estimate::Raw => {}
            Estimate::Clamp => p.push(embedding::forward(
                gpu,
                &self.tokens,
                &graph.e_hat,
                self.signal_scale,
                &self.x0_hat,
            )?),
            Estimate::Soft => p.push_all(expected_embedding(
                gpu,
                (&graph.logits, &graph.e_hat),
                draw.temperature,
                &self.probs,
                (self.signal_scale, &self.x0_hat),
            )?),
        }
        let estimate = if estimate == Estimate::Raw {
            &graph.z0_pred
        } else {
            &self.x0_hat
        };
        p.push(diffusion::ddim_step(
            gpu,
            shape,
            &graph.inputs.coef,
            estimate,
            &graph.x_t,
            &self.x_next,
        )?);
        if stochastic {
            p.push(randn(
                gpu,
                &self.decode_key,
                STEP_NOISE_STREAM,
                1.0,
                (&self.step_noise, shape.batch),
            )?);
            // x_t = 1·x_next + sigma·z, the noising kernel with (1, sigma).
            p.push(diffusion::q_sample_forward(
                gpu,
                shape,
                &self.coef_sigma,
                &self.x_next,
                &self.step_noise,
                &graph.x_t,
            )?);
        } else {
            p.push(axpby(gpu, 1.0, &self.x_next, 0.0, &graph.x_t)?);
        }
        if self.self_condition {
            // The next step conditions on this step's estimate.
            p.push(axpby(gpu, 1.0, estimate, 0.0, &graph.sc)?);
        }
        Ok(p)
    }

    pub async fn run(
        &self,
        gpu: &Gpu,
        sampler: &Sampler,
        schedule: &NoiseSchedule,
        options: &SampleOptions,
        known: Option<&Known>,
        mut on_step: OnStep<'_>,
    ) -> Result<Vec<u32>> {
        let (count, rows) = (sampler.count, sampler.count * sampler.len);
        let graph = sampler.graph();
        if let Some(k) = known {
            gpu.write_u32(&self.known_tokens, &k.tokens)?;
            gpu.write_f32(&self.known_mask, &mask_values(k))?;
        } else {
            gpu.write_f32(&self.known_mask, &vec![0.0; rows])?;
        }
        let timesteps = schedule.sampling_timesteps(options.steps);
        // Known positions at timestep t: noised like the rest, or (for models
        // trained with them clean, phase 4) their clean embedding throughout.
        let known_level = |t: usize| {
            if t == 0 || self.known_clean {
                (1.0, 0.0)
            } else {
                schedule.coefficients(t)
            }
        };
        // x_T, with known positions noised to T.
        let (a_t, s_t) = known_level(timesteps[0]);
        gpu.write_f32(
            &self.coef_next,
            &[a_t as f32, s_t as f32, 0.0, 0.0].repeat(count),
        )?;
        if !(0.0..=1.0).contains(&options.eta) {
            return Err(Error::Invalid(format!(
                "eta must be in [0, 1], got {}",
                options.eta
            )));
        }
        if options.guidance != 0.0 {
            return Err(Error::Invalid(
                "guidance applies to masked and hybrid checkpoints; this one is gaussian".into(),
            ));
        }
        let stochastic = options.eta > 0.0;
        let estimate = Estimate::of(options);
        let recorded;
        let step_program = if options.temperature > 0.0 || stochastic || estimate == Estimate::Soft
        {
            recorded = self.record_step(
                gpu,
                graph,
                StepKind {
                    estimate,
                    draw: options.draw()?,
                    stochastic,
                },
            )?;
            &recorded
        } else if estimate == Estimate::Clamp {
            &self.step_clamped
        } else {
            &self.step_plain
        };
        let mut last = Vec::new();
        for (i, &t) in timesteps.iter().enumerate() {
            let next = timesteps.get(i + 1).copied().unwrap_or(0);
            gpu.write_u32(&graph.inputs.timesteps, &vec![t as u32; count])?;
            let st = schedule.step(t, next, options.eta as f64);
            let coef = [st.a_t, st.s_t, st.a_next, st.eps_next].map(|c| c as f32);
            gpu.write_f32(&graph.inputs.coef, &coef.repeat(count))?;
            graph.write_readout(gpu, &vec![(st.a_t, st.s_t); count])?;
            if stochastic {
                let sigma = [1.0, st.sigma as f32, 0.0, 0.0];
                gpu.write_f32(&self.coef_sigma, &sigma.repeat(count))?;
            }
            if i == 0 {
                // Submitted on its own: the blend reads coef_next, rewritten below.
                gpu.submit(&[&self.init, &self.blend]);
            }
            let key = step_key(options.seed, i);
            gpu.write_u32(&self.decode_key, &key_words(key, options.first_sequence))?;
            // Known positions re-noised to the next timestep (clean at the end).
            let (a2, s2) = known_level(next);
            gpu.write_f32(
                &self.coef_next,
                &[a2 as f32, s2 as f32, 0.0, 0.0].repeat(count),
            )?;
            gpu.submit(&[step_program, &self.blend]);
            let outputs = (&self.tokens, &self.confidence);
            let settled = Settled {
                known,
                frozen: None,
            };
            let at = (i, t, i + 1 == timesteps.len());
            report(gpu, outputs, settled, at, &mut on_step, &mut last).await?;
        }
        Ok(last)
    }
}
