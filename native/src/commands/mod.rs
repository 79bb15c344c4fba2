pub mod average;
pub mod bench;
pub mod bench_matmul;
pub mod complete;
pub mod doctor;
pub mod eval;
pub mod eval_code;
pub mod eval_infill;
pub mod eval_instruct;
pub mod export;
pub mod infill;
pub mod report;
pub mod sample;
pub mod tokenizer;
pub mod train;

use samnet_core::gpu::GpuOptions;

pub fn gpu_options(backend: Option<&str>, adapter: Option<&str>) -> anyhow::Result<GpuOptions> {
    let mut options = GpuOptions::default();
    if let Some(b) = backend {
        options = options.with_backend(b)?;
    }
    options.adapter_name = adapter.map(str::to_string);
    Ok(options)
}
