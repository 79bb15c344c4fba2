//! The SamNet model on the GPU: its parameters ([`Model`]), and the forward,
//! backward and optimizer passes recorded once per shape ([`graph::Graph`])
//! and replayed every step as one command buffer.

pub mod graph;
pub mod params;

use std::collections::HashMap;

use crate::Result;
use crate::checkpoint::NamedTensor;
use crate::config::Config;
use crate::gpu::{DType, Gpu, Tensor};
use crate::rng::Rng;
use params::{ParamSpec, match_tensors, param_specs};

/// The parameters of a SamNet on one device, in the order of [`param_specs`].
pub struct Model {
    pub config: Config,
    pub specs: Vec<ParamSpec>,
    pub params: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl Model {
    /// A freshly initialised model (deterministic in `seed`). Every buffer
    /// is allocated (and checked against the adapter's limits) before any
    /// value is drawn, so an oversized config fails at once, naming the
    /// buffer, instead of first filling host memory.
    pub fn new(gpu: &Gpu, config: &Config, seed: u64) -> Result<Model> {
        let specs = param_specs(config);
        let params = specs
            .iter()
            .map(|s| gpu.zeros(&s.name, &s.shape, DType::F32))
            .collect::<Result<Vec<_>>>()?;
        let mut rng = Rng::new(seed);
        for (spec, t) in specs.iter().zip(&params) {
            gpu.write_f32(t, &spec.initial_values(&mut rng))?;
        }
        Ok(Self::assemble(config, specs, params))
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
        let values = match_tensors(&specs, tensors, origin)?;
        let params = specs
            .iter()
            .zip(&values)
            .map(|(s, v)| gpu.upload_f32(&s.name, &s.shape, v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::assemble(config, specs, params))
    }

    fn assemble(config: &Config, specs: Vec<ParamSpec>, params: Vec<Tensor>) -> Model {
        let index = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Model {
            config: config.clone(),
            specs,
            params,
            index,
        }
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
