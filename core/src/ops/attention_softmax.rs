use super::attention::AttnShape;
use crate::gpu::{DType, Dispatch, Gpu, KernelCall, Shader, Tensor};
use crate::{Result, shader_file};

pub const SHADER: Shader = shader_file!("attention_softmax");

/// Which keys a query attends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// Every key.
    Full,
    /// Keys with |i − j| ≤ this.
    HalfWindow(usize),
}

/// One softmax head group (`window` or `full`): the saved log-sum-exp and
/// the backward's D_i = dout_i·out_i.
pub struct SoftmaxAttention {
    pub shape: AttnShape,
    pub span: Span,
    head_dim_capacity: usize,
    lse: Tensor,
    delta: Tensor,
}

impl SoftmaxAttention {
    pub fn new(gpu: &Gpu, shape: AttnShape, span: Span, name: &str) -> Result<Self> {
        let head_dim_capacity = shape.head_dim_capacity("softmax attention")?;
        let dims = [shape.batch, shape.head_count, shape.seq];
        Ok(SoftmaxAttention {
            shape,
            span,
            head_dim_capacity,
            lse: gpu.zeros(&format!("{name}.lse"), &dims, DType::F32)?,
            delta: gpu.zeros(&format!("{name}.delta"), &dims, DType::F32)?,
        })
    }

    fn call<'a>(&self, gpu: &'a Gpu, entry: &'a str) -> KernelCall<'a> {
        let s = self.shape;
        let half_window = match self.span {
            Span::Full => s.seq,
            Span::HalfWindow(w) => w.min(s.seq),
        };
        gpu.call(&SHADER, entry)
            .constant("HEAD_DIM_MAX", format!("{}u", self.head_dim_capacity))
            .params(s.params(half_window))
    }

    /// Writes the handled heads' columns of `out` and saves the log-sum-exp.
    pub fn forward(&self, gpu: &Gpu, qkv: &Tensor, out: &Tensor) -> Result<Dispatch> {
        self.shape.check("softmax attention", qkv, out)?;
        self.call(gpu, "softmax_forward")
            .bind(1, qkv)
            .bind(2, out)
            .bind(3, &self.lse)
            .dispatch(self.shape.grid_per_position())
    }

    /// Writes the handled heads' q, k and v columns of `dqkv`.
    pub fn backward(
        &self,
        gpu: &Gpu,
        qkv: &Tensor,
        out: &Tensor,
        dout: &Tensor,
        dqkv: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        self.shape.check("softmax attention backward", qkv, out)?;
        self.shape.check("softmax attention backward", dqkv, dout)?;
        Ok(vec![
            self.call(gpu, "softmax_backward_query")
                .bind(1, qkv)
                .bind(2, out)
                .bind(3, &self.lse)
                .bind(4, dout)
                .bind(5, &self.delta)
                .bind(6, dqkv)
                .dispatch(self.shape.grid_per_position())?,
            self.call(gpu, "softmax_backward_key")
                .bind(1, qkv)
                .bind(3, &self.lse)
                .bind(4, dout)
                .bind(5, &self.delta)
                .bind(6, dqkv)
                .dispatch(self.shape.grid_per_position())?,
        ])
    }
}
