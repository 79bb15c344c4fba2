//! The hybrid (CANDI-style) sampler's per-step kernels (shaders/reveal.wgsl):
//! the tempered distribution over the vocabulary per row, and the random
//! reveal that freezes still-noisy rows to their drawn tokens.

use super::random::{check_key, per_sequence};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("reveal");

/// `probs[r, v] = softmax(logits[r, ·] / temperature)[v]` for every row
/// (the last dimension is the vocabulary): stable (the row max is subtracted)
/// and deterministic (fixed-order reductions). `probs` has the shape of
/// `logits`; the temperature must be finite and > 0.
pub fn tempered_softmax(
    gpu: &Gpu,
    logits: &Tensor,
    temperature: f32,
    probs: &Tensor,
) -> Result<Dispatch> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::Invalid(format!(
            "tempered_softmax needs a finite temperature > 0, got {temperature}"
        )));
    }
    let shape = logits.shape();
    let vocab = shape.last().copied().unwrap_or(0);
    if vocab == 0 || logits.is_empty() || probs.shape() != shape {
        return Err(Error::shape(
            "tempered_softmax",
            format!(
                "logits '{}' {shape:?} must be non-empty (rows, vocab) and probs '{}' {:?} the same shape",
                logits.name(),
                probs.name(),
                probs.shape()
            ),
        ));
    }
    let rows = logits.len() / vocab;
    gpu.call(&SHADER, "tempered_softmax")
        .params(params![rows, vocab, 1.0 / temperature, 0u32, 0u32, 0u32])
        .bind(1, logits)
        .bind(2, probs)
        .dispatch(grid_1d(rows))
}

/// One reveal step over `rows = drawn.len()` rows in `sequences` equal
/// sequences, with `p = step[0]` (a buffer the CPU rewrites each step). A
/// still-noisy row (`revealed[r] == 0`) is revealed with probability p: when
/// the uniform in (0, 1] of the counter hash of (r counted from the key's
/// first sequence, the reveal salt, `rng_key`, `stream`) is ≤ p (in f32),
/// `revealed[r] = 1` and `frozen[r] = drawn[r]`. A row revealed before the
/// call shows its frozen token: `drawn[r] = frozen[r]`, `confidence[r] = 1`.
/// So `drawn` ends holding every row's display token; p = 1 reveals all
/// rows, p = 0 none. `confidence`, `frozen` and `revealed` (f32, 0 or 1)
/// hold one entry per row; `step` at least one.
pub fn reveal(
    gpu: &Gpu,
    (rng_key, stream): (&Tensor, u32),
    step: &Tensor,
    (drawn, sequences): (&Tensor, usize),
    confidence: &Tensor,
    frozen: &Tensor,
    revealed: &Tensor,
) -> Result<Dispatch> {
    let rows = check_rows("reveal", step, [drawn, confidence, frozen, revealed])?;
    check_key("reveal", rng_key)?;
    let seq = per_sequence("reveal", rows, sequences)?;
    gpu.call(&SHADER, "reveal")
        .params(params![rows, 0u32, 0.0f32, stream, seq, 0u32])
        .bind(3, rng_key)
        .bind(4, step)
        .bind(5, drawn)
        .bind(6, confidence)
        .bind(7, frozen)
        .bind(8, revealed)
        .dispatch(grid_1d(rows.div_ceil(256)))
}

/// Which still-noisy rows `reveal_ranked` freezes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    /// The highest `confidence` (ties: the lower row).
    Confidence,
    /// Blocks of this many rows in order, counted from each sequence's
    /// block origin, by `confidence` within a block (semi-autoregressive);
    /// blocks of 1 are left to right.
    Blocks(u32),
}

impl Rank {
    /// Rows per block, 0 for one block of the whole sequence.
    pub fn block(self) -> u32 {
        match self {
            Rank::Confidence => 0,
            Rank::Blocks(n) => n.max(1),
        }
    }
}

/// In each sequence of `seq` rows, of its H still-noisy rows the
/// k = H − round(H·(1 − step\[0\])) that rank first freeze to their `drawn`
/// tokens; rows frozen before show their token in `drawn`, with confidence 1.
/// `block_origin` (u32, one per sequence) is the row its blocks are counted
/// from ([`Rank::Blocks`]).
pub fn reveal_ranked(
    gpu: &Gpu,
    seq: usize,
    (rank, block_origin): (Rank, &Tensor),
    step: &Tensor,
    [drawn, confidence, frozen, revealed]: [&Tensor; 4],
) -> Result<Dispatch> {
    let rows = check_rows("reveal_ranked", step, [drawn, confidence, frozen, revealed])?;
    if seq == 0 || !rows.is_multiple_of(seq) {
        return Err(Error::shape(
            "reveal_ranked",
            format!("{rows} rows are not whole sequences of {seq}"),
        ));
    }
    if block_origin.len() != rows / seq {
        return Err(Error::shape(
            "reveal_ranked",
            format!(
                "block origins {:?} must be one per sequence ({})",
                block_origin.shape(),
                rows / seq
            ),
        ));
    }
    gpu.call(&SHADER, "reveal_ranked")
        .params(params![rows, 0u32, 0.0f32, 0u32, seq, rank.block()])
        .bind(4, step)
        .bind(5, drawn)
        .bind(6, confidence)
        .bind(7, frozen)
        .bind(8, revealed)
        .bind(9, block_origin)
        .dispatch(grid_1d(rows / seq))
}

/// The rows of a reveal's per-row tensors, which must agree (and a non-empty step).
fn check_rows(op: &'static str, step: &Tensor, per_row: [&Tensor; 4]) -> Result<usize> {
    let rows = per_row[0].len();
    if rows == 0 || per_row.iter().any(|t| t.len() != rows) || step.is_empty() {
        let shapes: Vec<_> = per_row.iter().map(|t| t.shape().to_vec()).collect();
        return Err(Error::shape(
            op,
            format!(
                "drawn, confidence, frozen, revealed {shapes:?} must be the same non-zero \
                 number of rows, step {:?} at least 1 element",
                step.shape()
            ),
        ));
    }
    Ok(rows)
}
