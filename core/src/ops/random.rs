use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("random");

/// Words of a random key: two of seed (and step), then the index in the
/// whole run of the first sequence a draw's tensor holds (0 in training and
/// in a sampler's first batch), which the draws count from.
pub const KEY_WORDS: usize = 3;

pub(crate) fn check_key(op: &'static str, rng_key: &Tensor) -> Result<()> {
    if rng_key.len() != KEY_WORDS {
        return Err(Error::shape(
            op,
            format!("key '{}' must hold {KEY_WORDS} words", rng_key.name()),
        ));
    }
    Ok(())
}

/// Draws per sequence of `draws` draws over `sequences` equal sequences.
pub(crate) fn per_sequence(op: &'static str, draws: usize, sequences: usize) -> Result<usize> {
    if sequences == 0 || !draws.is_multiple_of(sequences) {
        return Err(Error::shape(
            op,
            format!("{draws} draws do not split into {sequences} equal sequences"),
        ));
    }
    Ok(draws / sequences)
}

/// `out = std · N(0, 1)` over `sequences` equal sequences: element i a
/// function of (i counted from the key's first sequence, stream, rng_key).
pub fn randn(
    gpu: &Gpu,
    rng_key: &Tensor,
    stream: u32,
    std: f32,
    (out, sequences): (&Tensor, usize),
) -> Result<Dispatch> {
    check_key("randn", rng_key)?;
    let n = out.len();
    let per = per_sequence("randn", n, sequences)?;
    // Elements come in Box-Muller pairs, so a pair must not span two sequences.
    if sequences > 1 && !per.is_multiple_of(2) {
        return Err(Error::shape(
            "randn",
            format!(
                "{sequences} sequences of '{}' ({n}) are not of even length",
                out.name()
            ),
        ));
    }
    gpu.call(&SHADER, "randn")
        .params(params![n, stream, std, per.div_ceil(2)])
        .bind(1, rng_key)
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(2).div_ceil(256)))
}

fn dropout(
    gpu: &Gpu,
    entry: &'static str,
    rng_key: &Tensor,
    stream: u32,
    p: f32,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    check_key("dropout", rng_key)?;
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!(
            "dropout probability {p} outside [0, 1)"
        )));
    }
    if x.len() != out.len() {
        return Err(Error::shape(
            "dropout",
            format!(
                "'{}' {:?} vs '{}' {:?}",
                x.name(),
                x.shape(),
                out.name(),
                out.shape()
            ),
        ));
    }
    // Training's keys start at sequence 0, so the tensor is one sequence.
    let n = x.len();
    gpu.call(&SHADER, entry)
        .params(params![n, stream, p, n])
        .bind(1, rng_key)
        .bind(2, x)
        .bind(3, out)
        .dispatch(grid_1d(n.div_ceil(256)))
}

/// `out = x · keep / (1 − p)`; the mask is regenerated, not stored.
pub fn dropout_forward(
    gpu: &Gpu,
    rng_key: &Tensor,
    stream: u32,
    p: f32,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    dropout(gpu, "dropout_forward", rng_key, stream, p, x, out)
}

/// `dx = dy · keep / (1 − p)` with the forward's mask (same key and stream).
pub fn dropout_backward(
    gpu: &Gpu,
    rng_key: &Tensor,
    stream: u32,
    p: f32,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    dropout(gpu, "dropout_backward", rng_key, stream, p, dy, dx)
}
