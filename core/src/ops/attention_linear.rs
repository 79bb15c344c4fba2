use super::attention::AttnShape;
use crate::gpu::{DType, Dispatch, Gpu, KernelCall, Shader, Tensor, grid_1d};
use crate::{Result, params, shader_file};

pub const SHADER: Shader = shader_file!("attention_linear");

/// Buffers of one linear-attention head group: the forward's state (kept for
/// the backward) and the backward's scratch. Allocated once per config.
pub struct LinearAttention {
    pub shape: AttnShape,
    pub eps: f32,
    head_dim_capacity: usize,
    state: Tensor,
    z: Tensor,
    dstate: Tensor,
    dz: Tensor,
    row_grads: Tensor,
}

impl LinearAttention {
    pub fn new(gpu: &Gpu, shape: AttnShape, eps: f32, name: &str) -> Result<Self> {
        let head_dim_capacity = shape.head_dim_capacity("linear attention")?;
        let (b, h, dh, l) = (shape.batch, shape.head_count, shape.head_dim, shape.seq);
        let alloc =
            |what: &str, dims: &[usize]| gpu.zeros(&format!("{name}.{what}"), dims, DType::F32);
        Ok(LinearAttention {
            shape,
            eps,
            head_dim_capacity,
            state: alloc("state", &[b, h, dh, dh])?,
            z: alloc("z", &[b, h, dh])?,
            dstate: alloc("dstate", &[b, h, dh, dh])?,
            dz: alloc("dz", &[b, h, dh])?,
            row_grads: alloc("row_grads", &[b, h, l, 2])?,
        })
    }

    fn call<'a>(&self, gpu: &'a Gpu, entry: &'a str) -> KernelCall<'a> {
        let s = self.shape;
        gpu.call(&SHADER, entry)
            .constant("HEAD_DIM_MAX", format!("{}u", self.head_dim_capacity))
            .params(params![
                s.batch,
                s.seq,
                s.d_model(),
                s.head_dim,
                s.head_start,
                s.head_count,
                self.eps
            ])
    }

    fn per_element(&self) -> [u32; 3] {
        let s = self.shape;
        grid_1d((s.batch * s.seq * s.head_count * s.head_dim).div_ceil(256))
    }

    /// The gradient kernels' workgroups: 64 positions of one (b, h) each.
    fn per_position_chunk(&self) -> [u32; 3] {
        let s = self.shape;
        [
            s.seq.div_ceil(64) as u32,
            s.head_count as u32,
            s.batch as u32,
        ]
    }

    /// Writes the handled heads' columns of `out` (B·L, d).
    pub fn forward(&self, gpu: &Gpu, qkv: &Tensor, out: &Tensor) -> Result<Vec<Dispatch>> {
        let s = self.shape;
        s.check("linear attention", qkv, out)?;
        Ok(vec![
            self.call(gpu, "linear_state")
                .bind(1, qkv)
                .bind(2, &self.state)
                .bind(3, &self.z)
                .dispatch([s.head_count as u32, s.batch as u32, 1])?,
            self.call(gpu, "linear_output")
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
            self.call(gpu, "linear_row_grads")
                .bind(1, qkv)
                .bind(4, out)
                .bind(5, dout)
                .bind(6, &self.row_grads)
                .bind(9, &self.z)
                .dispatch(grid_1d((s.batch * s.head_count * s.seq).div_ceil(256)))?,
            self.call(gpu, "linear_query_grad")
                .bind(5, dout)
                .bind(1, qkv)
                .bind(6, &self.row_grads)
                .bind(7, dqkv)
                .bind(8, &self.state)
                .bind(9, &self.z)
                .dispatch(self.per_position_chunk())?,
            self.call(gpu, "linear_state_grad")
                .bind(1, qkv)
                .bind(2, &self.dstate)
                .bind(3, &self.dz)
                .bind(5, dout)
                .bind(6, &self.row_grads)
                .dispatch([s.head_count as u32, s.batch as u32, 1])?,
            self.call(gpu, "linear_key_value_grad")
                .bind(1, qkv)
                .bind(2, &self.dstate)
                .bind(3, &self.dz)
                .bind(7, dqkv)
                .dispatch(self.per_position_chunk())?,
        ])
    }
}
