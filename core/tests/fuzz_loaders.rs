//! Property-based fuzzing of every loader that reads an untrusted file: the
//! safetensors decoder, `tokenizer.json`, `config.json`, training text, and a
//! whole checkpoint directory. Inputs are random bytes, valid files with
//! random damage, and structurally plausible but hostile headers. Every case
//! must end in `Ok` (with data that is consistent) or in a one-line error
//! naming the file — never a panic, an overflow or an allocation the input
//! did not pay for.
//!
//! Each property runs a fixed number of cases (seconds in all, for CI);
//! `SAMNET_FUZZ_SCALE=20 cargo test -p samnet-core --release --test
//! fuzz_loaders -- --nocapture` runs twenty times as many. Each prints
//! `FUZZ <property>: <cases> cases` so the executions can be counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use samnet_core::checkpoint::{self, NamedTensor, StoreAs};
use samnet_core::config::Config;
use samnet_core::data::text_from_bytes;
use samnet_core::model::params::{match_tensors, param_specs};
use samnet_core::tokenizer::Tokenizer;
use samnet_core::train::{Snapshot, TrainState};
use serde_json::{Value, json};

/// Whether the loader accepted an input (`true`) or rejected it clearly.
type Verdict = Result<bool, TestCaseError>;

/// Runs `property` on `cases` inputs drawn from `strategy` and reports the
/// count, and how many were accepted (to show the inputs reach past the
/// first check).
fn fuzz<S: Strategy>(name: &str, cases: u32, strategy: S, property: impl Fn(S::Value) -> Verdict) {
    let scale: u32 = std::env::var("SAMNET_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let cases = cases * scale.max(1);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let accepted = AtomicU32::new(0);
    let started = Instant::now();
    let counted = |input| {
        if property(input)? {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };
    if let Err(e) = runner.run(&strategy, counted) {
        panic!("{name}: {e}");
    }
    println!(
        "FUZZ {name}: {cases} cases, {} accepted, all others clear errors ({:.2} s)",
        accepted.into_inner(),
        started.elapsed().as_secs_f64()
    );
}

/// An error the user can act on: one line that starts with `origin`.
fn clear_error(err: &samnet_core::Error, origin: &str) -> Verdict {
    let msg = err.to_string();
    prop_assert!(!msg.contains('\n'), "error spans lines: {msg:?}");
    prop_assert!(
        msg.starts_with(origin),
        "error does not name {origin}: {msg}"
    );
    prop_assert!(
        msg.len() > origin.len() + 10,
        "error says too little: {msg}"
    );
    Ok(false)
}

fn tensors() -> Vec<NamedTensor> {
    vec![
        NamedTensor {
            name: "blocks.0.attn.weight".into(),
            shape: vec![3, 4],
            data: (0..12).map(|i| i as f32 * 0.25 - 1.0).collect(),
        },
        NamedTensor {
            name: "bias".into(),
            shape: vec![5],
            data: vec![0.5, -0.5, 1e-3, 7.0, 0.0],
        },
        NamedTensor {
            name: "scalar".into(),
            shape: vec![],
            data: vec![3.0],
        },
    ]
}

fn valid_safetensors(store: StoreAs) -> Vec<u8> {
    let meta = HashMap::from([("format".to_string(), "samnet".to_string())]);
    checkpoint::encode(&tensors(), store, meta).unwrap()
}

/// The decoder's verdict on `bytes`: consistent tensors or a clear error.
fn decode_checked(bytes: &[u8]) -> Verdict {
    const ORIGIN: &str = "ckpt/model.safetensors";
    match checkpoint::decode(bytes, ORIGIN) {
        Ok((tensors, _)) => {
            for t in &tensors {
                let n: usize = t.shape.iter().product();
                prop_assert_eq!(n, t.data.len(), "tensor {} data vs shape", &t.name);
                prop_assert!(t.data.iter().all(|x| x.is_finite()));
            }
            Ok(true)
        }
        Err(e) => clear_error(&e, ORIGIN),
    }
}

/// A damage done to a file: where, and what.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Flip {
        at: usize,
        mask: u8,
    },
    Overwrite {
        at: usize,
        bytes: Vec<u8>,
    },
    /// The 8-byte little-endian header length replaced.
    HeaderLength(u64),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
        prop_oneof![
            any::<u64>(),
            Just(u64::MAX),
            Just(u64::MAX - 7),
            Just(1u64 << 63),
            0..4096u64
        ]
        .prop_map(Damage::HeaderLength),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let len = bytes.len().max(1);
    match d {
        Damage::Truncate(n) => bytes.truncate(n % len),
        Damage::Flip { at, mask } => {
            if !bytes.is_empty() {
                bytes[at % len] ^= mask;
            }
        }
        Damage::Overwrite { at, bytes: new } => {
            for (i, b) in new.iter().enumerate() {
                if let Some(slot) = bytes.get_mut((at % len) + i) {
                    *slot = *b;
                }
            }
        }
        Damage::HeaderLength(n) => {
            if bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&n.to_le_bytes());
            }
        }
        Damage::Append(tail) => bytes.extend_from_slice(tail),
    }
}

#[test]
fn safetensors_decoder_on_random_bytes() {
    fuzz(
        "safetensors: random bytes",
        30_000,
        prop::collection::vec(any::<u8>(), 0..256),
        |bytes| decode_checked(&bytes),
    );
}

#[test]
fn safetensors_decoder_on_damaged_files() {
    let files = [
        valid_safetensors(StoreAs::F32),
        valid_safetensors(StoreAs::F16),
    ];
    fuzz(
        "safetensors: damaged valid files",
        30_000,
        (0..2usize, prop::collection::vec(damage(), 1..4)),
        |(which, damages)| {
            let mut bytes = files[which].clone();
            for d in &damages {
                apply(&mut bytes, d);
            }
            decode_checked(&bytes)
        },
    );
}

/// One tensor entry of a hand-made safetensors header.
#[derive(Clone, Debug)]
struct Entry {
    dtype: &'static str,
    shape: Vec<u64>,
    /// None: the offsets a writer would give (right after the previous tensor).
    offsets: Option<(u64, u64)>,
}

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "F64" | "I64" => 8,
        "F32" | "I32" => 4,
        "F16" | "BF16" => 2,
        _ => 1,
    }
}

fn entry() -> impl Strategy<Value = Entry> {
    let dtype = prop::sample::select(vec![
        "F32", "F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "XYZ",
    ]);
    let dim = prop_oneof![
        8 => 0..6u64,
        1 => Just(u64::MAX),
        1 => Just(1u64 << 32),
        1 => Just((1u64 << 62) + 1),
        1 => any::<u64>(),
    ];
    let offset = prop_oneof![0..64u64, Just(u64::MAX), any::<u64>()];
    (
        dtype,
        prop::collection::vec(dim, 0..4),
        prop::option::weighted(0.3, (offset.clone(), offset)),
    )
        .prop_map(|(dtype, shape, offsets)| Entry {
            dtype,
            shape,
            offsets,
        })
}

#[test]
fn safetensors_decoder_on_hostile_headers() {
    let float = prop::sample::select(vec![0.5f32, -2.0, 0.0, f32::NAN, f32::INFINITY, 1e-40]);
    fuzz(
        "safetensors: hostile headers",
        30_000,
        (
            prop::collection::vec(entry(), 0..4),
            prop::collection::vec(float, 1..8),
            prop::option::weighted(0.2, any::<u64>()),
            -8..8i64,
        ),
        |(entries, floats, length_override, payload_delta)| {
            let mut header = serde_json::Map::new();
            let mut end = 0u64;
            for (i, e) in entries.iter().enumerate() {
                let size = e
                    .shape
                    .iter()
                    .try_fold(dtype_bytes(e.dtype), |p, &d| p.checked_mul(d));
                let (start, stop) = match (e.offsets, size) {
                    (Some(o), _) => o,
                    (None, Some(n)) if n < 1 << 16 => (end, end + n),
                    (None, _) => (end, u64::MAX),
                };
                end = end.max(stop.min(1 << 16));
                header.insert(
                    format!("t{i}"),
                    json!({"dtype": e.dtype, "shape": e.shape, "data_offsets": [start, stop]}),
                );
            }
            // The payload holds real floats (NaN and ∞ among them), a few
            // bytes more or less than the header claims.
            let len = (end as i64 + payload_delta).max(0) as usize;
            let data: Vec<u8> = floats
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .cycle()
                .take(len)
                .collect();
            let header = serde_json::to_vec(&Value::Object(header)).unwrap();
            let n = length_override.unwrap_or(header.len() as u64);
            let mut bytes = n.to_le_bytes().to_vec();
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(&data);
            decode_checked(&bytes)
        },
    );
}

/// A JSON value of any kind, biased to what parsers trip on.
fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(1u64 << 40), 0..70u64].prop_map(Value::from),
        prop_oneof![Just(-1.0f64), Just(0.5), Just(1e300), Just(-0.0)].prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "BPE",
            "WordPiece",
            "WordLevel",
            "Unigram",
            "Precompiled",
            "BertNormalizer",
            "Fuse",
            "ByteLevel",
            "Sequence",
            "Split",
            "Metaspace",
            "Whitespace",
            "NFC",
            "Lowercase",
            "Strip",
            "Replace",
            "TemplateProcessing",
            "rms",
            "layer",
            "cosine",
            "linear",
            "topk",
            "softmax",
            "f16",
            "auto",
            "f32",
            "\u{0}",
            "é",
        ])
        .prop_map(Value::from),
        prop::collection::vec(0..100u64, 0..3).prop_map(|v| json!(v)),
        Just(json!({})),
        Just(json!({"type": "Sequence", "normalizers": [{"type": "Lowercase"}]})),
        Just(json!({"type": "Unigram", "vocab": [["a", 0.0], ["b", -1.0]], "unk_id": 7})),
    ]
}

/// Every path (object keys and array indices) inside `v`, root excluded.
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, c)| (k.clone(), c)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (i.to_string(), c))
            .collect(),
        _ => return,
    };
    for (k, c) in children {
        prefix.push(k);
        out.push(prefix.clone());
        paths(c, prefix, out);
        prefix.pop();
    }
}

/// A change to a JSON document: replace or remove the value at a path.
#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, Value),
    Remove(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        3 => (any::<usize>(), json_value()).prop_map(|(i, v)| Edit::Replace(i, v)),
        1 => any::<usize>().prop_map(Edit::Remove),
    ];
    prop::collection::vec(edit, 1..4)
}

fn edit_json(doc: &mut Value, edits: &[Edit]) {
    for e in edits {
        let mut all = Vec::new();
        paths(doc, &mut Vec::new(), &mut all);
        if all.is_empty() {
            return;
        }
        let (pick, replacement) = match e {
            Edit::Replace(i, v) => (i, Some(v.clone())),
            Edit::Remove(i) => (i, None),
        };
        let path = &all[pick % all.len()];
        let (last, parents) = path.split_last().unwrap();
        let mut node = &mut *doc;
        for k in parents {
            node = match node {
                Value::Object(m) => m.get_mut(k).unwrap(),
                Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
                _ => unreachable!("paths only descend into containers"),
            };
        }
        match (node, replacement) {
            (Value::Object(m), Some(v)) => {
                m.insert(last.clone(), v);
            }
            (Value::Object(m), None) => {
                m.remove(last);
            }
            (Value::Array(a), Some(v)) => a[last.parse::<usize>().unwrap()] = v,
            (Value::Array(a), None) => {
                a.remove(last.parse::<usize>().unwrap());
            }
            _ => unreachable!("paths only descend into containers"),
        }
    }
}

/// A tokenizer, if `json` is one, must also survive use.
fn tokenizer_checked(json: &[u8]) -> Verdict {
    const ORIGIN: &str = "ckpt/tokenizer.json";
    match Tokenizer::from_json(json, ORIGIN) {
        Ok(t) => {
            // Results may be errors (text outside the vocabulary); panics may not.
            if let Ok(ids) = t.encode("First Citizen:\nspeak, speak.") {
                let _ = t.decode(&ids);
            }
            let _ = t.decode(&[0, 1, u32::MAX]);
            let _ = t.piece(u32::MAX);
            Ok(true)
        }
        Err(e) => clear_error(&e, ORIGIN),
    }
}

#[test]
fn tokenizer_loader_on_edited_json() {
    let base: Value = serde_json::from_str(
        &Tokenizer::char_level("First Citizen:\nBefore we proceed, hear me speak.")
            .unwrap()
            .to_json()
            .unwrap(),
    )
    .unwrap();
    fuzz(
        "tokenizer.json: structural edits",
        10_000,
        edits(),
        |edits| {
            let mut doc = base.clone();
            edit_json(&mut doc, &edits);
            tokenizer_checked(&serde_json::to_vec(&doc).unwrap())
        },
    );
}

#[test]
fn tokenizer_loader_on_damaged_bytes() {
    let base = Tokenizer::char_level("the quick brown fox\n")
        .unwrap()
        .to_json()
        .unwrap()
        .into_bytes();
    fuzz(
        "tokenizer.json: damaged bytes",
        10_000,
        prop::collection::vec(damage(), 1..4),
        |damages| {
            let mut bytes = base.clone();
            for d in &damages {
                apply(&mut bytes, d);
            }
            tokenizer_checked(&bytes)
        },
    );
}

#[test]
fn config_loader_on_edited_json() {
    let base: Value = serde_json::from_str(&Config::preset("tiny").unwrap().to_json()).unwrap();
    fuzz("config.json: structural edits", 30_000, edits(), |edits| {
        const ORIGIN: &str = "ckpt/config.json";
        let mut doc = base.clone();
        edit_json(&mut doc, &edits);
        match Config::from_json(&doc.to_string(), ORIGIN) {
            Ok(config) => {
                // An accepted config has a parameter count that fits in u64
                // (every later size is derived from these shapes).
                let total = param_specs(&config).iter().try_fold(0u64, |acc, s| {
                    s.shape
                        .iter()
                        .try_fold(1u64, |p, &d| p.checked_mul(d as u64))
                        .and_then(|n| acc.checked_add(n))
                });
                prop_assert!(total.is_some(), "parameter count overflows");
                Ok(true)
            }
            Err(e) => clear_error(&e, ORIGIN),
        }
    });
}

#[test]
fn text_loader_accepts_exactly_nonempty_utf8_without_nul() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        ".{0,32}".prop_map(String::into_bytes),
    ];
    fuzz("text: random bytes", 30_000, bytes, |bytes| {
        let expected_ok =
            !bytes.is_empty() && !bytes.contains(&0) && std::str::from_utf8(&bytes).is_ok();
        match text_from_bytes(bytes.clone(), "data.txt") {
            Ok(text) => {
                prop_assert!(expected_ok);
                prop_assert_eq!(text.as_bytes(), &bytes[..]);
                Ok(true)
            }
            Err(e) => {
                prop_assert!(!expected_ok, "rejected valid text: {e}");
                clear_error(&e, "data.txt")
            }
        }
    });
}

/// The files of a real tiny-config checkpoint (weights all 0.01), made on the CPU.
fn tiny_checkpoint() -> HashMap<&'static str, Vec<u8>> {
    let config = Config::preset("tiny").unwrap();
    let alphabet: String = (0..config.model.vocab_size as u32)
        .map(|i| char::from_u32(0x21 + i).unwrap())
        .collect();
    let tokenizer = Tokenizer::char_level(&alphabet).unwrap();
    let model: Vec<NamedTensor> = param_specs(&config)
        .iter()
        .map(|s| NamedTensor {
            name: s.name.clone(),
            shape: s.shape.clone(),
            data: vec![0.01; s.len()],
        })
        .collect();
    let optimizer = model
        .iter()
        .flat_map(|t| {
            ["m", "v"].map(|p| NamedTensor {
                name: format!("{p}.{}", t.name),
                ..t.clone()
            })
        })
        .collect();
    let snapshot = Snapshot {
        config,
        model,
        optimizer: Some(optimizer),
        state: TrainState {
            step: 5,
            skipped_steps: 0,
            loss_scale: 1.0,
        },
    };
    snapshot
        .encode(&tokenizer, StoreAs::F32)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn checkpoint_directory_with_one_damaged_or_missing_file() {
    let files = tiny_checkpoint();
    let names: Vec<&'static str> = {
        let mut n: Vec<_> = files.keys().copied().collect();
        n.sort();
        n
    };
    // Which file, and: removed, damaged bytes, or (JSON files) structural edits.
    let change = prop_oneof![
        Just(None),
        prop::collection::vec(damage(), 1..3).prop_map(|d| Some(Err(d))),
        edits().prop_map(|e| Some(Ok(e))),
    ];
    fuzz(
        "checkpoint directory: one file damaged or missing",
        3000,
        (0..names.len(), change),
        |(which, change)| {
            let name = names[which];
            let mut files = files.clone();
            match change {
                None => {
                    files.remove(name);
                }
                Some(Err(damages)) => {
                    let bytes = files.get_mut(name).unwrap();
                    for d in &damages {
                        apply(bytes, d);
                    }
                }
                Some(Ok(edits)) => {
                    let Ok(mut doc) = serde_json::from_slice::<Value>(&files[name]) else {
                        return Ok(false); // safetensors: covered by the damage cases
                    };
                    edit_json(&mut doc, &edits);
                    files.insert(name, serde_json::to_vec(&doc).unwrap());
                }
            }
            let read = |n: &str| Ok(files.get(n).cloned());
            match Snapshot::decode(&read, "ckpt") {
                Ok((snapshot, tokenizer)) => {
                    // What loads must also pass the checks before the GPU.
                    prop_assert_eq!(tokenizer.vocab_size(), snapshot.config.model.vocab_size);
                    match match_tensors(
                        &param_specs(&snapshot.config),
                        snapshot.model,
                        "ckpt/model.safetensors",
                    ) {
                        Ok(_) => Ok(true),
                        Err(e) => clear_error(&e, "ckpt/model.safetensors"),
                    }
                }
                Err(e) => clear_error(&e, "ckpt/"),
            }
        },
    );
}
