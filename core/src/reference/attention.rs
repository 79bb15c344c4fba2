//! Helpers shared by the attention references: per-head views of the fused
//! qkv layout described in `ops::attention`.

/// Which of the three blocks of a qkv row.
#[derive(Clone, Copy, Debug)]
pub enum Part {
    Q = 0,
    K = 1,
    V = 2,
}

/// Index arithmetic for the (batch, seq, 3d) qkv and (batch, seq, d) out layouts.
#[derive(Clone, Copy, Debug)]
pub struct HeadLayout {
    pub seq: usize,
    pub d: usize,
    pub head_dim: usize,
}

impl HeadLayout {
    /// Element (b, i, head h, component c) of `part` in qkv.
    pub fn qkv(&self, part: Part, b: usize, i: usize, h: usize, c: usize) -> usize {
        (b * self.seq + i) * 3 * self.d + part as usize * self.d + h * self.head_dim + c
    }

    /// Element (b, i, head h, component c) in out.
    pub fn out(&self, b: usize, i: usize, h: usize, c: usize) -> usize {
        (b * self.seq + i) * self.d + h * self.head_dim + c
    }

    /// The (seq, head_dim) matrix of one part of one head of one batch element.
    pub fn head_matrix(&self, qkv: &[f64], part: Part, b: usize, h: usize) -> Vec<f64> {
        let mut m = Vec::with_capacity(self.seq * self.head_dim);
        for i in 0..self.seq {
            for c in 0..self.head_dim {
                m.push(qkv[self.qkv(part, b, i, h, c)]);
            }
        }
        m
    }
}
