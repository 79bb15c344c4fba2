use super::{Gpu, Shader, Tensor};
use crate::{Error, Result};

/// One word of a kernel's uniform `Params`.
pub trait ParamWord {
    fn word(self) -> u32;
}
impl ParamWord for u32 {
    fn word(self) -> u32 {
        self
    }
}
impl ParamWord for usize {
    fn word(self) -> u32 {
        u32::try_from(self).expect("kernel parameter exceeds u32")
    }
}
impl ParamWord for i32 {
    fn word(self) -> u32 {
        self as u32
    }
}
impl ParamWord for f32 {
    fn word(self) -> u32 {
        self.to_bits()
    }
}
impl ParamWord for bool {
    fn word(self) -> u32 {
        self as u32
    }
}

/// Workgroup counts for `n` workgroups over a 1-D problem, folded into y when
/// n exceeds the 65,535-per-dimension limit. Shaders recover the flat index as
/// `wid.y * nwg.x + wid.x` and bounds-check it.
pub fn grid_1d(n: usize) -> [u32; 3] {
    const MAX: usize = 65_535;
    let n = n.max(1);
    if n <= MAX {
        [n as u32, 1, 1]
    } else {
        [MAX as u32, n.div_ceil(MAX) as u32, 1]
    }
}

/// A kernel invocation being put together: shader entry, compile-time
/// constants, uniform parameters (binding 0) and storage bindings.
pub struct KernelCall<'a> {
    gpu: &'a Gpu,
    shader: &'a Shader,
    entry: &'a str,
    consts: Vec<(String, String)>,
    overrides: Vec<(String, f64)>,
    params: Vec<u32>,
    bindings: Vec<(u32, &'a Tensor)>,
}

impl Gpu {
    pub fn call<'a>(&'a self, shader: &'a Shader, entry: &'a str) -> KernelCall<'a> {
        KernelCall {
            gpu: self,
            shader,
            entry,
            consts: Vec::new(),
            overrides: Vec::new(),
            params: Vec::new(),
            bindings: Vec::new(),
        }
    }
}

impl<'a> KernelCall<'a> {
    /// Re-values a module-scope `const` of the shader (a compile-time switch).
    pub fn constant(mut self, name: &str, value: impl ToString) -> Self {
        self.consts.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets a pipeline-overridable constant (`override NAME ...`).
    pub fn override_const(mut self, name: &str, value: f64) -> Self {
        self.overrides.push((name.to_string(), value));
        self
    }

    pub fn params(mut self, words: Vec<u32>) -> Self {
        self.params = words;
        self
    }

    pub fn bind(mut self, binding: u32, tensor: &'a Tensor) -> Self {
        self.bindings.push((binding, tensor));
        self
    }

    pub fn dispatch(self, groups: [u32; 3]) -> Result<Dispatch> {
        let max = self.gpu.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Invalid(format!(
                "{}::{} needs {groups:?} workgroups; at most {max} per dimension",
                self.shader.name, self.entry
            )));
        }
        let pipeline = self
            .gpu
            .pipeline(self.shader, self.entry, &self.consts, &self.overrides)?;
        let device = &self.gpu.device;
        let uniform = (!self.params.is_empty()).then(|| {
            let mut words = self.params.clone();
            words.resize(words.len().div_ceil(4) * 4, 0);
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: 4 * words.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: true,
            });
            buffer
                .slice(..)
                .get_mapped_range_mut()
                .expect("freshly mapped buffer")
                .copy_from_slice(bytemuck::cast_slice(&words));
            buffer.unmap();
            buffer
        });
        let mut entries: Vec<wgpu::BindGroupEntry> = Vec::with_capacity(self.bindings.len() + 1);
        if let Some(u) = &uniform {
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: u.as_entire_binding(),
            });
        }
        for (binding, tensor) in &self.bindings {
            entries.push(wgpu::BindGroupEntry {
                binding: *binding,
                resource: tensor.binding(),
            });
        }
        let label = format!("{}::{}", self.shader.name, self.entry);
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.gpu.take_error().map_err(|e| Error::Shader {
            shader: self.shader.name.to_string(),
            entry: self.entry.to_string(),
            message: format!("binding failed: {e}"),
        })?;
        Ok(Dispatch {
            label,
            pipeline,
            bind_group,
            groups,
        })
    }
}

/// A compute dispatch with everything bound; created once, recorded any
/// number of times.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.groups;
        pass.dispatch_workgroups(x, y, z);
    }
}

#[derive(Clone, Debug)]
pub enum Command {
    Dispatch(Dispatch),
    /// Copies all of `src` into `dst` (same byte size).
    Copy {
        src: Tensor,
        dst: Tensor,
    },
    /// Fills a tensor with zero bytes.
    Zero(Tensor),
}

impl From<Dispatch> for Command {
    fn from(d: Dispatch) -> Self {
        Command::Dispatch(d)
    }
}

/// A recorded sequence of GPU work: built once (per config), then replayed by
/// recording it into a command encoder, e.g. once per training step.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub commands: Vec<Command>,
}

impl Program {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, command: impl Into<Command>) {
        self.commands.push(command.into());
    }

    /// Appends every command in order (ops that record several dispatches).
    pub fn push_all<C: Into<Command>>(&mut self, commands: impl IntoIterator<Item = C>) {
        self.commands.extend(commands.into_iter().map(Into::into));
    }

    pub fn extend(&mut self, other: Program) {
        self.commands.extend(other.commands);
    }

    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.commands.iter().filter_map(|c| match c {
            Command::Dispatch(d) => Some(d),
            _ => None,
        })
    }

    /// Records the whole program; consecutive dispatches share one compute pass.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut i = 0;
        while i < self.commands.len() {
            match &self.commands[i] {
                Command::Dispatch(_) => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: None,
                    });
                    while let Some(Command::Dispatch(d)) = self.commands.get(i) {
                        d.record(&mut pass);
                        i += 1;
                    }
                }
                Command::Copy { src, dst } => {
                    let (from, to) = (src.offset(), dst.offset());
                    encoder.copy_buffer_to_buffer(
                        src.buffer(),
                        from,
                        dst.buffer(),
                        to,
                        src.bytes(),
                    );
                    i += 1;
                }
                Command::Zero(t) => {
                    encoder.clear_buffer(t.buffer(), t.offset(), Some(t.binding_size()));
                    i += 1;
                }
            }
        }
    }
}

impl Gpu {
    /// Records all programs into one command encoder and submits it once.
    pub fn submit(&self, programs: &[&Program]) -> wgpu::SubmissionIndex {
        self.queue.submit([self.encode(programs)])
    }

    /// Records `programs` into one command buffer (the CPU's share of a
    /// submission; `samnet bench train` times it).
    pub fn encode(&self, programs: &[&Program]) -> wgpu::CommandBuffer {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("samnet"),
            });
        for p in programs {
            p.record(&mut encoder);
        }
        encoder.finish()
    }

    /// Submits and waits, then reports any GPU error.
    pub fn run(&self, programs: &[&Program]) -> Result<()> {
        self.submit(programs);
        self.wait_idle()?;
        self.take_error()
    }

    /// Runs one dispatch to completion (tests, one-off work).
    pub fn run_dispatch(&self, dispatch: Dispatch) -> Result<()> {
        let mut p = Program::new();
        p.push(dispatch);
        self.run(&[&p])
    }
}
