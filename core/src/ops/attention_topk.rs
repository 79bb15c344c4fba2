use super::attention::AttnShape;
use crate::gpu::{DType, Dispatch, Gpu, KernelCall, Shader, Tensor};
use crate::{Error, Result, shader_file};

pub const SHADER: Shader = shader_file!("attention_topk");
/// Largest k the register array can hold.
pub const MAX_TOPK: usize = 64;

/// One top-k head group: the saved selection (kept keys and their
/// probabilities, O(L·k)) and the backward's score gradients.
pub struct TopkAttention {
    pub shape: AttnShape,
    pub keep: usize,
    topk_capacity: usize,
    head_dim_capacity: usize,
    kept: Tensor,
    prob: Tensor,
    dscore: Tensor,
}

impl TopkAttention {
    pub fn new(gpu: &Gpu, shape: AttnShape, topk: usize, name: &str) -> Result<Self> {
        // k > 64 is refused even when the sequence is shorter, so that a
        // configuration does not start failing when the sequence grows.
        if !(1..=MAX_TOPK).contains(&topk) {
            return Err(Error::Invalid(format!(
                "top-k attention needs 1 ≤ k ≤ {MAX_TOPK}, got {topk}"
            )));
        }
        let keep = topk.min(shape.seq);
        // The register list's length: the smallest of 8, 16, 32, 64 holding k.
        let topk_capacity = [8, 16, 32, MAX_TOPK]
            .into_iter()
            .find(|&c| c >= keep)
            .expect("keep ≤ MAX_TOPK was checked above");
        let head_dim_capacity = shape.head_dim_capacity("top-k attention")?;
        let dims = [shape.batch, shape.head_count, shape.seq, keep];
        Ok(TopkAttention {
            shape,
            keep,
            topk_capacity,
            head_dim_capacity,
            kept: gpu.zeros(&format!("{name}.kept"), &dims, DType::U32)?,
            prob: gpu.zeros(&format!("{name}.prob"), &dims, DType::F32)?,
            dscore: gpu.zeros(&format!("{name}.dscore"), &dims, DType::F32)?,
        })
    }

    /// The entry with its switches, and `qkv` at both of its bindings (the
    /// second read as quads where head vectors start on quads).
    fn call<'a>(&self, gpu: &'a Gpu, entry: &'a str, qkv: &'a Tensor) -> KernelCall<'a> {
        let s = self.shape;
        let quads = s.head_dim.is_multiple_of(4) && s.d_model().is_multiple_of(4);
        gpu.call(&SHADER, entry)
            .constant("TOPK_MAX", format!("{}u", self.topk_capacity))
            .constant("HEAD_DIM_MAX", format!("{}u", self.head_dim_capacity))
            .constant("QUAD_LOADS", quads)
            .params(s.params(self.keep))
            .bind(1, qkv)
            .bind(8, qkv)
    }

    /// Writes the handled heads' columns of `out` and saves the selection.
    pub fn forward(&self, gpu: &Gpu, qkv: &Tensor, out: &Tensor) -> Result<Dispatch> {
        self.shape.check("top-k attention", qkv, out)?;
        self.call(gpu, "topk_forward", qkv)
            .bind(2, out)
            .bind(3, &self.kept)
            .bind(4, &self.prob)
            .dispatch(self.shape.grid_per_position())
    }

    /// Writes the handled heads' q, k and v columns of `dqkv`.
    pub fn backward(
        &self,
        gpu: &Gpu,
        qkv: &Tensor,
        dout: &Tensor,
        dqkv: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        self.shape.check("top-k attention backward", qkv, dout)?;
        self.shape.check("top-k attention backward", dqkv, dout)?;
        Ok(vec![
            self.call(gpu, "topk_backward_query", qkv)
                .bind(3, &self.kept)
                .bind(4, &self.prob)
                .bind(5, dout)
                .bind(9, dout)
                .bind(6, &self.dscore)
                .bind(7, dqkv)
                .dispatch(self.shape.grid_per_position())?,
            self.call(gpu, "topk_backward_key", qkv)
                .bind(3, &self.kept)
                .bind(4, &self.prob)
                .bind(5, dout)
                .bind(9, dout)
                .bind(6, &self.dscore)
                .bind(7, dqkv)
                .dispatch(self.shape.grid_per_position())?,
        ])
    }
}
