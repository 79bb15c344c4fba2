//! Bad input to the `samnet` command line: each case must end with exit
//! code ≠ 0 and a one-line `error:` naming the thing at fault and what was
//! expected — never a panic, never a partial output file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn samnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_samnet"))
        .args(args)
        .output()
        .expect("runs samnet");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect::<Vec<_>>()
        .join("\n");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

fn shakespeare() -> String {
    format!(
        "{}/../../shared/data/tinyshakespeare.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("samnet-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real (briefly trained) checkpoint, shared by the tests that damage copies of it.
fn checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let run = scratch("run");
        let (ok, _, err) = samnet(&[
            "train",
            "--preset",
            "tiny",
            "--steps",
            "2",
            "--data",
            &shakespeare(),
            "--out",
            run.to_str().unwrap(),
            "--no-progress",
        ]);
        assert!(ok, "training the fixture checkpoint failed: {err}");
        run.join("checkpoint")
    })
}

fn copy_checkpoint(name: &str) -> PathBuf {
    let dir = scratch(name).join("ckpt");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(checkpoint()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Fails with one `error:` line containing every `needle`.
fn fails_clearly(args: &[&str], needles: &[&str]) {
    let (ok, _, err) = samnet(args);
    assert!(!ok, "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: "),
        "{args:?}: last line is not an error: {err}"
    );
    for n in needles {
        assert!(last.contains(n), "{args:?}: error lacks {n:?}: {last}");
    }
}

#[test]
fn missing_empty_and_binary_data_files() {
    let dir = scratch("data");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let missing = dir.join("missing.txt");
    fails_clearly(
        &[
            "train",
            "--preset",
            "tiny",
            "--data",
            missing.to_str().unwrap(),
            "--out",
            out,
        ],
        &["missing.txt", "cannot read"],
    );
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    fails_clearly(
        &[
            "train",
            "--preset",
            "tiny",
            "--data",
            empty.to_str().unwrap(),
            "--out",
            out,
        ],
        &["empty.txt", "empty"],
    );
    let binary = dir.join("model.bin");
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 0, 1, 2]).unwrap();
    fails_clearly(
        &[
            "train",
            "--preset",
            "tiny",
            "--data",
            binary.to_str().unwrap(),
            "--out",
            out,
        ],
        &["model.bin", "binary"],
    );
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    fails_clearly(
        &[
            "train",
            "--preset",
            "tiny",
            "--data",
            latin1.to_str().unwrap(),
            "--out",
            out,
        ],
        &["latin1.txt", "UTF-8"],
    );
    assert!(
        !dir.join("out").join("checkpoint").exists(),
        "a failed run left a checkpoint"
    );
}

#[test]
fn out_of_range_values() {
    let out = scratch("range");
    let out = out.to_str().unwrap();
    let data = shakespeare();
    fails_clearly(
        &[
            "train", "--preset", "tiny", "--steps", "0", "--data", &data, "--out", out,
        ],
        &["train.steps", "at least 1"],
    );
    fails_clearly(
        &[
            "train", "--preset", "tiny", "--batch", "0", "--data", &data, "--out", out,
        ],
        &["train.batch_size", "at least 1"],
    );
    fails_clearly(
        &["train", "--preset", "nope", "--data", &data, "--out", out],
        &["unknown preset", "phase1"],
    );
    fails_clearly(
        &[
            "sample",
            "--ckpt",
            checkpoint().to_str().unwrap(),
            "--steps",
            "0",
        ],
        &["--steps"],
    );
}

#[test]
fn a_model_too_large_for_the_adapter_names_the_buffer_and_limit() {
    let out = scratch("large");
    fails_clearly(
        &[
            "train",
            "--preset",
            "tiny",
            "--batch",
            "8192",
            "--data",
            &shakespeare(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["buffer", "max_storage_buffer_binding_size", "smaller batch"],
    );
}

#[test]
fn characters_outside_the_tokenizer() {
    let dir = scratch("chars");
    let data = dir.join("accents.txt");
    std::fs::write(
        &data,
        "First Citizen:\nBefore we proceed — any further\n".repeat(200),
    )
    .unwrap();
    fails_clearly(
        &[
            "eval",
            "--ckpt",
            checkpoint().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        &["accents.txt", "'—'", "line 2"],
    );
    fails_clearly(
        &[
            "sample",
            "--ckpt",
            checkpoint().to_str().unwrap(),
            "--prompt",
            "naïve",
        ],
        &["'ï'", "vocabulary"],
    );
}

#[test]
fn damaged_checkpoints() {
    let truncated = copy_checkpoint("truncated");
    let model = truncated.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    fails_clearly(
        &["sample", "--ckpt", truncated.to_str().unwrap()],
        &["model.safetensors", "not a valid safetensors"],
    );

    let corrupt = copy_checkpoint("corrupt");
    std::fs::write(
        corrupt.join("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage",
    )
    .unwrap();
    fails_clearly(
        &["sample", "--ckpt", corrupt.to_str().unwrap()],
        &["model.safetensors", "not a valid safetensors"],
    );

    let bad_json = copy_checkpoint("tokenizer");
    std::fs::write(bad_json.join("tokenizer.json"), "{ not json").unwrap();
    fails_clearly(
        &["sample", "--ckpt", bad_json.to_str().unwrap()],
        &["tokenizer.json", "not a tokenizer.json"],
    );

    let mismatch = copy_checkpoint("mismatch");
    let config = std::fs::read_to_string(mismatch.join("config.json"))
        .unwrap()
        .replace("\"vocab_size\": 65", "\"vocab_size\": 66");
    std::fs::write(mismatch.join("config.json"), config).unwrap();
    fails_clearly(
        &["sample", "--ckpt", mismatch.to_str().unwrap()],
        &["tokenizer.json", "65 tokens", "vocab_size 66"],
    );

    let missing = copy_checkpoint("missing");
    std::fs::remove_file(missing.join("config.json")).unwrap();
    fails_clearly(
        &["sample", "--ckpt", missing.to_str().unwrap()],
        &["config.json", "missing"],
    );

    fails_clearly(
        &["sample", "--ckpt", "/nonexistent/ckpt"],
        &["/nonexistent/ckpt", "no checkpoint"],
    );
}

#[test]
fn sample_prints_text_from_a_checkpoint() {
    let (ok, stdout, err) = samnet(&[
        "sample",
        "--ckpt",
        checkpoint().to_str().unwrap(),
        "--len",
        "40",
        "--steps",
        "4",
        "--seed",
        "3",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        stdout.trim_end_matches('\n').chars().count(),
        40,
        "{stdout:?}"
    );
    let (_, again, _) = samnet(&[
        "sample",
        "--ckpt",
        checkpoint().to_str().unwrap(),
        "--len",
        "40",
        "--steps",
        "4",
        "--seed",
        "3",
    ]);
    assert_eq!(again, stdout, "same seed, different text");
}

fn shared_data(name: &str) -> String {
    format!("{}/../../shared/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn tokenizer_train_writes_a_byte_level_bpe_that_round_trips() {
    let dir = scratch("tokenizer");
    let out = dir.join("tokenizer.json");
    let (ok, _, err) = samnet(&[
        "tokenizer",
        "train",
        "--vocab",
        "320",
        "--data",
        &shared_data("gutenberg/pg43.txt"),
        &shared_data("alpaca_sample.json"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("320 tokens"), "{err}");
    let json = std::fs::read(&out).unwrap();
    let t = samnet_core::tokenizer::Tokenizer::from_json(&json, "tokenizer.json").unwrap();
    assert_eq!(t.vocab_size(), 320);
    let text = "The Strange Case of Dr. Jekyll — «naïve» 🦀\n";
    assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only tokenizer.json is left"
    );

    let tiny = dir.join("tiny.json");
    fails_clearly(
        &[
            "tokenizer",
            "train",
            "--vocab",
            "100",
            "--data",
            &shared_data("gutenberg/pg43.txt"),
            "--out",
            tiny.to_str().unwrap(),
        ],
        &["must exceed 257 tokens"],
    );
    assert!(!tiny.exists());
}

#[test]
fn malformed_instruction_records_are_named_by_file_and_number() {
    let dir = scratch("records");
    let out = dir.join("out");
    let alpaca = dir.join("bad.json");
    std::fs::write(
        &alpaca,
        r#"[{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "input": ""}]"#,
    )
    .unwrap();
    let train = |data: &Path| {
        vec![
            "train".to_string(),
            "--preset".into(),
            "tiny".into(),
            "--data".into(),
            shakespeare(),
            data.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    let args = train(&alpaca);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails_clearly(&args, &["bad.json", "record 2", "missing field `output`"]);
    let seeds = dir.join("bad.jsonl");
    std::fs::write(
        &seeds,
        "{\"instruction\": \"a\", \"instances\": [{\"input\": \"\", \"output\": \"b\"}]}\n{\"instruction\": 3, \"instances\": []}\n",
    )
    .unwrap();
    let args = train(&seeds);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails_clearly(&args, &["bad.jsonl", "line 2", "instruction"]);
    let folder = dir.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("notes.md"), "not read").unwrap();
    let args = train(&folder);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails_clearly(&args, &["folder", "no .txt, .json or .jsonl files"]);
    assert!(!out.exists(), "a failed run left output");
}

/// Phase 1 (the tiny character-level checkpoint) → phase 2 (a BPE, so the
/// embedding is re-initialised with a warning) → phase 4 (Gutenberg +
/// Alpaca, prompts held clean), each phase from the previous checkpoint.
#[test]
fn phases_chain_with_init_from() {
    let dir = scratch("phases");
    let tokenizer = dir.join("bpe.json");
    let (ok, _, err) = samnet(&[
        "tokenizer",
        "train",
        "--vocab",
        "300",
        "--data",
        &shared_data("gutenberg/pg43.txt"),
        &shared_data("alpaca_sample.json"),
        "--out",
        tokenizer.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let config = |run: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/config.json")).unwrap()).unwrap()
    };
    let short = [
        "--steps",
        "2",
        "--batch",
        "2",
        "--seq",
        "16",
        "--no-progress",
    ];

    let phase2 = dir.join("phase2");
    let book = shared_data("gutenberg/pg43.txt");
    let mut args = vec![
        "train",
        "--preset",
        "phase2",
        "--init-from",
        checkpoint().to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--out",
        phase2.to_str().unwrap(),
        "--data",
        &book,
    ];
    args.extend(short);
    let (ok, _, err) = samnet(&args);
    assert!(ok, "{err}");
    assert!(
        err.contains("warning: the tokenizer differs") && err.contains("re-initialised"),
        "{err}"
    );
    let c2 = config(&phase2);
    assert_eq!(c2["model"]["vocab_size"], 300);
    assert_eq!(c2["model"]["d_model"], 32, "the architecture is phase 1's");
    assert_eq!(
        c2["train"]["min_lr_ratio"], 1.0,
        "the schedule is phase 2's"
    );

    let phase4 = dir.join("phase4");
    let (ok, _, err) = samnet(&[
        "train",
        "--preset",
        "phase4",
        "--init-from",
        phase2.join("checkpoint").to_str().unwrap(),
        "--out",
        phase4.to_str().unwrap(),
        "--data",
        &shared_data("gutenberg/pg43.txt"),
        &shared_data("alpaca_sample.json"),
        "--steps",
        "2",
        "--batch",
        "2",
        "--seq",
        "32",
        "--no-progress",
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("prompts are known (held clean)") && !err.contains("re-initialised"),
        "{err}"
    );
    assert!(
        err.contains(r#"diffusion settings differ"#)
            && err.contains(r#"known_positions "noised" → "clean""#),
        "{err}"
    );
    let c4 = config(&phase4);
    assert_eq!(c4["diffusion"]["known_positions"], "clean");
    assert_eq!(c4["model"]["vocab_size"], 300);

    // Phase 3 continues a phase: without a checkpoint or a tokenizer it cannot start.
    let phase3 = dir.join("phase3");
    fails_clearly(
        &[
            "train",
            "--preset",
            "phase3",
            "--out",
            phase3.to_str().unwrap(),
        ],
        &["continues a previous phase", "--init-from"],
    );
    assert!(!phase3.exists());
}

#[test]
fn infill_keeps_the_known_text_and_fills_every_hole() {
    let ckpt = checkpoint().to_str().unwrap().to_string();
    let template = "ROMEO:\n[___:7] my [___:5], ▢▢▢!";
    let (ok, stdout, err) = samnet(&[
        "infill", template, "--ckpt", &ckpt, "--steps", "4", "--seed", "1",
    ]);
    assert!(ok, "{err}");
    let text: Vec<char> = stdout.strip_suffix('\n').unwrap().chars().collect();
    let expected: Vec<Option<char>> = "ROMEO:\n####### my #####, ###!"
        .chars()
        .map(|c| (c != '#').then_some(c))
        .collect();
    assert_eq!(text.len(), expected.len(), "{stdout:?}");
    for (i, (got, want)) in text.iter().zip(&expected).enumerate() {
        if let Some(want) = want {
            assert_eq!(got, want, "known position {i} changed: {stdout:?}");
        }
    }
    for (args, needles) in [
        (
            vec!["infill", "open [___ hole"],
            vec!["column 6", "not closed"],
        ),
        (vec!["infill", "bad [___:x]"], vec!["length \"x\""]),
        (vec!["infill", "no holes"], vec!["no hole"]),
        (vec!["infill", "▢", "--hole", "0"], vec!["--hole"]),
    ] {
        let mut args = args.clone();
        args.extend(["--ckpt", &ckpt]);
        fails_clearly(&args, &needles);
    }
}

#[test]
fn completion_fills_only_the_hole_at_the_cursor() {
    let dir = scratch("complete");
    let file = dir.join("speech.txt");
    std::fs::write(
        &file,
        "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    )
    .unwrap();
    let ckpt = checkpoint().to_str().unwrap().to_string();
    let file_arg = file.to_str().unwrap().to_string();
    let (ok, stdout, err) = samnet(&[
        "complete", "--ckpt", &ckpt, "--file", &file_arg, "--line", "2", "--col", "8", "--hole",
        "12", "--len", "48", "--steps", "4",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        stdout.strip_suffix('\n').unwrap().chars().count(),
        12,
        "{stdout:?}"
    );
    fails_clearly(
        &[
            "complete", "--ckpt", &ckpt, "--file", &file_arg, "--line", "9",
        ],
        &["speech.txt", "no line 9"],
    );
    fails_clearly(
        &[
            "complete", "--ckpt", &ckpt, "--file", &file_arg, "--line", "1", "--hole", "64",
            "--len", "64",
        ],
        &["hole"],
    );
}
