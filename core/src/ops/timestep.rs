use crate::gpu::{Dispatch, Gpu, Shader, Tensor, grid_1d};
use crate::reference::timestep::sinusoid_table;
use crate::{Error, Result, params, shader_file};

pub const SHADER: Shader = shader_file!("timestep");

/// The (T + 1, dim) table of sinusoidal features, computed in f64, uploaded once.
pub fn upload_table(gpu: &Gpu, max_t: usize, dim: usize, max_period: f64) -> Result<Tensor> {
    let table: Vec<f32> = sinusoid_table(max_t, dim, max_period)
        .iter()
        .map(|&v| v as f32)
        .collect();
    gpu.upload_f32("timestep_table", &[max_t + 1, dim], &table)
}

/// `out[b] = table[timesteps[b]]` (timesteps clamped to T).
pub fn embedding(gpu: &Gpu, timesteps: &Tensor, table: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let (batch, rows, dim) = (
        timesteps.len(),
        table.shape()[0],
        table.shape().get(1).copied().unwrap_or(0),
    );
    if out.len() != batch * dim || rows == 0 {
        return Err(Error::shape(
            "timestep_embedding",
            format!(
                "table {:?}, out {:?} for {batch} timesteps",
                table.shape(),
                out.shape()
            ),
        ));
    }
    gpu.call(&SHADER, "timestep_embedding")
        .params(params![batch, dim, rows - 1])
        .bind(1, timesteps)
        .bind(2, table)
        .bind(3, out)
        .dispatch(grid_1d((batch * dim).div_ceil(256)))
}
