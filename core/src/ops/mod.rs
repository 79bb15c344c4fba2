//! The Rust side of every WGSL kernel: each function checks shapes and
//! returns bound [`Dispatch`](crate::gpu::Dispatch)es for a
//! [`Program`](crate::gpu::Program). Forward and backward sit side by side,
//! as they do in the shader files. Scratch buffers a kernel needs are
//! allocated here, when the dispatch is built, never per step.

pub mod activation;
pub mod adaln;
pub mod attention;
pub mod attention_linear;
pub mod attention_softmax;
pub mod attention_topk;
pub mod diffusion;
pub mod elementwise;
pub mod embedding;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod matmul_coop;
pub mod norm;
pub mod optim;
pub mod precision;
pub mod random;
pub mod reduce;
pub mod reveal;
pub mod rope;
pub mod sampling;
pub mod timestep;

use crate::gpu::{KernelCall, Shader};

/// A kernel whose file declares `alias Elem = f32;` over rows of `width`:
/// compiled with `Elem = vec4<f32>` (four columns an invocation, 16-byte
/// accesses) where the width is a multiple of 4. Returns the call and the
/// elements each `Elem` holds, by which the caller divides its counts.
pub(crate) fn in_quads(call: KernelCall<'_>, width: usize) -> (KernelCall<'_>, usize) {
    if width.is_multiple_of(4) {
        (call.constant("Elem", "vec4<f32>"), 4)
    } else {
        (call, 1)
    }
}

/// Every shader file the crate embeds (for `samnet doctor` and validation).
pub fn all_shaders() -> Vec<Shader> {
    vec![
        activation::SHADER,
        adaln::SHADER,
        attention_linear::SHADER,
        attention_softmax::SHADER,
        attention_topk::SHADER,
        diffusion::SHADER,
        elementwise::SHADER,
        embedding::SHADER,
        linear::SHADER,
        loss::SHADER,
        matmul::SHADER,
        norm::SHADER,
        optim::SHADER,
        precision::SHADER,
        random::SHADER,
        reduce::SHADER,
        reveal::SHADER,
        rope::SHADER,
        sampling::SHADER,
        timestep::SHADER,
    ]
}

/// Shader files that compile only where the adapter has an optional feature
/// (validated with that feature; never compiled where it is missing).
pub fn feature_gated_shaders() -> Vec<Shader> {
    vec![matmul_coop::SHADER]
}
