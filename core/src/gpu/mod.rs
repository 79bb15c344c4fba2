//! The WebGPU runtime: adapter choice and feature detection ([`Gpu`]), GPU
//! buffers with a shape ([`Tensor`]), WGSL sources and their cached pipelines
//! ([`Shader`]), and recorded work ([`Dispatch`], [`Program`]) that is
//! submitted as one command buffer.

mod context;
mod packed;
mod program;
mod shader;
mod tensor;
mod unroll;

pub use context::{Gpu, GpuFeatures, GpuOptions, LimitsPolicy};
pub use packed::{Packed, Packing, Span};
pub use program::{Command, Dispatch, KernelCall, ParamWord, Program, grid_1d};
pub use shader::{LIBRARIES, Shader};
pub use tensor::{DType, PendingRead, Tensor};

/// Builds the uniform parameter words of a kernel call: `params![n, d, eps]`.
/// Integers become u32, floats their f32 bits; the shader's `Params` struct
/// lists the same fields in the same order.
#[macro_export]
macro_rules! params {
    ($($x:expr),* $(,)?) => { vec![$($crate::gpu::ParamWord::word($x)),*] };
}
