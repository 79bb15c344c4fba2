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
    /// A quarter of the size: every matrix as int8 with one f32 scale per row
    /// (`NAME.scale`, shape (rows), max |row| / 127, so a value is off by at
    /// most half its row's scale); vectors as f16.
    Int8,
}

/// The companion of an int8 matrix: its per-row scales.
pub const INT8_SCALE_SUFFIX: &str = ".scale";

/// One stored tensor: name, dtype, shape, little-endian bytes.
type Stored = (String, Dtype, Vec<usize>, Vec<u8>);

fn f16_bytes(data: &[f32]) -> Vec<u8> {
    data.iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect()
}

/// Per-row symmetric int8: (values, scales).
fn quantize_rows(data: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut scales = Vec::with_capacity(data.len() / cols.max(1));
    let mut values = Vec::with_capacity(data.len());
    for row in data.chunks(cols.max(1)) {
        let scale = row.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
        scales.push(scale);
        values.extend(row.iter().map(|&x| {
            if scale > 0.0 {
                (x / scale).round().clamp(-127.0, 127.0) as i8
            } else {
                0
            }
        }));
    }
    (values, scales)
}

fn stored(t: &NamedTensor, store: StoreAs) -> Vec<Stored> {
    let entry = |name: String, dtype, shape: &[usize], bytes| (name, dtype, shape.to_vec(), bytes);
    match store {
        StoreAs::F32 => {
            let bytes = bytemuck::cast_slice(&t.data).to_vec();
            vec![entry(t.name.clone(), Dtype::F32, &t.shape, bytes)]
        }
        StoreAs::Int8 if t.shape.len() == 2 => {
            let (values, scales) = quantize_rows(&t.data, t.shape[1]);
            vec![
                entry(
                    t.name.clone(),
                    Dtype::I8,
                    &t.shape,
                    bytemuck::cast_slice(&values).to_vec(),
                ),
                entry(
                    format!("{}{INT8_SCALE_SUFFIX}", t.name),
                    Dtype::F32,
                    &t.shape[..1],
                    bytemuck::cast_slice(&scales).to_vec(),
                ),
            ]
        }
        StoreAs::F16 | StoreAs::Int8 => {
            vec![entry(
                t.name.clone(),
                Dtype::F16,
                &t.shape,
                f16_bytes(&t.data),
            )]
        }
    }
}

/// Serialises tensors (and string metadata) into safetensors bytes.
pub fn encode(
    tensors: &[NamedTensor],
    store: StoreAs,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let entries: Vec<Stored> = tensors.iter().flat_map(|t| stored(t, store)).collect();
    let views = entries
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Invalid(format!("tensor '{name}': {e}")))
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

/// Parses safetensors bytes from `origin` into f32 tensors (f32, f16, bf16
/// and int8 matrices with their per-row scales are accepted) and the
/// metadata. Hostile or damaged files (bad header lengths, offsets outside
/// the file, other dtypes, an int8 matrix without its scales, non-finite
/// values) are errors naming `origin`.
pub fn decode(bytes: &[u8], origin: &str) -> Result<(Vec<NamedTensor>, HashMap<String, String>)> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::file(origin, format!("not a valid safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::file(origin, format!("not a valid safetensors file: {e}")))?;
    let views: HashMap<String, TensorView> = st.tensors().into_iter().collect();
    let int8_scale = |name: &str| {
        name.strip_suffix(INT8_SCALE_SUFFIX)
            .and_then(|m| views.get(m))
            .is_some_and(|v| v.dtype() == Dtype::I8)
    };
    let mut tensors = Vec::new();
    for (name, view) in &views {
        if int8_scale(name) {
            continue;
        }
        let data = match view.dtype() {
            Dtype::I8 => dequantize(&views, name, view, origin)?,
            _ => floats(name, view, origin)?,
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
            name: name.clone(),
            shape: view.shape().to_vec(),
            data,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tensors, metadata))
}

fn floats(name: &str, view: &TensorView, origin: &str) -> Result<Vec<f32>> {
    let raw = view.data();
    Ok(match view.dtype() {
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
                format!("tensor '{name}' has dtype {other:?}; expected F32, F16, BF16 or I8"),
            ));
        }
    })
}

/// An int8 matrix times its per-row scales (`NAME.scale`, f32 or f16, shape (rows)).
fn dequantize(
    views: &HashMap<String, TensorView>,
    name: &str,
    view: &TensorView,
    origin: &str,
) -> Result<Vec<f32>> {
    let shape = view.shape();
    let scale_name = format!("{name}{INT8_SCALE_SUFFIX}");
    let scales = match views.get(&scale_name) {
        Some(s) if shape.len() == 2 && s.shape() == [shape[0]] => floats(&scale_name, s, origin)?,
        Some(s) => {
            return Err(Error::file(
                origin,
                format!(
                    "int8 tensor '{name}' {shape:?} has scales '{scale_name}' {:?}; expected [{}] (one per row of a matrix)",
                    s.shape(),
                    shape.first().copied().unwrap_or(0)
                ),
            ));
        }
        None => {
            return Err(Error::file(
                origin,
                format!("int8 tensor '{name}' has no per-row scales '{scale_name}'"),
            ));
        }
    };
    let cols = shape[1].max(1);
    Ok(view
        .data()
        .iter()
        .enumerate()
        .map(|(i, &q)| q as i8 as f32 * scales[i / cols])
        .collect())
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

    /// Matrices come back within half a row's scale (max |row| / 127), a
    /// zero row exactly; vectors as f16; the file is about a quarter of f32's.
    #[test]
    fn int8_round_trip_is_within_half_a_step_per_row() {
        let mut rng = crate::rng::Rng::new(5);
        let mut big = NamedTensor {
            name: "w.weight".into(),
            shape: vec![7, 33],
            data: (0..7 * 33).map(|_| rng.normal() as f32).collect(),
        };
        big.data[33..66].fill(0.0);
        let mut tensors = sample();
        tensors.push(big.clone());
        let bytes = encode(&tensors, StoreAs::Int8, HashMap::new()).unwrap();
        let (back, _) = decode(&bytes, "x").unwrap();
        assert_eq!(
            back.iter().map(|t| &t.name).collect::<Vec<_>>(),
            ["a.weight", "b", "w.weight"],
            "the scales are folded back in"
        );
        let got = &back[2];
        assert_eq!(got.shape, big.shape);
        for (r, (row, want)) in got.data.chunks(33).zip(big.data.chunks(33)).enumerate() {
            let step = want.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
            for (x, y) in row.iter().zip(want) {
                assert!(
                    (x - y).abs() <= 0.5 * step * (1.0 + 1e-6),
                    "row {r}: {x} vs {y}"
                );
            }
        }
        assert!(got.data[33..66].iter().all(|&x| x == 0.0));
        assert_eq!(back[1].data, [0.5]);
        let f32_size = encode(&[big.clone()], StoreAs::F32, HashMap::new())
            .unwrap()
            .len();
        let int8_size = encode(&[big], StoreAs::Int8, HashMap::new()).unwrap().len();
        assert!(int8_size * 2 < f32_size, "{int8_size} vs {f32_size}");
    }

    #[test]
    fn an_int8_matrix_without_its_scales_is_named() {
        let values = [1i8, -2, 3, 4];
        let bytes = |scale_shape: Option<Vec<usize>>| {
            let mut views = vec![(
                "m".to_string(),
                TensorView::new(Dtype::I8, vec![2, 2], bytemuck::cast_slice(&values)).unwrap(),
            )];
            let scales = [0.5f32; 3];
            if let Some(shape) = &scale_shape {
                let n = shape.iter().product::<usize>() * 4;
                let data = &bytemuck::cast_slice(&scales)[..n];
                views.push((
                    "m.scale".into(),
                    TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
                ));
            }
            safetensors::serialize(views, None).unwrap()
        };
        let err = decode(&bytes(None), "f.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f.safetensors") && err.contains("no per-row scales 'm.scale'"),
            "{err}"
        );
        let err = decode(&bytes(Some(vec![3])), "f.safetensors")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected [2]"), "{err}");
        let (ok, _) = decode(&bytes(Some(vec![2])), "f.safetensors").unwrap();
        assert_eq!(ok[0].data, [0.5, -1.0, 1.5, 2.0]);
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
