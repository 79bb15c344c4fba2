//! Tensors packed into a few shared buffers. The parameters, their
//! gradients and the AdamW moments each live in one buffer per chunk, laid
//! out alike, so that one dispatch updates or reduces a whole chunk of
//! tensors: a WebGPU shader binds at most 8 storage buffers, so tensors in
//! buffers of their own cost a dispatch each.

use super::{DType, Gpu, Tensor};
use crate::{Error, Result};

/// Where each f32 tensor of a set lives: a chunk (one buffer of at most the
/// adapter's binding size) and a byte offset in it, a multiple of the
/// adapter's storage offset alignment. Tensors are placed group by group
/// (group 0 first), so each group's tensors in a chunk form one span.
#[derive(Clone, Debug, PartialEq)]
pub struct Packing {
    /// (chunk, byte offset) per tensor, in the order given.
    pub places: Vec<(usize, u64)>,
    /// Bytes of each chunk.
    pub chunk_bytes: Vec<u64>,
    /// The byte range of each group's tensors in each chunk, padding
    /// between them included.
    pub spans: Vec<Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub chunk: usize,
    pub group: usize,
    pub start: u64,
    pub end: u64,
}

impl Packing {
    /// Tensors of (name, f32 elements, group), each in its own binding of
    /// at most `max_chunk` bytes (the error names the tensor that is not).
    pub fn new(tensors: &[(&str, usize, usize)], align: u64, max_chunk: u64) -> Result<Packing> {
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| tensors[i].2);
        let mut places = vec![(0, 0); tensors.len()];
        let (mut chunk_bytes, mut spans) = (Vec::new(), Vec::<Span>::new());
        let (mut chunk, mut offset, mut end) = (0, 0u64, 0u64);
        for i in order {
            let (name, len, group) = tensors[i];
            let size = DType::F32.binding_bytes(len);
            if size > max_chunk {
                return Err(Error::BufferTooLarge {
                    name: name.to_string(),
                    bytes: DType::F32.bytes_for(len),
                    limit: max_chunk,
                    limit_name: "max_storage_buffer_binding_size",
                });
            }
            if offset > 0 && offset + size > max_chunk {
                chunk_bytes.push(end);
                (chunk, offset) = (chunk + 1, 0);
            }
            places[i] = (chunk, offset);
            end = offset + size;
            match spans.last_mut() {
                Some(s) if s.chunk == chunk && s.group == group => s.end = end,
                _ => spans.push(Span {
                    chunk,
                    group,
                    start: offset,
                    end,
                }),
            }
            offset = end.div_ceil(align) * align;
        }
        chunk_bytes.push(end.max(16));
        Ok(Packing {
            places,
            chunk_bytes,
            spans,
        })
    }
}

/// A packed set of tensors: its chunks' buffers and a view of each tensor.
#[derive(Clone, Debug)]
pub struct Packed {
    pub chunks: Vec<Tensor>,
    pub tensors: Vec<Tensor>,
}

impl Packed {
    /// The view of `span` (its tensors and the padding between them) as one
    /// flat tensor.
    pub fn span(&self, span: &Span) -> Tensor {
        let chunk = &self.chunks[span.chunk];
        let len = ((span.end - span.start) / 4) as usize;
        chunk.range(&format!("{} span", chunk.name()), span.start, &[len])
    }
}

impl Gpu {
    /// Zero-filled buffers laid out by `packing`, and a view per tensor
    /// named `prefix.NAME` with its shape.
    pub fn packed(
        &self,
        prefix: &str,
        tensors: &[(&str, &[usize])],
        packing: &Packing,
    ) -> Result<Packed> {
        let chunks = packing
            .chunk_bytes
            .iter()
            .enumerate()
            .map(|(c, &bytes)| {
                self.zeros(
                    &format!("{prefix}[{c}]"),
                    &[(bytes / 4) as usize],
                    DType::F32,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let tensors = tensors
            .iter()
            .zip(&packing.places)
            .map(|((name, shape), &(chunk, offset))| {
                chunks[chunk].range(&format!("{prefix}.{name}"), offset, shape)
            })
            .collect();
        Ok(Packed { chunks, tensors })
    }

    /// The packing of f32 tensors of (name, elements, group) on this adapter.
    pub fn packing(&self, tensors: &[(&str, usize, usize)]) -> Result<Packing> {
        let limits = &self.limits;
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(16);
        let max_chunk = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        Packing::new(tensors, align, max_chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_contiguous_aligned_and_split_into_chunks() {
        // Sizes 16, 48, 16 and 400 bytes; groups 1, 0, 1, 0; alignment 64.
        let tensors = [("a", 3, 1), ("b", 12, 0), ("c", 1, 1), ("d", 100, 0)];
        let p = Packing::new(&tensors, 64, 1024).unwrap();
        assert_eq!(p.places, vec![(0, 512), (0, 0), (0, 576), (0, 64)]);
        assert_eq!(p.chunk_bytes, vec![592]);
        let span = |group, start, end| Span {
            chunk: 0,
            group,
            start,
            end,
        };
        assert_eq!(p.spans, vec![span(0, 0, 464), span(1, 512, 592)]);
        // A chunk of 512 bytes holds the first three; the last starts another.
        let p = Packing::new(&tensors, 64, 512).unwrap();
        assert_eq!(p.places, vec![(1, 0), (0, 0), (1, 64), (0, 64)]);
        assert_eq!(p.chunk_bytes, vec![464, 80]);
        let err = Packing::new(&[("big", 200, 0)], 64, 512)
            .unwrap_err()
            .to_string();
        assert!(err.contains("big"), "{err}");
    }
}
