//! SamNet core: the WebGPU runtime, the WGSL kernels' Rust side, their f64
//! CPU references, and (on top of them) the model, diffusion and training.

pub mod average;
pub mod checkpoint;
pub mod conditioning;
pub mod config;
pub mod corpus;
pub mod data;
pub mod error;
pub mod eval;
pub mod gpu;
mod guard;
pub mod humaneval;
pub mod hybrid;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod phase;
#[cfg(not(target_arch = "wasm32"))]
pub mod profile;
pub mod reference;
pub mod rng;
pub mod sample;
pub mod schedule;
pub mod selftest;
pub mod sentences;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
