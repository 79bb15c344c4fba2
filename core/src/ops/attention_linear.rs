use super::attention::AttnShape;
use crate::gpu::{DType, Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("attention_linear");
const MAX_HEAD_DIM: usize = 64;

/// Buffers of one linear-attention head group: the forward's state (kept for
/// the backward) and the backward's scratch. Allocated once per config.
pub struct LinearAttention {
    pub shape: AttnShape,
    pub eps: f32,
    state: Tensor,
    z: Tensor,
    dstate: Tensor,
    dz: Tensor,
    row_grads: Tensor,
}

impl LinearAttention {
    pub fn new(gpu: &Gpu, shape: AttnShape, eps: f32, name: &str) -> Result<Self> {
        if shape.head_dim > MAX_HEAD_DIM {
            return Err(Error::shape(
                "linear attention",
                format!("head_dim {} > {MAX_HEAD_DIM}", shape.head_dim),
            ));
        }
        let (b, h, dh, l) = (shape.batch, shape.head_count, shape.head_dim, shape.seq);
        let alloc =
            |what: &str, dims: &[usize]| gpu.zeros(&format!("{name}.{what}"), dims, DType::F32);
        Ok(LinearAttention {
            shape,
            eps,
            state: alloc("state", &[b, h, dh, dh])?,
            z: alloc("z", &[b, h, dh])?,
            dstate: alloc("dstate", &[b, h, dh, dh])?,
            dz: alloc("dz", &[b, h, dh])?,
            row_grads: alloc("row_grads", &[b, h, l, 2])?,
        })
    }

    fn words(&self) -> Vec<u32> {
        let s = self.shape;
        params![
            s.batch,
            s.seq,
            s.d_model(),
            s.head_dim,
            s.head_start,
            s.head_count,
            self.eps
        ]
    }

    fn per_element(&self) -> [u32; 3] {
        let s = self.shape;
        grid_1d((s.batch * s.seq * s.head_count * s.head_dim).div_ceil(256))
    }

    /// Writes the handled heads' columns of `out` (B·L, d).
    pub fn forward(&self, gpu: &Gpu, qkv: &Tensor, out: &Tensor) -> Result<Vec<Dispatch>> {
        let s = self.shape;
        s.check("linear attention", qkv, out)?;
        Ok(vec![
            gpu.call(&SHADER, "linear_state")
                .params(self.words())
                .bind(1, qkv)
                .bind(2, &self.state)
                .bind(3, &self.z)
                .dispatch([s.head_count as u32, s.batch as u32, 1])?,
            gpu.call(&SHADER, "linear_output")
                .params(self.words())
                .bind(1, qkv)
                .bind(4, out)
                .bind(8, &self.state)
                .bind(9, &self.z)
                .dispatch(self.per_element())?,
        ])
    }

    /// Writes the handled heads' q, k and v columns of `dqkv`, given the
    /// forward's `qkv` and `out` and the gradient `dout`.
    pub fn backward(
        &self,
        gpu: &Gpu,
        qkv: &Tensor,
        out: &Tensor,
        dout: &Tensor,
        dqkv: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let s = self.shape;
        s.check("linear attention backward", qkv, out)?;
        s.check("linear attention backward", dqkv, dout)?;
        Ok(vec![
            gpu.call(&SHADER, "linear_row_grads")
                .params(self.words())
                .bind(1, qkv)
                .bind(4, out)
                .bind(5, dout)
                .bind(6, &self.row_grads)
                .bind(9, &self.z)
                .dispatch(grid_1d((s.batch * s.head_count * s.seq).div_ceil(256)))?,
            gpu.call(&SHADER, "linear_query_grad")
                .params(self.words())
                .bind(5, dout)
                .bind(1, qkv)
                .bind(6, &self.row_grads)
                .bind(7, dqkv)
                .bind(8, &self.state)
                .bind(9, &self.z)
                .dispatch(self.per_element())?,
            gpu.call(&SHADER, "linear_state_grad")
                .params(self.words())
                .bind(1, qkv)
                .bind(2, &self.dstate)
                .bind(3, &self.dz)
                .bind(5, dout)
                .bind(6, &self.row_grads)
                .dispatch([s.head_count as u32, s.batch as u32, 1])?,
            gpu.call(&SHADER, "linear_key_value_grad")
                .params(self.words())
                .bind(1, qkv)
                .bind(2, &self.dstate)
                .bind(3, &self.dz)
                .bind(7, dqkv)
                .dispatch(self.per_element())?,
        ])
    }
}
