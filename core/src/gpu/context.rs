use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Shader;
use crate::ops::matmul_coop::{self, VariantCheck};
use crate::{Error, Result};

/// Which device limits to ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitsPolicy {
    /// WebGPU's defaults, exactly what a browser guarantees. Tests use this,
    /// so every kernel they run is proven to fit the browser.
    WebGpuDefault,
    /// The defaults, with buffer sizes raised to what the adapter offers, so
    /// larger models fit natively. Per-stage limits (storage buffers,
    /// workgroup memory, invocations) stay at the defaults: the shaders are
    /// written for those.
    #[default]
    LargeBuffers,
}

#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backends to consider; `None` means all of them (or `WGPU_BACKEND`).
    pub backends: Option<wgpu::Backends>,
    /// Only adapters whose name contains this (case-insensitive).
    pub adapter_name: Option<String>,
    pub limits: LimitsPolicy,
}

impl GpuOptions {
    /// Parses `--backend`-style names: vulkan, metal, dx12, gl, webgpu or a comma list.
    pub fn with_backend(mut self, names: &str) -> Result<Self> {
        let mut backends = wgpu::Backends::empty();
        for name in names.split(',').map(|s| s.trim().to_ascii_lowercase()) {
            backends |= match name.as_str() {
                "vulkan" | "vk" => wgpu::Backends::VULKAN,
                "metal" | "mtl" => wgpu::Backends::METAL,
                "dx12" | "d3d12" => wgpu::Backends::DX12,
                "gl" | "gles" | "opengl" => wgpu::Backends::GL,
                "webgpu" | "browser" => wgpu::Backends::BROWSER_WEBGPU,
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown backend '{other}' (expected vulkan, metal, dx12, gl or webgpu)"
                    )));
                }
            };
        }
        self.backends = Some(backends);
        Ok(self)
    }
}

/// Optional adapter features, detected at run time; every kernel that uses
/// one has a fallback that does not.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct GpuFeatures {
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
    /// EXPERIMENTAL_COOPERATIVE_MATRIX with what the tensor-core matmul
    /// needs (see [`crate::ops::matmul_coop::adapter_supports`]).
    pub cooperative_matrix: bool,
}

type PipelineKey = (
    &'static str,
    String,
    Vec<(String, String)>,
    Vec<(String, u64)>,
);

/// A device with its queue, what it can do, and a cache of compiled pipelines.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub features: GpuFeatures,
    pub limits: wgpu::Limits,
    /// The tensor-core matmul's self-test per transpose variant, run when
    /// the device opened; all "unavailable" without cooperative matrices.
    pub cooperative_matmul: Vec<VariantCheck>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    errors: Arc<Mutex<Vec<Fault>>>,
    allocated: AtomicU64,
}

/// A GPU error reported asynchronously, by kind.
#[derive(Debug)]
enum Fault {
    OutOfMemory(String),
    Lost(String),
    Other(String),
}

impl Fault {
    fn from_wgpu(e: &wgpu::Error) -> Fault {
        match e {
            wgpu::Error::OutOfMemory { source } => Fault::OutOfMemory(source.to_string()),
            // wgpu's messages span lines ("…\n\nCaused by:\n  …"); errors are one line.
            other => Fault::Other(
                other
                    .to_string()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }

    /// After a device loss every later call fails too; the loss is the news.
    fn rank(&self) -> u8 {
        match self {
            Fault::Lost(_) => 0,
            Fault::OutOfMemory(_) => 1,
            Fault::Other(_) => 2,
        }
    }

    /// The index of the fault to report: the highest-ranked, then the first.
    fn worst(faults: &[Fault]) -> Option<usize> {
        faults
            .iter()
            .enumerate()
            .min_by_key(|(i, f)| (f.rank(), *i))
            .map(|(i, _)| i)
    }

    fn into_error(self) -> Error {
        match self {
            Fault::OutOfMemory(m) => Error::OutOfMemory(m),
            Fault::Lost(m) => Error::DeviceLost(m),
            Fault::Other(m) => Error::Gpu(m),
        }
    }
}

fn backend_names(backends: wgpu::Backends) -> String {
    let all = [
        (wgpu::Backends::VULKAN, "vulkan"),
        (wgpu::Backends::METAL, "metal"),
        (wgpu::Backends::DX12, "dx12"),
        (wgpu::Backends::GL, "gl"),
        (wgpu::Backends::BROWSER_WEBGPU, "webgpu"),
    ];
    let names: Vec<&str> = all
        .iter()
        .filter(|(b, _)| backends.contains(*b))
        .map(|(_, n)| *n)
        .collect();
    names.join(", ")
}

/// Higher is better: real GPUs before software ones, native APIs before GL.
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 2,
        wgpu::Backend::BrowserWebGpu => 2,
        _ => 1,
    };
    (kind, api)
}

impl Gpu {
    /// Picks the best adapter allowed by `options` and opens a device on it.
    pub async fn new(options: &GpuOptions) -> Result<Gpu> {
        let backends = options
            .backends
            .or_else(wgpu::Backends::from_env)
            .unwrap_or(wgpu::Backends::all());
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let tried = backend_names(backends);
        let adapter = Self::pick_adapter(&instance, options).await.ok_or_else(|| {
            let filter = match &options.adapter_name {
                Some(n) => format!(" named like '{n}'"),
                None => String::new(),
            };
            Error::NoAdapter(format!(
                "no adapter{filter} on backends tried: {tried}; on a machine without a GPU install \
                 Mesa's lavapipe (apt-get install mesa-vulkan-drivers), or choose another with --backend"
            ))
        })?;
        Self::open(adapter, options.limits).await
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(options: &GpuOptions) -> Result<Gpu> {
        pollster::block_on(Self::new(options))
    }

    async fn pick_adapter(
        instance: &wgpu::Instance,
        options: &GpuOptions,
    ) -> Option<wgpu::Adapter> {
        let wanted = options.adapter_name.as_ref().map(|n| n.to_lowercase());
        let matches = |a: &wgpu::Adapter| {
            wanted
                .as_ref()
                .is_none_or(|w| a.get_info().name.to_lowercase().contains(w))
        };
        let mut adapters: Vec<wgpu::Adapter> = instance
            .enumerate_adapters(wgpu::Backends::all())
            .await
            .into_iter()
            .filter(|a| matches(a))
            .collect();
        if adapters.is_empty() {
            // The browser backend cannot enumerate; it only answers requests.
            let requested = instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    ..Default::default()
                })
                .await
                .ok()?;
            return matches(&requested).then_some(requested);
        }
        adapters.sort_by_key(|a| std::cmp::Reverse(adapter_rank(&a.get_info())));
        adapters.into_iter().next()
    }

    async fn open(adapter: wgpu::Adapter, policy: LimitsPolicy) -> Result<Gpu> {
        let offered = adapter.features();
        let mut required = wgpu::Features::empty();
        for f in [
            wgpu::Features::SHADER_F16,
            wgpu::Features::SUBGROUP,
            wgpu::Features::TIMESTAMP_QUERY,
        ] {
            if offered.contains(f) {
                required |= f;
            }
        }
        let cooperative = matmul_coop::adapter_supports(&adapter);
        if cooperative {
            required |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        let adapter_limits = adapter.limits();
        let mut limits = wgpu::Limits::default();
        if policy == LimitsPolicy::LargeBuffers {
            limits.max_buffer_size = adapter_limits.max_buffer_size;
            limits.max_storage_buffer_binding_size = adapter_limits.max_storage_buffer_binding_size;
        }
        if cooperative {
            limits.max_compute_workgroup_storage_size = limits
                .max_compute_workgroup_storage_size
                .max(matmul_coop::WORKGROUP_BYTES);
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("samnet"),
                required_features: required,
                required_limits: limits.clone(),
                // SAFETY: the one experimental feature requested is
                // cooperative matrices; its kernel is self-tested below
                // before any product uses it, and disabled if it fails.
                experimental_features: if cooperative {
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device(e.to_string()))?;
        let errors: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let sink = errors.clone();
        // wgpu's default handler panics; we surface errors as values instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(Fault::from_wgpu(&e));
            }
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = sink.lock() {
                let detail = if message.is_empty() {
                    format!("{reason:?}")
                } else {
                    format!("{reason:?}: {message}")
                };
                v.push(Fault::Lost(detail));
            }
        });
        let mut gpu = Gpu {
            device,
            queue,
            info: adapter.get_info(),
            features: GpuFeatures {
                shader_f16: required.contains(wgpu::Features::SHADER_F16),
                subgroups: required.contains(wgpu::Features::SUBGROUP),
                timestamps: required.contains(wgpu::Features::TIMESTAMP_QUERY),
                cooperative_matrix: cooperative,
            },
            limits,
            cooperative_matmul: VariantCheck::unavailable(),
            pipelines: Mutex::default(),
            errors,
            allocated: AtomicU64::new(0),
        };
        if cooperative {
            gpu.cooperative_matmul = matmul_coop::self_test(&gpu).await;
        }
        Ok(gpu)
    }

    /// Whether the tensor-core matmul passed its self-test for this
    /// transpose variant on this device.
    pub fn cooperative_matmul_passed(&self, trans_a: bool, trans_b: bool) -> bool {
        matmul_coop::VARIANTS
            .iter()
            .zip(&self.cooperative_matmul)
            .any(|(&(_, ta, tb), check)| {
                (ta, tb) == (trans_a, trans_b) && check.status == matmul_coop::Status::Pass
            })
    }

    /// Bytes of storage buffers allocated through this device so far (wgpu
    /// offers no portable reading of device memory in use; our buffers are
    /// allocated once per configuration, so this is the steady-state figure).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    pub(crate) fn count_allocation(&self, bytes: u64) {
        self.allocated.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The GPU error reported since the last call, if any: a device loss
    /// before an out-of-memory before anything else, else the first.
    pub fn take_error(&self) -> Result<()> {
        let mut errors = self
            .errors
            .lock()
            .map_err(|_| Error::Gpu("poisoned".into()))?;
        let Some(worst) = Fault::worst(&errors) else {
            return Ok(());
        };
        let fault = errors.swap_remove(worst);
        errors.clear();
        Err(fault.into_error())
    }

    /// Blocks (natively) until submitted work is done; a no-op in the browser,
    /// where completion arrives through callbacks.
    pub fn wait_idle(&self) -> Result<()> {
        let polled = self.poll(wgpu::PollType::wait_indefinitely())?;
        self.take_error()?;
        polled
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
    }

    /// `Device::poll`, with a panic inside it reported as the device lost:
    /// wgpu panics there ("Parent device is lost") when a real driver loses
    /// the device, where its callback and errors report an injected loss.
    pub(crate) fn poll(
        &self,
        poll: wgpu::PollType,
    ) -> Result<std::result::Result<wgpu::PollStatus, wgpu::PollError>> {
        crate::guard::contain(|| self.device.poll(poll))
            .map_err(|panic| Error::DeviceLost(format!("the driver failed while polling: {panic}")))
    }

    /// Fault injection (`samnet train --inject-device-loss`): destroys the
    /// device, as a driver reset or a GPU fault would; every later call
    /// reports [`Error::DeviceLost`].
    pub fn lose_device(&self) {
        self.device.destroy();
    }

    /// One line describing the adapter, e.g. for logs and `samnet doctor`.
    /// Fails, naming the adapter, unless it has SHADER_F16.
    pub fn require_f16(&self, what: &str) -> Result<()> {
        if self.features.shader_f16 {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "{what} needs the SHADER_F16 feature, which {} lacks; use precision \"f32\" (or \"auto\")",
            self.info.name
        )))
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info
        )
    }

    /// The compiled pipeline for `entry` of `shader` with the given
    /// compile-time constants and pipeline overrides; compiled once, then cached.
    pub fn pipeline(
        &self,
        shader: &Shader,
        entry: &str,
        consts: &[(String, String)],
        overrides: &[(String, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key: PipelineKey = (
            shader.name,
            entry.to_string(),
            consts.to_vec(),
            overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.to_bits()))
                .collect(),
        );
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| Error::Gpu("poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let shader_error = |message: String| Error::Shader {
            shader: shader.name.to_string(),
            entry: entry.to_string(),
            message,
        };
        let source = shader.specialize(consts).map_err(shader_error)?;
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(source),
            });
        let constants: Vec<(&str, f64)> = overrides.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&format!("{}::{entry}", shader.name)),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    ..Default::default()
                },
                cache: None,
            });
        self.take_error().map_err(|e| shader_error(e.to_string()))?;
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_says_what_to_do_and_a_lost_device_is_reported_first() {
        let oom = wgpu::Error::OutOfMemory {
            source: Box::new(std::io::Error::other("vkAllocateMemory failed")),
        };
        let err = Fault::from_wgpu(&oom)
            .into_error()
            .during("allocating 'logits' (1 bytes)")
            .to_string();
        assert!(
            err.starts_with("the GPU ran out of memory (allocating 'logits'")
                && err.ends_with("use a smaller batch, sequence or model"),
            "{err}"
        );
        let faults = [
            Fault::Other("validation".into()),
            Fault::OutOfMemory("oom".into()),
            Fault::Lost("Unknown".into()),
            Fault::Lost("later".into()),
        ];
        assert_eq!(Fault::worst(&faults), Some(2));
        assert_eq!(Fault::worst(&faults[..2]), Some(1));
        assert_eq!(Fault::worst(&[]), None);
        let validation = wgpu::Error::Validation {
            source: Box::new(std::io::Error::other("inner")),
            description: "Validation Error\n\nCaused by:\n  In Buffer::map_async\n".into(),
        };
        let err = Fault::from_wgpu(&validation).into_error().to_string();
        assert_eq!(
            err,
            "GPU error: Validation Error Caused by: In Buffer::map_async"
        );
    }
}
