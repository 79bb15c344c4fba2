//! Checkpoint files: tensors in safetensors form (loadable by PyTorch's
//! `safetensors.torch.load_file`), and crash-safe directory writes.
//!
//! A checkpoint directory holds `model.safetensors` (weights),
//! `optimizer.safetensors` (AdamW moments, when training state is kept),
//! `config.json`, `tokenizer.json` and `state.json` (step, loss scale, …).
//! It is written as a whole into a sibling temporary directory, every file
//! fsync'd, then swapped in by renames, so a crash at any point leaves either
//! the old or the new checkpoint complete, never a mix.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Error, Result};

/// A named f32 tensor on the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The element type tensors are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreAs {
    F32,
    /// Half the size; for shipped weights (read back as f32).
    F16,
}

/// Serialises tensors (and string metadata) into safetensors bytes.
pub fn encode(
    tensors: &[NamedTensor],
    store: StoreAs,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| match store {
            StoreAs::F32 => bytemuck::cast_slice(&t.data).to_vec(),
            StoreAs::F16 => t
                .data
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
        })
        .collect();
    let dtype = match store {
        StoreAs::F32 => Dtype::F32,
        StoreAs::F16 => Dtype::F16,
    };
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(dtype, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::Invalid(format!("tensor '{}': {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Invalid(format!("serialising tensors: {e}")))?;
    Ok(canonical_header(bytes))
}

/// The same file with its JSON header's keys sorted. `safetensors` writes
/// the metadata from a `HashMap`, whose order differs from process to
/// process; sorted, the same tensors always give the same bytes, so a
/// resumed run's checkpoint is byte-identical to an uninterrupted run's.
/// Sorting keeps the header's length (the same JSON, reordered), and the
/// tensors' offsets do not depend on key order.
fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let Ok(mut header) = serde_json::from_slice::<serde_json::Value>(&bytes[8..8 + n]) else {
        return bytes;
    };
    if let Some(map) = header.as_object_mut() {
        map.sort_keys();
        if let Some(meta) = map.get_mut("__metadata__").and_then(|m| m.as_object_mut()) {
            meta.sort_keys();
        }
    }
    let mut sorted = serde_json::to_vec(&header).expect("a JSON value serialises");
    if sorted.len() > n {
        return bytes;
    }
    // safetensors pads the header with spaces to an 8-byte boundary.
    sorted.resize(n, b' ');
    bytes[8..8 + n].copy_from_slice(&sorted);
    bytes
}

/// Parses safetensors bytes from `origin` into f32 tensors (f32, f16 and
/// bf16 are accepted) and the metadata. Hostile or damaged files (bad header
/// lengths, offsets outside the file, other dtypes, non-finite values) are
/// errors naming `origin`.
pub fn decode(bytes: &[u8], origin: &str) -> Result<(Vec<NamedTensor>, HashMap<String, String>)> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::file(origin, format!("not a valid safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::file(origin, format!("not a valid safetensors file: {e}")))?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::file(
                    origin,
                    format!("tensor '{name}' has dtype {other:?}; expected F32, F16 or BF16"),
                ));
            }
        };
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(Error::file(
                origin,
                format!(
                    "tensor '{name}' holds a non-finite value ({}) at index {i}",
                    data[i]
                ),
            ));
        }
        tensors.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tensors, metadata))
}

#[cfg(not(target_arch = "wasm32"))]
pub use fs::*;

#[cfg(not(target_arch = "wasm32"))]
mod fs {
    use std::fs::{self, File};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use crate::{Error, Result};

    fn sibling(dir: &Path, suffix: &str) -> PathBuf {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "checkpoint".into());
        dir.with_file_name(format!(".{name}.{suffix}"))
    }

    fn sync_dir(dir: &Path) -> Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::file(dir, format!("cannot sync the directory: {e}")))
    }

    /// Writes `files` (name, bytes) as the directory `dir`, replacing any
    /// previous contents atomically (see the module documentation).
    pub fn write_dir(dir: &Path, files: &[(&str, &[u8])]) -> Result<()> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .map_err(|e| Error::file(&parent, format!("cannot create the directory: {e}")))?;
        let tmp = sibling(dir, "tmp");
        let old = sibling(dir, "old");
        let io =
            |path: &Path, what: &str, e: std::io::Error| Error::file(path, format!("{what}: {e}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .map_err(|e| io(&tmp, "cannot remove a stale temporary checkpoint", e))?;
        }
        fs::create_dir(&tmp).map_err(|e| io(&tmp, "cannot create the temporary checkpoint", e))?;
        for (name, bytes) in files {
            let path = tmp.join(name);
            let mut f = File::create(&path).map_err(|e| io(&path, "cannot create", e))?;
            f.write_all(bytes)
                .map_err(|e| io(&path, "cannot write", e))?;
            f.sync_all().map_err(|e| io(&path, "cannot sync", e))?;
        }
        sync_dir(&tmp)?;
        if dir.exists() {
            if old.exists() {
                fs::remove_dir_all(&old).map_err(|e| io(&old, "cannot remove", e))?;
            }
            fs::rename(dir, &old)
                .map_err(|e| io(dir, "cannot move the previous checkpoint aside", e))?;
        }
        fs::rename(&tmp, dir)
            .map_err(|e| io(dir, "cannot move the new checkpoint into place", e))?;
        sync_dir(&parent)?;
        if old.exists() {
            fs::remove_dir_all(&old)
                .map_err(|e| io(&old, "cannot remove the previous checkpoint", e))?;
        }
        Ok(())
    }

    /// The directory to read a checkpoint from: `dir`, or its previous
    /// version if a crash interrupted the swap in [`write_dir`].
    pub fn resolve_dir(dir: &Path) -> Result<PathBuf> {
        if dir.is_dir() {
            return Ok(dir.to_path_buf());
        }
        let old = sibling(dir, "old");
        if old.is_dir() {
            return Ok(old);
        }
        Err(Error::file(
            dir,
            "no checkpoint here (expected a directory with model.safetensors, config.json, tokenizer.json)",
        ))
    }

    /// Reads `name` inside the checkpoint directory `dir`.
    pub fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
        let path = dir.join(name);
        fs::read(&path).map_err(|e| Error::file(&path, format!("cannot read: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<NamedTensor> {
        vec![
            NamedTensor {
                name: "a.weight".into(),
                shape: vec![2, 3],
                data: vec![1.0, -2.5, 3.25, 0.0, 1e-3, 7.0],
            },
            NamedTensor {
                name: "b".into(),
                shape: vec![1],
                data: vec![0.5],
            },
        ]
    }

    #[test]
    fn f32_round_trip_is_exact_and_keeps_metadata() {
        let meta = HashMap::from([("step".to_string(), "12".to_string())]);
        let bytes = encode(&sample(), StoreAs::F32, meta.clone()).unwrap();
        let (back, m) = decode(&bytes, "x").unwrap();
        assert_eq!(back, sample());
        assert_eq!(m, meta);
    }

    #[test]
    fn encoding_is_deterministic_whatever_the_metadata_order() {
        // Every HashMap has its own random hasher, so its own order.
        let meta = || -> HashMap<String, String> {
            (0..16).map(|i| (format!("k{i}"), i.to_string())).collect()
        };
        let first = encode(&sample(), StoreAs::F32, meta()).unwrap();
        for _ in 0..8 {
            assert_eq!(encode(&sample(), StoreAs::F32, meta()).unwrap(), first);
        }
        let (back, m) = decode(&first, "x").unwrap();
        assert_eq!((back, m), (sample(), meta()));
    }

    #[test]
    fn f16_round_trip_is_close() {
        let bytes = encode(&sample(), StoreAs::F16, HashMap::new()).unwrap();
        let (back, _) = decode(&bytes, "x").unwrap();
        for (a, b) in back.iter().zip(sample()) {
            for (x, y) in a.data.iter().zip(&b.data) {
                assert!((x - y).abs() <= 1e-3 * y.abs().max(1e-3));
            }
        }
    }

    #[test]
    fn damaged_files_are_errors_naming_the_file() {
        let bytes = encode(&sample(), StoreAs::F32, HashMap::new()).unwrap();
        for bad in [&bytes[..5], &bytes[..bytes.len() - 4], &[0xff; 16][..]] {
            let err = decode(bad, "ckpt/model.safetensors")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("ckpt/model.safetensors: not a valid safetensors file"),
                "{err}"
            );
        }
        let mut nan = sample();
        nan[1].data[0] = f32::NAN;
        let bytes = encode(&nan, StoreAs::F32, HashMap::new()).unwrap();
        assert!(
            decode(&bytes, "m")
                .unwrap_err()
                .to_string()
                .contains("non-finite")
        );
    }

    #[test]
    fn directory_swap_replaces_and_recovers() {
        let root = std::env::temp_dir().join(format!("samnet-ckpt-{}", std::process::id()));
        let dir = root.join("run");
        write_dir(&dir, &[("a.txt", b"one")]).unwrap();
        write_dir(&dir, &[("a.txt", b"two")]).unwrap();
        assert_eq!(
            read_file(&resolve_dir(&dir).unwrap(), "a.txt").unwrap(),
            b"two"
        );
        // A crash between the two renames leaves only the previous version.
        std::fs::rename(&dir, root.join(".run.old")).unwrap();
        assert_eq!(
            read_file(&resolve_dir(&dir).unwrap(), "a.txt").unwrap(),
            b"two"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
