use super::Gpu;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    /// Two halves per 32-bit word; only used where the adapter has SHADER_F16.
    F16,
}

impl DType {
    pub fn bytes_for(self, elements: usize) -> u64 {
        match self {
            DType::F32 | DType::U32 => 4 * elements as u64,
            DType::F16 => 2 * elements as u64,
        }
    }

    /// The bytes `elements` take in a binding: bindings must be non-empty
    /// and a multiple of 4 bytes, and every buffer and packed range is
    /// padded to 16.
    pub fn binding_bytes(self, elements: usize) -> u64 {
        self.bytes_for(elements).max(16).div_ceil(16) * 16
    }
}

/// A GPU storage buffer, or a range of one (see [`Gpu::packed`]), with a
/// name, a shape and an element type. Cloning is cheap and shares the buffer.
#[derive(Clone, Debug)]
pub struct Tensor {
    buffer: wgpu::Buffer,
    /// Where the elements start in `buffer`, in bytes.
    offset: u64,
    name: String,
    shape: Vec<usize>,
    dtype: DType,
}

impl Tensor {
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// The bytes a kernel binds: the elements, padded as every buffer is.
    pub fn binding_size(&self) -> u64 {
        self.dtype.binding_bytes(self.len())
    }
    /// The storage binding of the tensor's range.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.binding_size()),
        })
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A view of `shape` f32 elements starting `offset` bytes into this
    /// tensor's range (which must hold it), sharing the buffer.
    pub(crate) fn range(&self, name: &str, offset: u64, shape: &[usize]) -> Tensor {
        let view = Tensor {
            buffer: self.buffer.clone(),
            offset: self.offset + offset,
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype: DType::F32,
        };
        debug_assert!(
            offset + view.binding_size() <= self.binding_size(),
            "{name} outside {}",
            self.name
        );
        view
    }
    /// Bytes holding the elements (the buffer may be padded beyond this).
    pub fn bytes(&self) -> u64 {
        self.dtype.bytes_for(self.len())
    }
}

impl Gpu {
    /// A zero-filled tensor. Fails with a message naming the tensor when it
    /// exceeds the device's buffer limits.
    pub fn zeros(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let elements: usize = shape.iter().product();
        let bytes = dtype.bytes_for(elements);
        let size = dtype.binding_bytes(elements);
        let limits = &self.limits;
        if size > limits.max_storage_buffer_binding_size {
            return Err(Error::BufferTooLarge {
                name: name.to_string(),
                bytes,
                limit: limits.max_storage_buffer_binding_size,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        if size > limits.max_buffer_size {
            return Err(Error::BufferTooLarge {
                name: name.to_string(),
                bytes,
                limit: limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.take_error()
            .map_err(|e| e.during(format!("allocating '{name}' ({bytes} bytes)")))?;
        self.count_allocation(size);
        Ok(Tensor {
            buffer,
            offset: 0,
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype,
        })
    }

    pub fn upload_f32(&self, name: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = self.zeros(name, shape, DType::F32)?;
        self.write_f32(&t, data)?;
        Ok(t)
    }

    pub fn upload_u32(&self, name: &str, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        let t = self.zeros(name, shape, DType::U32)?;
        self.write_u32(&t, data)?;
        Ok(t)
    }

    pub fn write_f32(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        self.write_words(t, bytemuck::cast_slice(data), data.len(), DType::F32)
    }

    pub fn write_u32(&self, t: &Tensor, data: &[u32]) -> Result<()> {
        self.write_words(t, bytemuck::cast_slice(data), data.len(), DType::U32)
    }

    fn write_words(&self, t: &Tensor, bytes: &[u8], len: usize, dtype: DType) -> Result<()> {
        if t.dtype != dtype || t.len() != len {
            return Err(Error::shape(
                "write",
                format!(
                    "'{}' is {:?} {:?}, data is {dtype:?} with {len} elements",
                    t.name, t.dtype, t.shape
                ),
            ));
        }
        if !bytes.is_empty() {
            self.queue.write_buffer(&t.buffer, t.offset, bytes);
        }
        Ok(())
    }

    /// A mappable copy of the first `size` bytes of `t`, queued behind the
    /// work already submitted.
    fn copy_to_staging(&self, t: &Tensor, size: u64, label: &str) -> wgpu::Buffer {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&t.buffer, t.offset, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        staging
    }

    /// Reads a tensor back. Works on every platform (the browser included),
    /// because it only resolves once the map callback has run.
    pub async fn read_bytes(&self, t: &Tensor) -> Result<Vec<u8>> {
        let size = t.bytes().div_ceil(4) * 4;
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.copy_to_staging(t, size, "readback");
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        let reading = |e: Error| e.during(format!("reading '{}'", t.name));
        self.wait_idle().map_err(reading)?;
        let mapped = rx.await;
        // A lost device also fails the mapping; report the loss, not that.
        self.take_error().map_err(reading)?;
        mapped
            .map_err(|_| Error::Gpu(format!("reading '{}': map callback dropped", t.name)))?
            .map_err(|e| Error::Gpu(format!("reading '{}': {e}", t.name)))?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("reading '{}': {e:?}", t.name)))?
            .to_vec();
        staging.unmap();
        self.take_error()?;
        Ok(data)
    }

    pub async fn read_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(t).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes[..4 * t.len()]))
    }

    pub async fn read_u32(&self, t: &Tensor) -> Result<Vec<u32>> {
        let bytes = self.read_bytes(t).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes[..4 * t.len()]))
    }
}

/// A readback in flight: a copy queued behind the work already submitted,
/// mapped without waiting (see [`Gpu::read_f32_later`]).
pub struct PendingRead {
    staging: wgpu::Buffer,
    name: String,
    len: usize,
    mapped:
        std::sync::Arc<std::sync::Mutex<Option<std::result::Result<(), wgpu::BufferAsyncError>>>>,
}

impl Gpu {
    /// Starts reading `t` as it will be once the work submitted so far has
    /// run; nothing waits. Collect it with [`Gpu::try_read`].
    pub fn read_f32_later(&self, t: &Tensor) -> PendingRead {
        let size = (t.bytes().div_ceil(4) * 4).max(4);
        let staging = self.copy_to_staging(t, size, "readback (deferred)");
        let mapped = std::sync::Arc::new(std::sync::Mutex::new(None));
        let sink = mapped.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            if let Ok(mut slot) = sink.lock() {
                *slot = Some(r);
            }
        });
        PendingRead {
            staging,
            name: t.name.clone(),
            len: t.len(),
            mapped,
        }
    }

    /// The values of a [`PendingRead`] if the GPU has got there, else None;
    /// with `wait`, blocks until it has.
    pub fn try_read(&self, pending: &PendingRead, wait: bool) -> Result<Option<Vec<f32>>> {
        let poll = if wait {
            wgpu::PollType::wait_indefinitely()
        } else {
            wgpu::PollType::Poll
        };
        let reading = |e: Error| e.during(format!("reading '{}'", pending.name));
        let polled = self.poll(poll).map_err(reading)?;
        if let Err(e) = self.take_error() {
            // A lost device shows first through the errors it causes; a
            // blocking poll runs its callback, so the loss is what is reported.
            let _ = self.poll(wgpu::PollType::wait_indefinitely());
            let lost = self
                .take_error()
                .err()
                .filter(|l| matches!(l, Error::DeviceLost(_)));
            return Err(reading(lost.unwrap_or(e)));
        }
        polled.map_err(|e| Error::Gpu(format!("reading '{}': {e}", pending.name)))?;
        let state = pending
            .mapped
            .lock()
            .map_err(|_| Error::Gpu("poisoned".into()))?
            .clone();
        match state {
            None => Ok(None),
            Some(Err(e)) => Err(Error::Gpu(format!("reading '{}': {e}", pending.name))),
            Some(Ok(())) => {
                let bytes = pending
                    .staging
                    .get_mapped_range(..)
                    .map_err(|e| Error::Gpu(format!("reading '{}': {e:?}", pending.name)))?
                    .to_vec();
                pending.staging.unmap();
                Ok(Some(bytemuck::pod_collect_to_vec(
                    &bytes[..4 * pending.len],
                )))
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Gpu {
    pub fn read_f32_blocking(&self, t: &Tensor) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32(t))
    }
    pub fn read_u32_blocking(&self, t: &Tensor) -> Result<Vec<u32>> {
        pollster::block_on(self.read_u32(t))
    }
}
