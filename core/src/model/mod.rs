//! The SamNet model on the GPU: its parameters ([`Model`]), and the forward,
//! backward and optimizer passes recorded once per shape ([`graph::Graph`])
//! and replayed every step as one command buffer.

pub mod graph;
pub mod params;

use std::collections::HashMap;

use crate::Result;
use crate::checkpoint::NamedTensor;
use crate::config::Config;
use crate::gpu::{Gpu, Packed, Packing, Tensor};
use crate::rng::Rng;
use params::{ParamSpec, match_tensors, param_specs};

/// The parameters of a SamNet on one device, in the order of [`param_specs`].
pub struct Model {
    pub config: Config,
    pub specs: Vec<ParamSpec>,
    /// The parameters (`packed.tensors`, in spec order), views of buffers
    /// laid out by `packing`: weight-decayed tensors (group 0) first, then
    /// the others (group 1). Gradients and AdamW moments are packed the same way.
    pub packed: Packed,
    pub packing: Packing,
    index: HashMap<String, usize>,
}

/// The packing group of the weight-decayed parameters; the others are 1.
pub const DECAYED: usize = 0;

/// The AdamW group of a parameter in [`Model::packing`].
pub fn decay_group(spec: &ParamSpec) -> usize {
    if spec.decay { DECAYED } else { 1 }
}

impl Model {
    /// A freshly initialised model (deterministic in `seed`). Every buffer
    /// is allocated (and checked against the adapter's limits) before any
    /// value is drawn, so an oversized config fails at once, naming the
    /// buffer, instead of first filling host memory.
    pub fn new(gpu: &Gpu, config: &Config, seed: u64) -> Result<Model> {
        let model = Self::allocate(gpu, config)?;
        let mut rng = Rng::new(seed);
        for (spec, t) in model.specs.iter().zip(&model.packed.tensors) {
            gpu.write_f32(t, &spec.initial_values(&mut rng))?;
        }
        Ok(model)
    }

    /// A model from named tensors (a checkpoint), checking that every
    /// parameter is present with its shape and that nothing else is.
    pub fn from_tensors(
        gpu: &Gpu,
        config: &Config,
        tensors: Vec<NamedTensor>,
        origin: &str,
    ) -> Result<Model> {
        let values = match_tensors(&param_specs(config), tensors, origin)?;
        let model = Self::allocate(gpu, config)?;
        for (t, v) in model.packed.tensors.iter().zip(&values) {
            gpu.write_f32(t, v)?;
        }
        Ok(model)
    }

    /// Zeroed parameters, packed.
    fn allocate(gpu: &Gpu, config: &Config) -> Result<Model> {
        let specs = param_specs(config);
        let tensors: Vec<(&str, usize, usize)> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.len(), decay_group(s)))
            .collect();
        let packing = gpu.packing(&tensors)?;
        let packed = Self::pack_like(gpu, &specs, &packing, "param")?;
        let index = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Model {
            config: config.clone(),
            specs,
            packing,
            packed,
            index,
        })
    }

    /// Zeroed tensors shaped and packed like the parameters (gradients,
    /// moments), named `prefix.NAME`.
    pub fn packed_like(&self, gpu: &Gpu, prefix: &str) -> Result<Packed> {
        Self::pack_like(gpu, &self.specs, &self.packing, prefix)
    }

    fn pack_like(
        gpu: &Gpu,
        specs: &[ParamSpec],
        packing: &Packing,
        prefix: &str,
    ) -> Result<Packed> {
        let tensors: Vec<(&str, &[usize])> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.shape.as_slice()))
            .collect();
        gpu.packed(prefix, &tensors, packing)
    }

    pub fn param(&self, name: &str) -> &Tensor {
        &self.packed.tensors[self.index[name]]
    }

    pub fn param_count(&self) -> usize {
        self.specs.iter().map(ParamSpec::len).sum()
    }

    /// Reads every parameter back (for checkpoints).
    pub async fn to_tensors(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::with_capacity(self.specs.len());
        for (spec, t) in self.specs.iter().zip(&self.packed.tensors) {
            out.push(NamedTensor {
                name: spec.name.clone(),
                shape: spec.shape.clone(),
                data: gpu.read_f32(t).await?,
            });
        }
        Ok(out)
    }
}
