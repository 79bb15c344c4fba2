//! Every kernel on the test adapter: forward against the f64 reference,
//! backward against the reference backward, the reference backward against
//! f64 central differences, and the GPU backward against central differences
//! of the GPU forward. Shapes are deliberately not multiples of tile sizes.

mod activation;
mod adaln;
mod attention_linear;
mod attention_softmax;
mod attention_topk;
mod diffusion;
mod elementwise;
mod embedding;
mod linear;
mod loss;
mod matmul;
mod norm;
mod optim;
mod precision;
mod random;
mod reduce;
mod reveal;
mod rope;
mod timestep;
