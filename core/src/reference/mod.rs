//! f64 CPU references for every kernel: slow, obviously right, and the ground
//! truth the GPU kernels are tested against (forward and backward).

pub mod activation;
pub mod adaln;
pub mod attention;
pub mod attention_linear;
pub mod attention_softmax;
pub mod attention_topk;
pub mod diffusion;
pub mod embedding;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod model;
pub mod norm;
pub mod optim;
pub mod random;
pub mod reveal;
pub mod rope;
pub mod sampling;
pub mod timestep;
