use std::time::Instant;

use anyhow::{Context, bail};
use samnet_core::gpu::{Gpu, GpuOptions};
use samnet_core::ops::all_shaders;
use samnet_core::selftest;

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let gpu = Gpu::new_blocking(options)?;
    let started = Instant::now();
    let mut entry_points = 0;
    for shader in all_shaders() {
        for entry in selftest::entry_points(&shader) {
            gpu.pipeline(&shader, &entry, &[], &[])
                .with_context(|| format!("compiling {}::{entry}", shader.name))?;
            entry_points += 1;
        }
    }
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let checks = pollster::block_on(selftest::run(&gpu))?;
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed).collect();
    let limits = &gpu.limits;
    if args.json {
        let report = serde_json::json!({
            "adapter": gpu.info.name,
            "backend": format!("{:?}", gpu.info.backend),
            "device_type": format!("{:?}", gpu.info.device_type),
            "driver": format!("{} {}", gpu.info.driver, gpu.info.driver_info),
            "features": gpu.features,
            "limits": {
                "max_buffer_size": limits.max_buffer_size,
                "max_storage_buffer_binding_size": limits.max_storage_buffer_binding_size,
                "max_storage_buffers_per_shader_stage": limits.max_storage_buffers_per_shader_stage,
                "max_compute_workgroup_storage_size": limits.max_compute_workgroup_storage_size,
                "max_compute_invocations_per_workgroup": limits.max_compute_invocations_per_workgroup,
            },
            "pipelines_compiled": entry_points,
            "compile_ms": compile_ms,
            "self_test": checks,
            "cooperative_matmul": gpu.cooperative_matmul,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("adapter   {}", gpu.describe());
        let f = gpu.features;
        println!(
            "features  shader_f16={} subgroups={} timestamps={} cooperative_matrix={}",
            f.shader_f16, f.subgroups, f.timestamps, f.cooperative_matrix
        );
        println!(
            "limits    buffer {} MiB, storage binding {} MiB, {} storage buffers/stage, {} B workgroup memory, {} invocations",
            limits.max_buffer_size >> 20,
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_storage_buffers_per_shader_stage,
            limits.max_compute_workgroup_storage_size,
            limits.max_compute_invocations_per_workgroup
        );
        println!("shaders   {entry_points} entry points compiled in {compile_ms:.0} ms");
        for c in &checks {
            println!(
                "self-test {:<28} max rel err {:.2e} (tolerance {:.0e})  {}",
                c.name,
                c.max_rel_err,
                c.tolerance,
                if c.passed { "ok" } else { "FAILED" }
            );
        }
        for c in &gpu.cooperative_matmul {
            let err = c
                .max_rel_err
                .map_or("-".to_string(), |e| format!("{e:.2e}"));
            println!(
                "tensor-core matmul {:<3} {:?} (max rel err {err} with {}, tolerance {:.0e})",
                c.variant,
                c.status,
                c.worst_case.unwrap_or("-"),
                c.tolerance
            );
        }
    }
    if !failed.is_empty() {
        bail!("{} self-test(s) failed on {}", failed.len(), gpu.info.name);
    }
    Ok(())
}
