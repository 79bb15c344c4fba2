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

    fn grid_elements(&self) -> [u32; 3] {
        grid_1d((self.batch * self.seq * self.d).div_ceil(256))
    }

    fn grid_params(&self) -> [u32; 3] {
        grid_1d((self.batch * self.d).div_ceil(256))
    }
}

/// Column offsets of one modulate's shift and scale blocks.
#[derive(Clone, Copy, Debug)]
pub struct ShiftScale {
    pub shift: usize,
    pub scale: usize,
}

/// `y = x·(1 + scale[b]) + shift[b]`.
pub fn modulate_forward(
    gpu: &Gpu,
    s: ModShape,
    at: ShiftScale,
    modulation: &Tensor,
    x: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    s.check("modulate", modulation, &[x, y], &[at.shift, at.scale])?;
    gpu.call(&SHADER, "modulate_forward")
        .params(s.words(at.scale, at.shift))
        .bind(1, modulation)
        .bind(2, x)
        .bind(3, y)
        .dispatch(s.grid_elements())
}

/// `dx = dy·(1 + scale)`, and the shift/scale blocks of `dmodulation`.
#[allow(clippy::too_many_arguments)]
pub fn modulate_backward(
    gpu: &Gpu,
    s: ModShape,
    at: ShiftScale,
    modulation: &Tensor,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    dmodulation: &Tensor,
) -> Result<Vec<Dispatch>> {
    s.check(
        "modulate backward",
        modulation,
        &[x, dy, dx],
        &[at.shift, at.scale],
    )?;
    s.check("modulate backward", dmodulation, &[], &[])?;
    let words = s.words(at.scale, at.shift);
    Ok(vec![
        gpu.call(&SHADER, "modulate_backward_input")
            .params(words.clone())
            .bind(1, modulation)
            .bind(4, dy)
            .bind(5, dx)
            .dispatch(s.grid_elements())?,
        gpu.call(&SHADER, "modulate_backward_params")
            .params(words)
            .bind(2, x)
            .bind(4, dy)
            .bind(6, dmodulation)
            .dispatch(s.grid_params())?,
    ])
}

/// `h += gate[b]·y`.
pub fn gate_forward(
    gpu: &Gpu,
    s: ModShape,
    gate: usize,
    modulation: &Tensor,
    y: &Tensor,
    h: &Tensor,
) -> Result<Dispatch> {
    s.check("gate", modulation, &[y, h], &[gate])?;
    gpu.call(&SHADER, "gate_forward")
        .params(s.words(gate, 0))
        .bind(1, modulation)
        .bind(2, y)
        .bind(3, h)
        .dispatch(s.grid_elements())
}

/// `dy = dh·gate[b]`, and the gate block of `dmodulation`.
#[allow(clippy::too_many_arguments)]
pub fn gate_backward(
    gpu: &Gpu,
    s: ModShape,
    gate: usize,
    modulation: &Tensor,
    y: &Tensor,
    dh: &Tensor,
    dy: &Tensor,
    dmodulation: &Tensor,
) -> Result<Vec<Dispatch>> {
    s.check("gate backward", modulation, &[y, dh, dy], &[gate])?;
    s.check("gate backward", dmodulation, &[], &[])?;
    let words = s.words(gate, 0);
    Ok(vec![
        gpu.call(&SHADER, "gate_backward_input")
            .params(words.clone())
            .bind(1, modulation)
            .bind(4, dh)
            .bind(5, dy)
            .dispatch(s.grid_elements())?,
        gpu.call(&SHADER, "gate_backward_params")
            .params(words)
            .bind(2, y)
            .bind(4, dh)
            .bind(6, dmodulation)
            .dispatch(s.grid_params())?,
    ])
}
