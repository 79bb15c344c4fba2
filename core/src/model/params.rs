//! The parameters of a SamNet: names (those of the PyTorch reference's
//! checkpoints), shapes, initialisation and weight-decay groups.

use std::collections::HashMap;

use crate::checkpoint::NamedTensor;
use crate::config::{Config, DiffusionKind};
use crate::rng::Rng;
use crate::{Error, Result};

/// The mask token's input row under `diffusion.kind = "masked"` (the
/// PyTorch reference's name; it has no output row: a mask is never predicted).
pub const MASK_EMBEDDING: &str = "mask_embedding.weight";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, std²).
    Normal(f64),
    /// U(−a, a) with a = sqrt(6 / (fan_in + fan_out)) (Xavier/Glorot).
    XavierUniform,
    Zeros,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    /// AdamW weight decay applies to matrices, not to biases or embeddings.
    pub decay: bool,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Initial values, drawn from `rng`.
    pub fn initial_values(&self, rng: &mut Rng) -> Vec<f32> {
        match self.init {
            Init::Zeros => vec![0.0; self.len()],
            Init::Normal(std) => (0..self.len())
                .map(|_| (std * rng.normal()) as f32)
                .collect(),
            Init::XavierUniform => {
                let (fan_out, fan_in) = (self.shape[0], self.shape[1]);
                let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
                (0..self.len())
                    .map(|_| (a * (2.0 * rng.uniform() - 1.0)) as f32)
                    .collect()
            }
        }
    }
}

/// The values of `specs` taken from `tensors` (a checkpoint read from
/// `origin`), in spec order: every parameter must be present with its shape,
/// and nothing else may be.
pub fn match_tensors(
    specs: &[ParamSpec],
    tensors: Vec<NamedTensor>,
    origin: &str,
) -> Result<Vec<Vec<f32>>> {
    let mut by_name: HashMap<String, NamedTensor> =
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut values = Vec::with_capacity(specs.len());
    for spec in specs {
        let t = by_name.remove(&spec.name).ok_or_else(|| {
            Error::file(
                origin,
                format!(
                    "missing tensor '{}' {:?} that the config requires",
                    spec.name, spec.shape
                ),
            )
        })?;
        if t.shape != spec.shape {
            return Err(Error::file(
                origin,
                format!(
                    "tensor '{}' has shape {:?}; the config expects {:?}",
                    spec.name, t.shape, spec.shape
                ),
            ));
        }
        values.push(t.data);
    }
    if let Some(extra) = by_name.keys().min() {
        return Err(Error::file(
            origin,
            format!("unexpected tensor '{extra}' (not a parameter of this config)"),
        ));
    }
    Ok(values)
}

fn linear(specs: &mut Vec<ParamSpec>, name: &str, d_out: usize, d_in: usize, init: Init) {
    specs.push(ParamSpec {
        name: format!("{name}.weight"),
        shape: vec![d_out, d_in],
        init,
        decay: true,
    });
    specs.push(ParamSpec {
        name: format!("{name}.bias"),
        shape: vec![d_out],
        init: Init::Zeros,
        decay: false,
    });
}

/// Every parameter, in a fixed order (the order of the optimizer's state).
///
/// Initialisation follows DiT: Xavier-uniform linears with zero biases, the
/// timestep MLP N(0, 0.02²), and every AdaLN modulation linear exactly zero,
/// so each block starts as the identity map. The embedding table is N(0, 1);
/// the model reads it through a row-wise RMS normalisation (see `graph`).
pub fn param_specs(config: &Config) -> Vec<ParamSpec> {
    let m = &config.model;
    let (d, e, hidden) = (m.d_model, config.embed_dim(), config.ffn_hidden());
    let mut s = vec![ParamSpec {
        name: "embedding.weight".into(),
        shape: vec![m.vocab_size, e],
        init: Init::Normal(1.0),
        decay: false,
    }];
    if config.diffusion.kind == DiffusionKind::Masked {
        // The input row of a masked position (read, like the table, through an RMS normalisation).
        s.push(ParamSpec {
            name: MASK_EMBEDDING.into(),
            shape: vec![1, e],
            init: Init::Normal(1.0),
            decay: false,
        });
    }
    linear(&mut s, "time.fc1", d, m.time_embed_dim, Init::Normal(0.02));
    linear(&mut s, "time.fc2", d, d, Init::Normal(0.02));
    linear(&mut s, "input", d, e, Init::XavierUniform);
    if config.diffusion.self_condition {
        // Shares the input projection's bias.
        s.push(ParamSpec {
            name: "input_sc.weight".into(),
            shape: vec![d, e],
            init: Init::XavierUniform,
            decay: true,
        });
    }
    for i in 0..m.n_layers {
        let p = format!("blocks.{i}");
        linear(&mut s, &format!("{p}.adaln"), 6 * d, d, Init::Zeros);
        linear(
            &mut s,
            &format!("{p}.attn.qkv"),
            3 * d,
            d,
            Init::XavierUniform,
        );
        linear(&mut s, &format!("{p}.attn.out"), d, d, Init::XavierUniform);
        linear(
            &mut s,
            &format!("{p}.ffn.w13"),
            2 * hidden,
            d,
            Init::XavierUniform,
        );
        linear(
            &mut s,
            &format!("{p}.ffn.w2"),
            d,
            hidden,
            Init::XavierUniform,
        );
    }
    linear(&mut s, "final.adaln", 2 * d, d, Init::Zeros);
    linear(&mut s, "final.out", e, d, Init::XavierUniform);
    s
}

/// Total number of parameters.
pub fn param_count(config: &Config) -> usize {
    param_specs(config).iter().map(ParamSpec::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase1_has_the_expected_size_and_zero_modulation() {
        let c = Config::preset("phase1").unwrap();
        let specs = param_specs(&c);
        // 6 blocks of (6d² + 3d² + d² + 8d² + 4d²)·(1 + 1/d) + embedding + time MLP
        // + input projection (+ its self-conditioning twin, the preset's default) + output.
        let d = 256usize;
        let block = 22 * d * d + 6 * d + 3 * d + d + 8 * d + d;
        let expected = 65 * d
            + (d * 256 + d)
            + (d * d + d)
            + 2 * (d * d + d)
            + usize::from(c.diffusion.self_condition) * d * d
            + 6 * block
            + (2 * d * d + 2 * d);
        assert_eq!(param_count(&c), expected);
        let mut rng = Rng::new(0);
        for s in specs.iter().filter(|s| s.name.contains("adaln")) {
            assert!(
                s.initial_values(&mut rng).iter().all(|&x| x == 0.0),
                "{}",
                s.name
            );
        }
    }
}
