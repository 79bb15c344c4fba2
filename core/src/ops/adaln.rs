use crate::config::NormKind;
use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("adaln");

/// Activations (batch·seq, d) modulated by a (batch, stride) tensor.
#[derive(Clone, Copy, Debug)]
pub struct ModShape {
    pub batch: usize,
    pub seq: usize,
    pub d: usize,
    pub stride: usize,
}

impl ModShape {
    fn check(
        &self,
        op: &'static str,
        modulation: &Tensor,
        acts: &[&Tensor],
        offsets: &[usize],
    ) -> Result<()> {
        if modulation.len() != self.batch * self.stride {
            return Err(Error::shape(
                op,
                format!(
                    "modulation '{}' {:?} for {self:?}",
                    modulation.name(),
                    modulation.shape()
                ),
            ));
        }
        if let Some(t) = acts
            .iter()
            .find(|t| t.len() != self.batch * self.seq * self.d)
        {
            return Err(Error::shape(
                op,
                format!("'{}' {:?} for {self:?}", t.name(), t.shape()),
            ));
        }
        if let Some(o) = offsets.iter().find(|&&o| o + self.d > self.stride) {
            return Err(Error::shape(
                op,
                format!(
                    "column block at {o} (width {}) outside stride {}",
                    self.d, self.stride
                ),
            ));
        }
        Ok(())
    }

    /// The uniform words common to every entry; the rest are the caller's.
    fn words(&self, offset_a: usize, offset_b: usize) -> Vec<u32> {
        params![
            self.batch * self.seq,
            self.seq,
            self.d,
            self.stride,
            offset_a,
            offset_b
        ]
    }

    fn grid_rows(&self) -> [u32; 3] {
        grid_1d(self.batch * self.seq)
    }

    fn grid_elements(&self) -> [u32; 3] {
        grid_1d((self.batch * self.seq * self.d).div_ceil(256))
    }

    /// Per-sequence column sums: a workgroup per 32 columns of one sequence.
    fn grid_sequence_sums(&self) -> [u32; 3] {
        [self.d.div_ceil(32) as u32, self.batch as u32, 1]
    }
}

/// Column offsets of one modulate's shift and scale blocks.
#[derive(Clone, Copy, Debug)]
pub struct ShiftScale {
    pub shift: usize,
    pub scale: usize,
}

/// A normalisation followed by its modulation: `out = norm(h)·(1 + scale) + shift`.
#[derive(Clone, Copy, Debug)]
pub struct ModulatedNorm {
    pub shape: ModShape,
    pub kind: NormKind,
    pub eps: f32,
    pub at: ShiftScale,
}

impl ModulatedNorm {
    fn words(&self, accumulate: bool) -> Vec<u32> {
        let mut words = self.shape.words(self.at.scale, self.at.shift);
        words.extend(params![
            self.eps,
            self.kind == NormKind::Layer,
            accumulate,
            false
        ]);
        words
    }

    fn check(
        &self,
        op: &'static str,
        modulation: &Tensor,
        acts: &[&Tensor],
        stats: &Tensor,
    ) -> Result<()> {
        let s = self.shape;
        s.check(op, modulation, acts, &[self.at.shift, self.at.scale])?;
        if stats.len() != 2 * s.batch * s.seq {
            return Err(Error::shape(
                op,
                format!(
                    "statistics '{}' {:?} for {s:?}: want (rows, 2)",
                    stats.name(),
                    stats.shape()
                ),
            ));
        }
        Ok(())
    }

    /// `out` from h; saves each row's (μ, rstd) in `stats` (B·L, 2).
    pub fn forward(
        &self,
        gpu: &Gpu,
        modulation: &Tensor,
        h: &Tensor,
        out: &Tensor,
        stats: &Tensor,
    ) -> Result<Dispatch> {
        self.check("modulated norm", modulation, &[h, out], stats)?;
        gpu.call(&SHADER, "norm_modulate_forward")
            .params(self.words(false))
            .bind(1, modulation)
            .bind(2, h)
            .bind(5, out)
            .bind(6, stats)
            .dispatch(self.shape.grid_rows())
    }

    /// From d out: d h (added to `dh` when `accumulate`, else written) and the
    /// shift and scale blocks of `dmodulation` (written).
    pub fn backward(
        &self,
        gpu: &Gpu,
        (modulation, dmodulation): (&Tensor, &Tensor),
        (h, stats): (&Tensor, &Tensor),
        dout: &Tensor,
        dh: &Tensor,
        accumulate: bool,
    ) -> Result<Vec<Dispatch>> {
        self.check("modulated norm backward", modulation, &[h, dout, dh], stats)?;
        self.shape
            .check("modulated norm backward", dmodulation, &[], &[])?;
        Ok(vec![
            gpu.call(&SHADER, "norm_modulate_backward_input")
                .params(self.words(accumulate))
                .bind(1, modulation)
                .bind(2, h)
                .bind(7, stats)
                .bind(8, dout)
                .bind(9, dh)
                .dispatch(self.shape.grid_rows())?,
            gpu.call(&SHADER, "modulate_backward_params")
                .params(self.words(false))
                .bind(2, h)
                .bind(7, stats)
                .bind(8, dout)
                .bind(10, dmodulation)
                .dispatch(self.shape.grid_sequence_sums())?,
        ])
    }
}

/// The end of a residual branch: `h_out = h_in + gate[b]·(y + bias)`, the
/// gate a column block of the modulation, the bias the branch's output
/// layer's (None when y already holds it).
#[derive(Clone, Copy, Debug)]
pub struct Gate {
    pub shape: ModShape,
    pub offset: usize,
}

impl Gate {
    fn words(&self, bias: Option<&Tensor>) -> Vec<u32> {
        let mut words = self.shape.words(self.offset, 0);
        words.extend(params![0.0f32, false, false, bias.is_some()]);
        words
    }

    /// The kernels read `bias` only when there is one; without, the
    /// modulation (read-only, at least d long) fills the binding.
    fn bias_or<'a>(
        &self,
        op: &'static str,
        bias: Option<&'a Tensor>,
        stand_in: &'a Tensor,
    ) -> Result<&'a Tensor> {
        match bias {
            Some(b) if b.len() != self.shape.d => Err(Error::shape(
                op,
                format!("bias '{}' {:?} for d {}", b.name(), b.shape(), self.shape.d),
            )),
            Some(b) => Ok(b),
            None => Ok(stand_in),
        }
    }

    pub fn forward(
        &self,
        gpu: &Gpu,
        modulation: &Tensor,
        (y, bias): (&Tensor, Option<&Tensor>),
        (h_in, h_out): (&Tensor, &Tensor),
    ) -> Result<Dispatch> {
        self.shape
            .check("gate", modulation, &[y, h_in, h_out], &[self.offset])?;
        gpu.call(&SHADER, "gate_forward")
            .params(self.words(bias))
            .bind(1, modulation)
            .bind(2, y)
            .bind(3, self.bias_or("gate", bias, modulation)?)
            .bind(4, h_in)
            .bind(5, h_out)
            .dispatch(self.shape.grid_elements())
    }

    /// `dy = dh·gate[b]` (written), and the gate block of `dmodulation`
    /// (written).
    pub fn backward(
        &self,
        gpu: &Gpu,
        (modulation, dmodulation): (&Tensor, &Tensor),
        (y, bias): (&Tensor, Option<&Tensor>),
        dh: &Tensor,
        dy: &Tensor,
    ) -> Result<Dispatch> {
        let op = "gate backward";
        self.shape
            .check(op, modulation, &[y, dh, dy], &[self.offset])?;
        self.shape.check(op, dmodulation, &[], &[])?;
        gpu.call(&SHADER, "gate_backward")
            .params(self.words(bias))
            .bind(1, modulation)
            .bind(2, y)
            .bind(3, self.bias_or(op, bias, modulation)?)
            .bind(8, dh)
            .bind(9, dy)
            .bind(10, dmodulation)
            .dispatch(self.shape.grid_sequence_sums())
    }
}
