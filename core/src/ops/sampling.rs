use super::random::{check_key, per_sequence};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("sampling");

fn check_rows(logits: &Tensor, tokens: &Tensor, confidence: &Tensor) -> Result<usize> {
    let rows = tokens.len();
    if rows == 0 || !logits.len().is_multiple_of(rows) || confidence.len() != rows {
        return Err(Error::shape(
            "sampling",
            format!(
                "logits {:?}, tokens {:?}, confidence {:?}",
                logits.shape(),
                tokens.shape(),
                confidence.shape()
            ),
        ));
    }
    Ok(rows)
}

/// How `sample_rows` draws: softmax(logits / temperature), truncated to the
/// smallest set of likeliest tokens that holds `top_p` of it (1: no truncation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    pub temperature: f32,
    pub top_p: f32,
}

impl Draw {
    /// Why this temperature and nucleus mass cannot decode, if they cannot:
    /// the option at fault ("temperature" or "top_p") and the one-line
    /// reason. Temperature 0 decodes the most likely token (no draw).
    pub fn error(self) -> Option<(&'static str, String)> {
        let Draw { temperature, top_p } = self;
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Some(("temperature", format!("must be ≥ 0, got {temperature}")));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Some(("top_p", format!("must be in (0, 1], got {top_p}")));
        }
        if top_p < 1.0 && temperature == 0.0 {
            let reason = format!(
                "{top_p} truncates drawn tokens, but temperature 0 takes the most likely one"
            );
            return Some(("top_p", reason));
        }
        None
    }
}

/// Per row: a draw from the truncated softmax(logits / temperature)
/// (Gumbel-max on the counter hash of `rng_key` and `stream`, counted from
/// the key's first sequence of the `sequences` that `logits` holds) and its
/// probability under that distribution.
pub fn sample_rows(
    gpu: &Gpu,
    (logits, sequences): (&Tensor, usize),
    (rng_key, stream): (&Tensor, u32),
    draw: Draw,
    tokens: &Tensor,
    confidence: &Tensor,
) -> Result<Dispatch> {
    let rows = check_rows(logits, tokens, confidence)?;
    let Draw { temperature, top_p } = draw;
    if draw.error().is_some() || temperature <= 0.0 {
        return Err(Error::Invalid(format!(
            "sample_rows needs a temperature > 0 (got {temperature}) and top_p in (0, 1] \
             (got {top_p})"
        )));
    }
    check_key("sample_rows", rng_key)?;
    gpu.call(&SHADER, "sample_rows")
        .params(params![
            rows,
            logits.len() / rows,
            1.0 / temperature,
            stream,
            top_p,
            per_sequence("sample_rows", logits.len(), sequences)?
        ])
        .bind(1, logits)
        .bind(2, tokens)
        .bind(3, confidence)
        .bind(4, rng_key)
        .dispatch(grid_1d(rows))
}

/// Per row: the best token (ties: lower id) and its softmax probability.
pub fn argmax_rows(
    gpu: &Gpu,
    logits: &Tensor,
    tokens: &Tensor,
    confidence: &Tensor,
) -> Result<Dispatch> {
    let rows = check_rows(logits, tokens, confidence)?;
    gpu.call(&SHADER, "argmax_rows")
        .params(params![rows, logits.len() / rows, 1.0f32, 0u32, 1.0f32])
        .bind(1, logits)
        .bind(2, tokens)
        .bind(3, confidence)
        .dispatch(grid_1d(rows))
}
