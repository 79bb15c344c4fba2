use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("diffusion");

/// Rows of `seq` positions, `cols` wide: (B, L, d) flattened.
#[derive(Clone, Copy, Debug)]
pub struct SeqShape {
    pub batch: usize,
    pub seq: usize,
    pub cols: usize,
}

impl SeqShape {
    fn check(&self, op: &'static str, coef: &Tensor, tensors: &[&Tensor]) -> Result<()> {
        if coef.len() != 4 * self.batch {
            return Err(Error::shape(
                op,
                format!(
                    "coef '{}' {:?} must be ({}, 4)",
                    coef.name(),
                    coef.shape(),
                    self.batch
                ),
            ));
        }
        self.check_each(op, tensors)
    }

    fn check_each(&self, op: &'static str, tensors: &[&Tensor]) -> Result<()> {
        let n = self.batch * self.seq * self.cols;
        if let Some(t) = tensors.iter().find(|t| t.len() != n) {
            return Err(Error::shape(
                op,
                format!("'{}' {:?} must hold {self:?}", t.name(), t.shape()),
            ));
        }
        Ok(())
    }

    fn check_mask_row(&self, op: &'static str, mask: &Tensor) -> Result<()> {
        if mask.len() != self.cols {
            return Err(Error::shape(
                op,
                format!(
                    "mask row '{}' {:?} must hold {}",
                    mask.name(),
                    mask.shape(),
                    self.cols
                ),
            ));
        }
        Ok(())
    }

    fn check_rows(&self, op: &'static str, known: &Tensor) -> Result<()> {
        if known.len() != self.batch * self.seq {
            return Err(Error::shape(
                op,
                format!(
                    "known '{}' must hold {} rows",
                    known.name(),
                    self.batch * self.seq
                ),
            ));
        }
        Ok(())
    }

    fn words(&self, accumulate: bool) -> Vec<u32> {
        params![self.batch * self.seq, self.seq, self.cols, accumulate]
    }

    fn grid(&self) -> [u32; 3] {
        grid_1d((self.batch * self.seq * self.cols).div_ceil(256))
    }
}

/// `x_t = a[b]·x0 + s[b]·eps`, coef (B, 4) = (a_t, s_t, a_t', s_t').
pub fn q_sample_forward(
    gpu: &Gpu,
    s: SeqShape,
    coef: &Tensor,
    x0: &Tensor,
    eps: &Tensor,
    x_t: &Tensor,
) -> Result<Dispatch> {
    s.check("q_sample", coef, &[x0, eps, x_t])?;
    gpu.call(&SHADER, "q_sample_forward")
        .params(s.words(false))
        .bind(1, coef)
        .bind(2, x0)
        .bind(3, eps)
        .bind(4, x_t)
        .dispatch(s.grid())
}

/// `dx0 (+)= a[b]·dx_t`.
pub fn q_sample_backward(
    gpu: &Gpu,
    s: SeqShape,
    coef: &Tensor,
    dx_t: &Tensor,
    dx0: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    s.check("q_sample backward", coef, &[dx_t, dx0])?;
    gpu.call(&SHADER, "q_sample_backward")
        .params(s.words(accumulate))
        .bind(1, coef)
        .bind(2, dx_t)
        .bind(4, dx0)
        .dispatch(s.grid())
}

/// `dx0 (+)= a[b]·dx_t` and `deps = s[b]·dx_t`: back through a blend both
/// of whose inputs are learned.
pub fn q_sample_backward_both(
    gpu: &Gpu,
    s: SeqShape,
    coef: &Tensor,
    dx_t: &Tensor,
    (dx0, accumulate): (&Tensor, bool),
    deps: &Tensor,
) -> Result<Dispatch> {
    s.check("q_sample backward_both", coef, &[dx_t, dx0, deps])?;
    gpu.call(&SHADER, "q_sample_backward_both")
        .params(s.words(accumulate))
        .bind(1, coef)
        .bind(2, dx_t)
        .bind(4, dx0)
        .bind(7, deps)
        .dispatch(s.grid())
}

/// DDIM (eta = 0): `x_{t'} = a_t'·x0_hat + s_t'·(x_t − a_t·x0_hat)/s_t`.
pub fn ddim_step(
    gpu: &Gpu,
    s: SeqShape,
    coef: &Tensor,
    x0_hat: &Tensor,
    x_t: &Tensor,
    x_next: &Tensor,
) -> Result<Dispatch> {
    s.check("ddim_step", coef, &[x0_hat, x_t, x_next])?;
    gpu.call(&SHADER, "ddim_step")
        .params(s.words(false))
        .bind(1, coef)
        .bind(2, x0_hat)
        .bind(3, x_t)
        .bind(4, x_next)
        .dispatch(s.grid())
}

/// Rows with `known[r] != 0` of `x` become `a·x0_known + s·eps`.
pub fn infill_blend(
    gpu: &Gpu,
    s: SeqShape,
    coef: &Tensor,
    x0_known: &Tensor,
    eps: &Tensor,
    known: &Tensor,
    x: &Tensor,
) -> Result<Dispatch> {
    s.check("infill_blend", coef, &[x0_known, eps, x])?;
    s.check_rows("infill_blend", known)?;
    gpu.call(&SHADER, "infill_blend")
        .params(s.words(false))
        .bind(1, coef)
        .bind(2, x0_known)
        .bind(3, eps)
        .bind(4, x)
        .bind(5, known)
        .dispatch(s.grid())
}

/// Training with known positions held clean: `x_t = known[r] ? z0 : a[b]·z0 + s[b]·eps`.
pub fn q_sample_held_forward(
    gpu: &Gpu,
    s: SeqShape,
    coef: &Tensor,
    z0: &Tensor,
    eps: &Tensor,
    known: &Tensor,
    x_t: &Tensor,
) -> Result<Dispatch> {
    s.check("q_sample_held", coef, &[z0, eps, x_t])?;
    s.check_rows("q_sample_held", known)?;
    gpu.call(&SHADER, "q_sample_held_forward")
        .params(s.words(false))
        .bind(1, coef)
        .bind(2, z0)
        .bind(3, eps)
        .bind(4, x_t)
        .bind(5, known)
        .dispatch(s.grid())
}

/// `dz0 (+)= (known[r] ? 1 : a[b])·dx_t`.
pub fn q_sample_held_backward(
    gpu: &Gpu,
    s: SeqShape,
    coef: &Tensor,
    known: &Tensor,
    dx_t: &Tensor,
    dz0: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    s.check("q_sample_held backward", coef, &[dx_t, dz0])?;
    s.check_rows("q_sample_held backward", known)?;
    gpu.call(&SHADER, "q_sample_held_backward")
        .params(s.words(accumulate))
        .bind(1, coef)
        .bind(2, dx_t)
        .bind(4, dz0)
        .bind(5, known)
        .dispatch(s.grid())
}

/// Masked diffusion's input: `x_t = known[r] ? z0 : mask` with `mask` (d) one row for every corrupted position.
pub fn mask_forward(
    gpu: &Gpu,
    s: SeqShape,
    mask: &Tensor,
    z0: &Tensor,
    known: &Tensor,
    x_t: &Tensor,
) -> Result<Dispatch> {
    s.check_rows("mask", known)?;
    s.check_mask_row("mask", mask)?;
    s.check_each("mask", &[z0, x_t])?;
    gpu.call(&SHADER, "mask_forward")
        .params(s.words(false))
        .bind(2, z0)
        .bind(3, mask)
        .bind(4, x_t)
        .bind(5, known)
        .dispatch(s.grid())
}

/// `dz0 (+)= known[r] ? dx_t : 0`;  `masked_rows = known[r] ? 0 : dx_t` (the
/// mask row's gradient is its column sums).
pub fn mask_backward(
    gpu: &Gpu,
    s: SeqShape,
    known: &Tensor,
    dx_t: &Tensor,
    (dz0, accumulate): (&Tensor, bool),
    masked_rows: &Tensor,
) -> Result<Dispatch> {
    s.check_rows("mask backward", known)?;
    s.check_each("mask backward", &[dx_t, dz0, masked_rows])?;
    gpu.call(&SHADER, "mask_backward")
        .params(s.words(accumulate))
        .bind(2, dx_t)
        .bind(4, dz0)
        .bind(5, known)
        .bind(6, masked_rows)
        .dispatch(s.grid())
}
