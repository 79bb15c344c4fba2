use super::attention::AttnShape;
use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::reference::rope::angle_table;
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("rope");

/// cos and sin of every (position, frequency) pair, (max_seq, head_dim/2)
/// each, computed in f64 and uploaded once.
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
    pub max_seq: usize,
    pub head_dim: usize,
}

impl RopeTables {
    pub fn new(gpu: &Gpu, max_seq: usize, head_dim: usize, base: f64) -> Result<Self> {
        if !head_dim.is_multiple_of(2) || head_dim == 0 {
            return Err(Error::Invalid(format!(
                "RoPE needs an even head dimension, got {head_dim}"
            )));
        }
        let (cos, sin) = angle_table(max_seq, head_dim, base);
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        Ok(RopeTables {
            cos: gpu.upload_f32("rope.cos", &[max_seq, head_dim / 2], &to32(cos))?,
            sin: gpu.upload_f32("rope.sin", &[max_seq, head_dim / 2], &to32(sin))?,
            max_seq,
            head_dim,
        })
    }
}

fn rotate(
    gpu: &Gpu,
    entry: &'static str,
    direction: f32,
    s: AttnShape,
    tables: &RopeTables,
    qkv: &Tensor,
) -> Result<Dispatch> {
    let rows = s.batch * s.seq;
    if qkv.len() != rows * 3 * s.d_model()
        || s.head_count == 0
        || s.head_start + s.head_count > s.n_heads
    {
        return Err(Error::shape(
            "rope",
            format!("qkv '{}' {:?} for {s:?}", qkv.name(), qkv.shape()),
        ));
    }
    if s.seq > tables.max_seq || s.head_dim != tables.head_dim {
        return Err(Error::shape(
            "rope",
            format!(
                "tables for seq ≤ {}, head_dim {}; got {s:?}",
                tables.max_seq, tables.head_dim
            ),
        ));
    }
    let n = rows * 2 * s.head_count * (s.head_dim / 2);
    gpu.call(&SHADER, entry)
        .params(params![
            rows,
            s.seq,
            s.d_model(),
            s.head_dim,
            s.head_start,
            s.head_count,
            direction
        ])
        .bind(1, &tables.cos)
        .bind(2, &tables.sin)
        .bind(3, qkv)
        .dispatch(grid_1d(n.div_ceil(256)))
}

/// Rotates q and k of the handled heads in place.
pub fn forward(gpu: &Gpu, s: AttnShape, tables: &RopeTables, qkv: &Tensor) -> Result<Dispatch> {
    rotate(gpu, "rope_forward", 1.0, s, tables, qkv)
}

/// The transpose, in place on the gradient dqkv.
pub fn backward(gpu: &Gpu, s: AttnShape, tables: &RopeTables, dqkv: &Tensor) -> Result<Dispatch> {
    rotate(gpu, "rope_backward", -1.0, s, tables, dqkv)
}
