//! Sampling: every position of `count` sequences denoised at once over
//! `steps` steps, by the checkpoint's `diffusion.kind`: `gaussian` (DDIM
//! from pure noise, optionally clamped) or `hybrid` (noisy positions
//! frozen to drawn tokens one by one). Known positions (a prompt, the text
//! around an infill) keep their tokens.

mod gaussian;
mod hybrid;

use std::ops::ControlFlow;

use crate::conditioning::Known;
use crate::config::{DiffusionConfig, DiffusionKind, RevealOrder};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::model::Model;
use crate::model::graph::{Graph, GraphOptions};
use crate::ops::matmul::{Matmul, matmul};
use crate::ops::random::KEY_WORDS;
use crate::ops::reveal::tempered_softmax;
use crate::ops::sampling::{Draw, argmax_rows, sample_rows};
use crate::schedule::NoiseSchedule;
use crate::{Error, Result};

pub use gaussian::STEP_NOISE_STREAM;
pub use hybrid::{INIT_STREAM as HYBRID_INIT_STREAM, REVEAL_STREAM as HYBRID_REVEAL_STREAM};

/// The key of step `i`'s random draws (decoded tokens, fresh noise, reveals).
pub fn step_key(seed: u64, i: usize) -> [u32; 2] {
    [
        seed as u32 ^ (i as u32).wrapping_mul(0x9e37_79b9),
        (seed >> 32) as u32,
    ]
}

/// A key as the kernels read it: its two words, then the index in the run
/// of the batch's first sequence, which every draw counts from.
fn key_words([a, b]: [u32; 2], first_sequence: u32) -> [u32; KEY_WORDS] {
    [a, b, first_sequence]
}

#[derive(Clone, Debug)]
pub struct SampleOptions {
    pub steps: usize,
    pub seed: u64,
    /// The index of this batch's first sequence in a run sampled in several
    /// batches (0 for the first): a sequence's random draws depend on the
    /// seed and its index in the run, not on how the run is cut into batches.
    pub first_sequence: u32,
    /// gaussian only: snap each step's estimate to its token's embedding.
    pub clamp: bool,
    /// gaussian only: each step's estimate is the expected embedding under
    /// softmax(logits / T) (T = 1 at temperature 0); takes precedence over `clamp`.
    pub soft_x0: bool,
    /// 0: each step decodes the most likely token; above 0, a draw from
    /// softmax(logits / temperature).
    pub temperature: f32,
    /// Draws (temperature > 0) come from the smallest set of likeliest
    /// tokens holding this much probability; 1 keeps every token.
    pub top_p: f32,
    /// gaussian only. 0: deterministic DDIM steps; up to 1 (DDPM-like),
    /// fresh noise in each.
    pub eta: f32,
    /// masked and hybrid: which positions each step freezes.
    pub order: RevealOrder,
    /// masked and hybrid: classifier-free guidance w. Above 0, each step
    /// also runs the model with every known position hidden (noise at the
    /// step's level, or the mask) and decodes (1 + w)·logits − w·those
    /// logits, pushing the text towards what the known text makes likelier
    /// (LLaDA's unsupervised guidance); 0 runs one pass.
    pub guidance: f32,
}

impl SampleOptions {
    /// The checkpoint's defaults, seed 0.
    pub fn from_config(diffusion: &DiffusionConfig) -> SampleOptions {
        SampleOptions {
            steps: diffusion.sample_steps,
            seed: 0,
            first_sequence: 0,
            clamp: diffusion.clamp,
            soft_x0: diffusion.soft_x0,
            temperature: diffusion.temperature,
            top_p: 1.0,
            eta: diffusion.eta,
            order: diffusion.reveal_order,
            guidance: 0.0,
        }
    }

    /// How each step decodes, checked: a temperature ≥ 0 and a nucleus
    /// mass in (0, 1] that only a draw (temperature > 0) can truncate.
    fn draw(&self) -> Result<Draw> {
        let draw = Draw {
            temperature: self.temperature,
            top_p: self.top_p,
        };
        if let Some((option, reason)) = draw.error() {
            return Err(Error::Invalid(format!("{option} {reason}")));
        }
        Ok(draw)
    }
}

/// Sampler options a caller set (the CLI's flags, the browser's request);
/// each one left out takes the checkpoint's value (top_p: 1, seed: 0).
#[derive(Clone, Debug, Default)]
pub struct SampleOverrides {
    pub steps: Option<usize>,
    pub seed: Option<u64>,
    pub clamp: Option<bool>,
    pub soft_x0: Option<bool>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub eta: Option<f32>,
    pub order: Option<RevealOrder>,
    pub guidance: Option<f32>,
}

/// A sampler option that cannot be used: its name (as the field of
/// [`SampleOverrides`]) and the one-line reason, for the caller to phrase
/// as its own flag or key.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionError {
    pub option: &'static str,
    pub reason: String,
}

impl SampleOverrides {
    /// The checkpoint's options with these applied, checked: steps within the
    /// schedule, a temperature and nucleus mass that can decode, eta in
    /// [0, 1], a guidance of at least 0, and no option that the checkpoint's
    /// kind does not take ("eta" and "clamp" are gaussian's, "order" and
    /// "guidance" masked and hybrid's).
    pub fn resolve(
        &self,
        diffusion: &DiffusionConfig,
    ) -> std::result::Result<SampleOptions, OptionError> {
        let bad = |option, reason| Err(OptionError { option, reason });
        let defaults = SampleOptions::from_config(diffusion);
        // One estimate of x0: one the caller turns on replaces the config's other.
        let (clamp, soft_x0) = match (self.clamp, self.soft_x0) {
            (Some(true), Some(true)) => {
                let reason = "and clamp are two estimates of x0: turn one off".to_string();
                return bad("soft_x0", reason);
            }
            (Some(true), soft) => (true, soft.unwrap_or(false)),
            (clamp, Some(true)) => (clamp.unwrap_or(false), true),
            (clamp, soft) => (
                clamp.unwrap_or(defaults.clamp),
                soft.unwrap_or(defaults.soft_x0),
            ),
        };
        let options = SampleOptions {
            steps: self.steps.unwrap_or(defaults.steps),
            seed: self.seed.unwrap_or(defaults.seed),
            first_sequence: defaults.first_sequence,
            clamp,
            soft_x0,
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            eta: self.eta.unwrap_or(defaults.eta),
            order: self.order.unwrap_or(defaults.order),
            guidance: self.guidance.unwrap_or(defaults.guidance),
        };
        let steps = options.steps;
        if steps == 0 || steps > diffusion.timesteps {
            let reason = format!("must be in 1..={}, got {steps}", diffusion.timesteps);
            return bad("steps", reason);
        }
        let draw = Draw {
            temperature: options.temperature,
            top_p: options.top_p,
        };
        if let Some((option, reason)) = draw.error() {
            return bad(option, reason);
        }
        if !(0.0..=1.0).contains(&options.eta) {
            return bad("eta", format!("must be in [0, 1], got {}", options.eta));
        }
        if !(options.guidance >= 0.0 && options.guidance.is_finite()) {
            let reason = format!("must be a number ≥ 0, got {}", options.guidance);
            return bad("guidance", reason);
        }
        let gaussian = diffusion.kind == DiffusionKind::Gaussian;
        let misplaced = [
            ("eta", self.eta.is_some() && !gaussian),
            ("clamp", self.clamp.is_some() && !gaussian),
            ("soft_x0", self.soft_x0.is_some() && !gaussian),
            ("order", self.order.is_some() && gaussian),
            ("guidance", self.guidance.is_some() && gaussian),
        ];
        if let Some((option, _)) = misplaced.into_iter().find(|(_, given)| *given) {
            let reason = format!(
                "does not apply to this checkpoint (diffusion.kind \"{}\")",
                diffusion.kind.name()
            );
            return bad(option, reason);
        }
        Ok(options)
    }
}

/// The decoded state after one denoising step.
#[derive(Clone, Debug)]
pub struct StepOutput {
    pub step: usize,
    pub timestep: usize,
    /// (count·len) the token each position shows: the best or drawn one
    /// (gaussian, hybrid's noisy positions), the one it is frozen to, or at
    /// a known position its known token.
    pub tokens: Vec<u32>,
    /// (count·len) its probability (1 once frozen, and at known positions).
    pub confidence: Vec<f32>,
    /// (count·len) positions whose token is settled: the known ones, and
    /// (masked, hybrid) those frozen so far.
    pub frozen: Vec<bool>,
}

/// What a step callback gets and may stop.
pub type OnStep<'a> = Option<&'a mut dyn FnMut(StepOutput) -> ControlFlow<()>>;

enum Steps {
    Gaussian(Box<gaussian::Steps>),
    Hybrid(Box<hybrid::Steps>),
}

/// Buffers and recorded work for sampling `count` sequences of `len`.
pub struct Sampler {
    pub count: usize,
    pub len: usize,
    graph: Graph,
    steps: Steps,
}

impl Sampler {
    pub fn new(gpu: &Gpu, model: &Model, count: usize, len: usize) -> Result<Sampler> {
        if count == 0 || len == 0 {
            return Err(Error::Invalid(
                "sampling needs at least one sequence of at least one position".into(),
            ));
        }
        let options = GraphOptions {
            batch: count,
            seq: len,
            train: false,
            generate_noise: false,
            dropout: false,
            half_operands: false,
        };
        let graph = Graph::new(gpu, model, options, None)?;
        let steps = match model.config.diffusion.kind {
            DiffusionKind::Gaussian => Steps::Gaussian(Box::new(gaussian::Steps::new(
                gpu, model, &graph, count, len,
            )?)),
            DiffusionKind::Hybrid | DiffusionKind::Masked => Steps::Hybrid(Box::new(
                hybrid::Steps::new(gpu, model, &graph, count, len)?,
            )),
        };
        Ok(Sampler {
            count,
            len,
            graph,
            steps,
        })
    }

    /// The model graph it samples through (x_t is the denoiser's input).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Samples; `on_step` (if given) receives every step's decoded state and
    /// may stop the run (which then ends in [`Error::Cancelled`]). Returns
    /// the final tokens (count·len); known positions keep their tokens.
    pub async fn run(
        &self,
        gpu: &Gpu,
        schedule: &NoiseSchedule,
        options: &SampleOptions,
        known: Option<&Known>,
        on_step: OnStep<'_>,
    ) -> Result<Vec<u32>> {
        let rows = self.count * self.len;
        if let Some(k) = known
            && (k.tokens.len() != rows || k.mask.len() != rows)
        {
            return Err(Error::Invalid(format!(
                "known positions must cover {rows} positions, got {}",
                k.tokens.len()
            )));
        }
        options.draw()?;
        let seed = [options.seed as u32, (options.seed >> 32) as u32];
        gpu.write_u32(
            &self.graph.inputs.rng_key,
            &key_words(seed, options.first_sequence),
        )?;
        let mut last = match &self.steps {
            Steps::Gaussian(s) => s.run(gpu, self, schedule, options, known, on_step).await?,
            Steps::Hybrid(s) => s.run(gpu, self, options, known, on_step).await?,
        };
        gpu.take_error()?;
        if let Some(k) = known {
            for (r, tok) in last.iter_mut().enumerate() {
                if k.mask[r] {
                    *tok = k.tokens[r];
                }
            }
        }
        Ok(last)
    }
}

/// Decodes every row of `logits`: a draw keyed by `key` and `stream` (its
/// probability as confidence), or at temperature 0 the most likely token.
fn decode(
    gpu: &Gpu,
    (logits, sequences): (&Tensor, usize),
    key: (&Tensor, u32),
    draw: Draw,
    (tokens, confidence): (&Tensor, &Tensor),
) -> Result<Dispatch> {
    if draw.temperature > 0.0 {
        sample_rows(gpu, (logits, sequences), key, draw, tokens, confidence)
    } else {
        argmax_rows(gpu, logits, tokens, confidence)
    }
}

/// The known mask as the kernels read it: 1 where known, else 0.
/// `out = scale · softmax(logits / T)·Ê`, the expected embedding under the
/// decoded distribution (T = 1 where decoding takes the argmax); `probs`
/// (rows, V) is scratch.
fn expected_embedding(
    gpu: &Gpu,
    (logits, e_hat): (&Tensor, &Tensor),
    temperature: f32,
    probs: &Tensor,
    (scale, out): (f32, &Tensor),
) -> Result<Vec<Dispatch>> {
    let soft_temperature = if temperature > 0.0 { temperature } else { 1.0 };
    let (rows, vocab) = (probs.shape()[0], probs.shape()[1]);
    let mm = Matmul::new(rows, e_hat.shape()[1], vocab).alpha(scale);
    Ok(vec![
        tempered_softmax(gpu, logits, soft_temperature, probs)?,
        matmul(gpu, probs, e_hat, out, mm)?,
    ])
}

fn mask_values(known: &Known) -> Vec<f32> {
    known
        .mask
        .iter()
        .map(|&m| if m { 1.0 } else { 0.0 })
        .collect()
}

/// Each sequence's first hidden row (0 where every row is known), for
/// sequences of `len` rows.
fn first_hidden_rows(known: &Known, len: usize) -> Vec<u32> {
    known
        .mask
        .chunks(len)
        .map(|rows| rows.iter().position(|&k| !k).unwrap_or(0) as u32)
        .collect()
}

/// Which positions a step report shows as settled.
struct Settled<'a> {
    /// Shown with their known tokens at every step: the sampler's own
    /// decoding of them is the model's guess, not the caller's text.
    known: Option<&'a Known>,
    /// (hybrid) 1 where a position is frozen so far.
    frozen: Option<&'a Tensor>,
}

/// Reads a step's tokens when the caller watches or the run ends; hands them
/// to `on_step`, whose Break cancels the run.
async fn report(
    gpu: &Gpu,
    (tokens, confidence): (&Tensor, &Tensor),
    settled: Settled<'_>,
    (step, timestep, final_step): (usize, usize, bool),
    on_step: &mut OnStep<'_>,
    last: &mut Vec<u32>,
) -> Result<()> {
    if on_step.is_none() && !final_step {
        return Ok(());
    }
    let read = gpu.read_u32(tokens).await?;
    if let Some(cb) = on_step.as_mut() {
        let mut shown = read.clone();
        let mut confidence = gpu.read_f32(confidence).await?;
        let mut frozen = match settled.frozen {
            Some(t) => gpu.read_f32(t).await?.iter().map(|&v| v > 0.5).collect(),
            None => vec![false; shown.len()],
        };
        if let Some(k) = settled.known {
            for (r, _) in k.mask.iter().enumerate().filter(|(_, m)| **m) {
                (shown[r], confidence[r], frozen[r]) = (k.tokens[r], 1.0, true);
            }
        }
        let flow = cb(StepOutput {
            step,
            timestep,
            tokens: shown,
            confidence,
            frozen,
        });
        if flow.is_break() {
            return Err(Error::Cancelled);
        }
    }
    *last = read;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{OptionError, SampleOverrides, first_hidden_rows};
    use crate::conditioning::Known;
    use crate::config::{Config, DiffusionKind, RevealOrder};

    #[test]
    fn blocks_start_at_each_sequences_first_hidden_row() {
        let rows = |mask: &[u8]| Known {
            tokens: vec![0; mask.len()],
            mask: mask.iter().map(|&m| m == 1).collect(),
        };
        // A prompt of 3 then a hole; nothing known; a hole between known
        // text; everything known.
        let known = rows(&[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
        assert_eq!(first_hidden_rows(&known, 5), [3, 0, 2, 0]);
    }

    fn error(overrides: SampleOverrides, kind: DiffusionKind) -> OptionError {
        let mut diffusion = Config::preset("tiny").unwrap().diffusion;
        diffusion.kind = kind;
        overrides.resolve(&diffusion).unwrap_err()
    }

    #[test]
    fn options_left_out_take_the_checkpoints() {
        let diffusion = Config::preset("tiny").unwrap().diffusion;
        let options = SampleOverrides::default().resolve(&diffusion).unwrap();
        assert_eq!(options.steps, diffusion.sample_steps);
        assert_eq!((options.seed, options.top_p), (0, 1.0));
        assert_eq!(options.temperature, diffusion.temperature);
        let options = SampleOverrides {
            steps: Some(3),
            seed: Some(9),
            temperature: Some(0.5),
            top_p: Some(0.9),
            ..Default::default()
        }
        .resolve(&diffusion)
        .unwrap();
        assert_eq!((options.steps, options.seed), (3, 9));
        assert_eq!((options.temperature, options.top_p), (0.5, 0.9));
    }

    /// The estimate a caller turns on replaces the checkpoint's other one.
    #[test]
    fn one_estimate_of_x0_at_a_time() {
        let mut diffusion = Config::preset("tiny").unwrap().diffusion;
        let resolve = |clamp, soft_x0, d: &crate::config::DiffusionConfig| {
            let o = SampleOverrides {
                clamp,
                soft_x0,
                ..Default::default()
            };
            let o = o.resolve(d).unwrap();
            (o.clamp, o.soft_x0)
        };
        diffusion.clamp = true;
        assert_eq!(resolve(None, None, &diffusion), (true, false));
        assert_eq!(resolve(None, Some(true), &diffusion), (false, true));
        (diffusion.clamp, diffusion.soft_x0) = (false, true);
        assert_eq!(resolve(None, None, &diffusion), (false, true));
        assert_eq!(resolve(Some(true), None, &diffusion), (true, false));
        assert_eq!(resolve(None, Some(false), &diffusion), (false, false));
    }

    #[test]
    fn each_bad_option_is_named() {
        let gaussian = DiffusionKind::Gaussian;
        let cases = [
            (
                SampleOverrides {
                    steps: Some(0),
                    ..Default::default()
                },
                gaussian,
                "steps",
                "must be in 1..=",
            ),
            (
                SampleOverrides {
                    temperature: Some(-1.0),
                    ..Default::default()
                },
                gaussian,
                "temperature",
                "≥ 0",
            ),
            (
                SampleOverrides {
                    top_p: Some(0.5),
                    temperature: Some(0.0),
                    ..Default::default()
                },
                gaussian,
                "top_p",
                "temperature 0",
            ),
            (
                SampleOverrides {
                    eta: Some(1.5),
                    ..Default::default()
                },
                gaussian,
                "eta",
                "[0, 1], got 1.5",
            ),
            (
                SampleOverrides {
                    eta: Some(0.5),
                    ..Default::default()
                },
                DiffusionKind::Hybrid,
                "eta",
                "\"hybrid\"",
            ),
            (
                SampleOverrides {
                    clamp: Some(false),
                    ..Default::default()
                },
                DiffusionKind::Masked,
                "clamp",
                "\"masked\"",
            ),
            (
                SampleOverrides {
                    order: Some(RevealOrder::Random),
                    ..Default::default()
                },
                gaussian,
                "order",
                "\"gaussian\"",
            ),
            (
                SampleOverrides {
                    soft_x0: Some(true),
                    ..Default::default()
                },
                DiffusionKind::Hybrid,
                "soft_x0",
                "\"hybrid\"",
            ),
            (
                SampleOverrides {
                    soft_x0: Some(true),
                    clamp: Some(true),
                    ..Default::default()
                },
                gaussian,
                "soft_x0",
                "turn one off",
            ),
            (
                SampleOverrides {
                    guidance: Some(-0.5),
                    ..Default::default()
                },
                DiffusionKind::Hybrid,
                "guidance",
                "≥ 0, got -0.5",
            ),
            (
                SampleOverrides {
                    guidance: Some(1.0),
                    ..Default::default()
                },
                gaussian,
                "guidance",
                "\"gaussian\"",
            ),
        ];
        for (overrides, kind, option, reason) in cases {
            let e = error(overrides, kind);
            assert_eq!(e.option, option, "{e:?}");
            assert!(e.reason.contains(reason), "{e:?}");
        }
    }
}
