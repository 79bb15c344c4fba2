//! The SamNet model on the GPU: its parameters ([`Model`]), and the forward,
//! backward and optimizer passes recorded once per shape ([`graph::Graph`])
//! and replayed every step as one command buffer.

pub mod graph;
pub mod params;

use std::collections::HashMap;

use crate::checkpoint::NamedTensor;
use crate::config::Config;
use crate::gpu::{Gpu, Tensor};
use crate::rng::Rng;
use crate::{Error, Result};
use params::{ParamSpec, param_specs};

/// The parameters of a SamNet on one device, in the order of [`param_specs`].
pub struct Model {
    pub config: Config,
    pub specs: Vec<ParamSpec>,
    pub params: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl Model {
    /// A freshly initialised model (deterministic in `seed`).
    pub fn new(gpu: &Gpu, config: &Config, seed: u64) -> Result<Model> {
        let specs = param_specs(config);
        let mut rng = Rng::new(seed);
        let values: Vec<Vec<f32>> = specs.iter().map(|s| s.initial_values(&mut rng)).collect();
        Self::from_values(gpu, config, specs, values)
    }

    /// A model from named tensors (a checkpoint), checking that every
    /// parameter is present with its shape and that nothing else is.
    pub fn from_tensors(
        gpu: &Gpu,
        config: &Config,
        tensors: Vec<NamedTensor>,
        origin: &str,
    ) -> Result<Model> {
        let specs = param_specs(config);
        let mut by_name: HashMap<String, NamedTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut values = Vec::with_capacity(specs.len());
        for spec in &specs {
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
        Self::from_values(gpu, config, specs, values)
    }

    fn from_values(
        gpu: &Gpu,
        config: &Config,
        specs: Vec<ParamSpec>,
        values: Vec<Vec<f32>>,
    ) -> Result<Model> {
        let params = specs
            .iter()
            .zip(&values)
            .map(|(s, v)| gpu.upload_f32(&s.name, &s.shape, v))
            .collect::<Result<Vec<_>>>()?;
        let index = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Model {
            config: config.clone(),
            specs,
            params,
            index,
        })
    }

    pub fn param(&self, name: &str) -> &Tensor {
        &self.params[self.index[name]]
    }

    pub fn param_count(&self) -> usize {
        self.specs.iter().map(ParamSpec::len).sum()
    }

    /// Reads every parameter back (for checkpoints).
    pub async fn to_tensors(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::with_capacity(self.params.len());
        for (spec, t) in self.specs.iter().zip(&self.params) {
            out.push(NamedTensor {
                name: spec.name.clone(),
                shape: spec.shape.clone(),
                data: gpu.read_f32(t).await?,
            });
        }
        Ok(out)
    }
}
