//! Where a step's time goes: every command of the programs submitted and
//! waited for on its own, wall time per command, summed per kernel entry
//! point. Each measurement includes one submission's overhead (tens of
//! microseconds), so it ranks kernels rather than timing them exactly.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::Result;
use crate::gpu::{Command, Gpu, Program};

#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub calls: usize,
    pub total_ms: f64,
}

/// Runs `programs` command by command; returns per-kernel totals, slowest first.
pub fn profile(gpu: &Gpu, programs: &[&Program]) -> Result<Vec<KernelTime>> {
    let mut totals: HashMap<String, (usize, f64)> = HashMap::new();
    for program in programs {
        for command in &program.commands {
            let label = match command {
                Command::Dispatch(d) => d.label.clone(),
                Command::Copy { .. } => "copy".to_string(),
                Command::Zero(_) => "clear".to_string(),
            };
            let single = Program {
                commands: vec![command.clone()],
            };
            let started = Instant::now();
            gpu.run(&[&single])?;
            let entry = totals.entry(label).or_default();
            entry.0 += 1;
            entry.1 += started.elapsed().as_secs_f64() * 1e3;
        }
    }
    let mut out: Vec<KernelTime> = totals
        .into_iter()
        .map(|(kernel, (calls, total_ms))| KernelTime {
            kernel,
            calls,
            total_ms,
        })
        .collect();
    out.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    Ok(out)
}
