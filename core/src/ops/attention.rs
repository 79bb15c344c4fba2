//! What every attention kernel shares: the layout of the fused q/k/v buffer
//! and the range of heads a kernel handles. A layer's heads can be of mixed
//! kinds (linear, topk, window, full); each kind's kernels read and write only
//! the columns of their own heads, so no two kinds touch the same element.
//!
//! Layout (row-major, rows = batch·seq):
//!   qkv  (batch, seq, 3·d)  q in columns [0, d), k in [d, 2d), v in [2d, 3d);
//!                           head h of each in columns h·head_dim .. (h+1)·head_dim
//!   out  (batch, seq, d)    head h in columns h·head_dim .. (h+1)·head_dim
//! Backward writes dqkv with the same layout (overwriting its heads' columns).

use crate::gpu::Tensor;
use crate::{Error, Result, params};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub batch: usize,
    pub seq: usize,
    /// All heads of the layer (d = n_heads · head_dim).
    pub n_heads: usize,
    pub head_dim: usize,
    /// The heads this kernel handles: head_start .. head_start + head_count.
    pub head_start: usize,
    pub head_count: usize,
}

impl AttnShape {
    pub fn d_model(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// The uniform of the softmax and top-k kernels: the shape, `span` (the
    /// half window, or the kept k) and the score scale 1/√head_dim.
    pub fn params(&self, span: usize) -> Vec<u32> {
        params![
            self.batch,
            self.seq,
            self.d_model(),
            self.head_dim,
            self.head_start,
            self.head_count,
            span,
            1.0 / (self.head_dim as f32).sqrt(),
        ]
    }

    /// The register capacity of a head vector in the attention kernels
    /// (their `HEAD_DIM_MAX`): the smallest of 16, 32 and 64 that holds it.
    pub fn head_dim_capacity(&self, op: &'static str) -> Result<usize> {
        [16, 32, 64]
            .into_iter()
            .find(|&c| c >= self.head_dim)
            .ok_or_else(|| Error::shape(op, format!("head_dim {} > 64", self.head_dim)))
    }

    /// One thread per query (or key) in workgroups of 64: (ceil(L / 64), heads, B).
    pub fn grid_per_position(&self) -> [u32; 3] {
        [
            self.seq.div_ceil(64) as u32,
            self.head_count as u32,
            self.batch as u32,
        ]
    }

    /// Checks `qkv` (batch, seq, 3d) and `out` (batch, seq, d) against the shape.
    pub fn check(&self, op: &'static str, qkv: &Tensor, out: &Tensor) -> Result<()> {
        let rows = self.batch * self.seq;
        let d = self.d_model();
        if self.head_count == 0 || self.head_start + self.head_count > self.n_heads {
            return Err(Error::shape(
                op,
                format!(
                    "heads {}..{} of {}",
                    self.head_start,
                    self.head_start + self.head_count,
                    self.n_heads
                ),
            ));
        }
        if qkv.len() != rows * 3 * d || out.len() != rows * d {
            return Err(Error::shape(
                op,
                format!(
                    "qkv {:?} and out {:?} for {self:?} (want {} and {})",
                    qkv.shape(),
                    out.shape(),
                    rows * 3 * d,
                    rows * d
                ),
            ));
        }
        Ok(())
    }
}
