//! Browser bindings. Sampling lands with the browser issue; for now the crate
//! proves that `samnet-core` builds for wasm32-unknown-unknown.
use wasm_bindgen::prelude::*;

/// The names of the WGSL shader files compiled into this build.
#[wasm_bindgen]
pub fn shader_names() -> Vec<String> {
    samnet_core::ops::all_shaders()
        .iter()
        .map(|s| s.name.to_string())
        .collect()
}
