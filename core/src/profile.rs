//! Where a step's time goes, per kernel entry point.
//!
//! Where the adapter has timestamp queries, the programs are recorded as one
//! command buffer, each dispatch in a compute pass of its own whose start
//! and end the GPU stamps: the time each kernel takes in the stream, as the
//! step runs it. Elsewhere every command is submitted and waited for on its
//! own and timed on the wall clock; each such measurement includes one
//! submission's overhead (tens of microseconds), so it ranks kernels rather
//! than timing them exactly.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::gpu::{Command, Dispatch, Gpu, Program};
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub calls: usize,
    pub total_ms: f64,
}

/// How the kernels were timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// GPU timestamps around each dispatch, all in one command buffer.
    GpuTimestamps,
    /// Wall time of each command submitted and waited for alone.
    WallPerCommand,
}

#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub clock: Clock,
    /// Per-kernel totals, slowest first.
    pub kernels: Vec<KernelTime>,
}

/// Timestamps one query set holds (wgpu's limit), two per dispatch.
const QUERIES: usize = 4096;

/// Times every kernel of `programs`; see the module's note for how.
pub async fn profile(gpu: &Gpu, programs: &[&Program]) -> Result<Profile> {
    let commands: Vec<&Command> = programs.iter().flat_map(|p| &p.commands).collect();
    let (clock, times) = if gpu.features.timestamps {
        (Clock::GpuTimestamps, timestamped(gpu, &commands).await?)
    } else {
        (Clock::WallPerCommand, one_by_one(gpu, &commands)?)
    };
    let mut totals: HashMap<String, (usize, f64)> = HashMap::new();
    for (label, ms) in times {
        let entry = totals.entry(label).or_default();
        entry.0 += 1;
        entry.1 += ms;
    }
    let mut kernels: Vec<KernelTime> = totals
        .into_iter()
        .map(|(kernel, (calls, total_ms))| KernelTime {
            kernel,
            calls,
            total_ms,
        })
        .collect();
    kernels.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    Ok(Profile { clock, kernels })
}

fn label(command: &Command) -> String {
    match command {
        Command::Dispatch(d) => d.label.clone(),
        Command::Copy { .. } => "copy".to_string(),
        Command::Zero(_) => "clear".to_string(),
    }
}

fn one_by_one(gpu: &Gpu, commands: &[&Command]) -> Result<Vec<(String, f64)>> {
    let mut times = Vec::with_capacity(commands.len());
    for &command in commands {
        let single = Program {
            commands: vec![command.clone()],
        };
        let started = Instant::now();
        gpu.run(&[&single])?;
        times.push((label(command), started.elapsed().as_secs_f64() * 1e3));
    }
    Ok(times)
}

/// Dispatch times from GPU timestamps, in command buffers of up to 2,048
/// dispatches (copies and clears run between them, untimed).
async fn timestamped(gpu: &Gpu, commands: &[&Command]) -> Result<Vec<(String, f64)>> {
    let mut times = Vec::new();
    let mut rest = commands;
    while !rest.is_empty() {
        let mut taken = 0;
        let mut dispatches = 0;
        while taken < rest.len() && dispatches < QUERIES / 2 {
            if matches!(rest[taken], Command::Dispatch(_)) {
                dispatches += 1;
            }
            taken += 1;
        }
        let (chunk, later) = rest.split_at(taken);
        times.extend(timestamp_chunk(gpu, chunk, dispatches).await?);
        rest = later;
    }
    Ok(times)
}

async fn timestamp_chunk(
    gpu: &Gpu,
    commands: &[&Command],
    dispatches: usize,
) -> Result<Vec<(String, f64)>> {
    if dispatches == 0 {
        return Ok(Vec::new());
    }
    let count = 2 * dispatches as u32;
    let bytes = 8 * u64::from(count);
    let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("profile"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile.resolved"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile.staging"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("profile"),
        });
    let mut labels = Vec::with_capacity(dispatches);
    for &command in commands {
        match command {
            Command::Dispatch(d) => {
                record_stamped(&mut encoder, &queries, labels.len() as u32, d);
                labels.push(d.label.clone());
            }
            other => Program {
                commands: vec![other.clone()],
            }
            .record(&mut encoder),
        }
    }
    encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
    encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
    gpu.queue.submit([encoder.finish()]);
    let (tx, rx) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    gpu.wait_idle()?;
    rx.await
        .map_err(|_| Error::Gpu("reading the profile's timestamps: map callback dropped".into()))?
        .map_err(|e| Error::Gpu(format!("reading the profile's timestamps: {e}")))?;
    let bytes = staging
        .get_mapped_range(..)
        .map_err(|e| Error::Gpu(format!("reading the profile's timestamps: {e:?}")))?
        .to_vec();
    staging.unmap();
    gpu.take_error()?;
    let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
    let ms_per_tick = f64::from(gpu.queue.get_timestamp_period()) * 1e-6;
    Ok(labels
        .into_iter()
        .zip(ticks.chunks_exact(2))
        .map(|(label, t)| (label, t[1].saturating_sub(t[0]) as f64 * ms_per_tick))
        .collect())
}

/// Dispatch `d` in a compute pass of its own, stamped at queries 2i, 2i + 1.
fn record_stamped(
    encoder: &mut wgpu::CommandEncoder,
    queries: &wgpu::QuerySet,
    i: u32,
    d: &Dispatch,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
            query_set: queries,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        }),
    });
    d.record(&mut pass);
}
