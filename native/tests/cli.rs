//! Bad input to the `samnet` command line: each case must end with exit
//! code ≠ 0 and a one-line `error:` naming the thing at fault and what was
//! expected — never a panic, never a partial output file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use samnet_core::checkpoint::{self, NamedTensor, StoreAs};

fn samnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_samnet"))
        .args(args)
        .output()
        .expect("runs samnet");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
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

/// The bad-input cases of one category, counted for docs/reliability.md.
struct Category {
    name: &'static str,
    cases: usize,
}

impl Category {
    fn new(name: &'static str) -> Self {
        Category { name, cases: 0 }
    }

    fn fails(&mut self, args: &[&str], needles: &[&str]) {
        fails_clearly(args, needles);
        self.cases += 1;
    }
}

impl Drop for Category {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            println!(
                "BADINPUT {}: {} cases, each a one-line error naming the thing",
                self.name, self.cases
            );
        }
    }
}

#[test]
fn missing_empty_and_binary_data_files() {
    let mut c = Category::new("data files");
    let dir = scratch("data");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let mut train_on = |data: &Path, needles: &[&str]| {
        let args = [
            "train",
            "--preset",
            "tiny",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out,
        ];
        c.fails(&args, needles);
    };
    train_on(&dir.join("missing.txt"), &["missing.txt", "cannot read"]);
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    train_on(&empty, &["empty.txt", "empty"]);
    let binary = dir.join("model.bin");
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 0, 1, 2]).unwrap();
    train_on(&binary, &["model.bin", "binary"]);
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    train_on(&latin1, &["latin1.txt", "UTF-8"]);
    let gz = dir.join("book.txt.gz");
    std::fs::write(&gz, b"\x1f\x8b\x08\x00 cut short").unwrap();
    train_on(&gz, &["book.txt.gz", "not a readable gzip file"]);
    let not_humaneval = dir.join("tasks.jsonl");
    std::fs::write(&not_humaneval, "{\"task_id\": \"HumanEval/3\"}\n").unwrap();
    c.fails(
        &[
            "eval-code",
            "--ckpt",
            checkpoint().to_str().unwrap(),
            "--problems",
            not_humaneval.to_str().unwrap(),
        ],
        &[
            "tasks.jsonl",
            "line 1",
            "missing field",
            "expected a HumanEval record",
        ],
    );
    assert!(
        !dir.join("out").join("checkpoint").exists(),
        "a failed run left a checkpoint"
    );
}

#[test]
fn out_of_range_values() {
    let mut c = Category::new("CLI values out of range");
    let out = scratch("range");
    let out = out.to_str().unwrap();
    let data = shakespeare();
    c.fails(
        &[
            "train", "--preset", "tiny", "--steps", "0", "--data", &data, "--out", out,
        ],
        &["train.steps", "at least 1"],
    );
    c.fails(
        &[
            "train", "--preset", "tiny", "--batch", "0", "--data", &data, "--out", out,
        ],
        &["train.batch_size", "at least 1"],
    );
    c.fails(
        &["train", "--preset", "nope", "--data", &data, "--out", out],
        &["unknown preset", "phase1"],
    );
    let train = |extra: &[&str], needles: &[&str], c: &mut Category| {
        let mut args = vec!["train", "--preset", "tiny", "--data", &data, "--out", out];
        args.extend_from_slice(extra);
        c.fails(&args, needles);
    };
    train(&["--seq", "0"], &["train.seq_len", "at least 1"], &mut c);
    train(
        &["--seq", "2000000"],
        &["model.max_seq_len", "at most 1048576", "2000000"],
        &mut c,
    );
    train(
        &["--seq", "1048576"],
        &["tinyshakespeare.txt", "too little", "window of 1048576"],
        &mut c,
    );
    train(&["--lr=-1"], &["train.lr", "positive", "-1"], &mut c);
    train(&["--lr", "nan"], &["train.lr", "positive", "NaN"], &mut c);
    train(
        &["--precision", "bf16"],
        &["--precision", "bf16", "expected f32, f16 or auto"],
        &mut c,
    );
    train(
        &["--log-every", "0"],
        &["train.log_every", "at least 1"],
        &mut c,
    );
    train(&["--resume"], &["no checkpoint here"], &mut c);
    let ckpt = checkpoint().to_str().unwrap();
    // Checked by the CLI so that the error names the flag, not core's option.
    for command in ["sample", "eval"] {
        for (flag, value, needle) in [
            ("--len", "0", "--len must be 1..=4096 positions, got 0"),
            (
                "--len",
                "5000",
                "--len must be 1..=4096 positions, got 5000",
            ),
            ("--eta", "2", "--eta must be in [0, 1], got 2"),
            ("--eta", "-0.5", "--eta must be in [0, 1], got -0.5"),
            ("--temperature", "-1", "--temperature must be ≥ 0, got -1"),
            ("--temperature", "inf", "--temperature must be ≥ 0, got inf"),
            ("--top-p", "1.5", "--top-p must be in (0, 1], got 1.5"),
            ("--top-p", "0", "--top-p must be in (0, 1], got 0"),
            ("--steps", "0", "--steps must be in 1..=1000, got 0"),
        ] {
            let flag_value = format!("{flag}={value}");
            c.fails(&[command, "--ckpt", ckpt, &flag_value], &[needle]);
        }
        c.fails(
            &[command, "--ckpt", ckpt, "--temperature=0", "--top-p=0.9"],
            &["--top-p 0.9 truncates drawn tokens, but temperature 0"],
        );
    }
    let long_prompt = "To be, or not to be, that is the question. ".repeat(20);
    c.fails(
        &[
            "sample",
            "--ckpt",
            ckpt,
            "--len",
            "64",
            "--prompt",
            &long_prompt,
        ],
        &["prompt", "860 tokens", "longer than the 64 positions"],
    );
    c.fails(
        &[
            "sample",
            "--ckpt",
            ckpt,
            "--len",
            "1000",
            "--prompt",
            &long_prompt,
        ],
        &["prompt", "860 tokens", "max_seq_len of 32"],
    );
    // An existing run is never overwritten by a fresh one.
    let run = checkpoint().parent().unwrap().to_str().unwrap();
    c.fails(
        &[
            "train", "--preset", "tiny", "--data", &data, "--out", run, "--steps", "3",
        ],
        &["already holds a checkpoint", "--resume"],
    );
    // A resumed run keeps its trajectory: flags that would change it are refused.
    c.fails(
        &[
            "train", "--preset", "tiny", "--data", &data, "--out", run, "--resume", "--batch", "7",
        ],
        &["--batch 7", "cannot change a resumed run", "has 8"],
    );
    assert!(
        !Path::new(out).join("checkpoint").exists(),
        "a failed run left a checkpoint"
    );
}

/// A shipped checkpoint by name (assets/NAME).
fn shipped(name: &str) -> String {
    format!("{}/../assets/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn options_and_configs_that_do_not_fit_the_diffusion_kind() {
    let mut c = Category::new("diffusion.kind mismatches");
    let hybrid = shipped("phase1-hybrid");
    let gaussian = checkpoint().display().to_string();
    let sample = |ckpt: &str, extra: &[&str], needles: &[&str], c: &mut Category| {
        let mut args = vec!["sample", "--ckpt", ckpt, "--len", "8", "--steps", "2"];
        args.extend_from_slice(extra);
        c.fails(&args, needles);
    };
    sample(
        &hybrid,
        &["--eta", "0.5"],
        &["--eta does not apply", "\"hybrid\""],
        &mut c,
    );
    sample(
        &hybrid,
        &["--clamp", "true"],
        &["--clamp does not apply", "\"hybrid\""],
        &mut c,
    );
    sample(
        &gaussian,
        &["--order", "confident"],
        &["--order does not apply", "\"gaussian\""],
        &mut c,
    );
    sample(
        &hybrid,
        &["--order", "backwards"],
        &["--order", "backwards", "random, confident, left or blocks"],
        &mut c,
    );
    let edited = |name: &str, from: &str, to: &str| {
        let dir = copy_checkpoint(name);
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(from), "{from} in {text}");
        std::fs::write(&config, text.replacen(from, to, 1)).unwrap();
        dir.to_str().unwrap().to_string()
    };
    let unknown = edited(
        "kind-unknown",
        "\"kind\": \"gaussian\"",
        "\"kind\": \"flow\"",
    );
    sample(
        &unknown,
        &[],
        &[
            "config.json",
            "unknown variant `flow`",
            "gaussian",
            "hybrid",
            "masked",
        ],
        &mut c,
    );
    // The tiny preset is self-conditioned.
    let self_conditioned = edited(
        "kind-hybrid-sc",
        "\"kind\": \"gaussian\"",
        "\"kind\": \"hybrid\"",
    );
    sample(
        &self_conditioned,
        &[],
        &[
            "config.json",
            "diffusion.self_condition",
            "\"gaussian\" only",
        ],
        &mut c,
    );
}

#[test]
fn no_usable_gpu_adapter() {
    let mut c = Category::new("no GPU adapter");
    let out = scratch("adapter");
    c.fails(
        &["--adapter", "no-such-gpu", "doctor"],
        &["no usable GPU adapter", "'no-such-gpu'", "lavapipe"],
    );
    c.fails(
        &[
            "--adapter",
            "no-such-gpu",
            "train",
            "--preset",
            "tiny",
            "--data",
            &shakespeare(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["no usable GPU adapter", "--backend"],
    );
    c.fails(
        &["--backend", "glide", "doctor"],
        &["unknown backend 'glide'", "vulkan"],
    );
    assert!(
        std::fs::read_dir(&out).unwrap().next().is_none(),
        "a run without an adapter wrote files"
    );
}

/// Without XDG_RUNTIME_DIR, Mesa's drivers print "error: XDG_RUNTIME_DIR is
/// invalid or not set" while the adapter opens; samnet gives them a private one.
#[test]
fn an_unset_xdg_runtime_dir_prints_no_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_samnet"))
        .arg("doctor")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("runs samnet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}

#[test]
fn a_model_too_large_for_the_adapter_names_the_buffer_and_limit() {
    let mut c = Category::new("buffers beyond the adapter's limits");
    let out = scratch("large");
    c.fails(
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
    // Long sequences: the (B·L, V) logits outgrow a binding first.
    c.fails(
        &[
            "train",
            "--preset",
            "tiny",
            "--seq",
            "100000",
            "--data",
            &shakespeare(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["buffer '", "bytes but this adapter allows", "smaller batch"],
    );
    assert!(
        !out.join("checkpoint").exists() && !out.join("metrics.jsonl").exists(),
        "a refused run left files"
    );
}

#[test]
fn characters_outside_the_tokenizer() {
    let mut c = Category::new("text outside the tokenizer");
    let dir = scratch("chars");
    let data = dir.join("accents.txt");
    std::fs::write(
        &data,
        "First Citizen:\nBefore we proceed — any further\n".repeat(200),
    )
    .unwrap();
    c.fails(
        &[
            "eval",
            "--ckpt",
            checkpoint().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        &["accents.txt", "'—'", "line 2"],
    );
    c.fails(
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
    let mut c = Category::new("damaged checkpoints");
    let truncated = copy_checkpoint("truncated");
    let model = truncated.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    c.fails(
        &["sample", "--ckpt", truncated.to_str().unwrap()],
        &["model.safetensors", "not a valid safetensors"],
    );

    let corrupt = copy_checkpoint("corrupt");
    std::fs::write(
        corrupt.join("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage",
    )
    .unwrap();
    c.fails(
        &["sample", "--ckpt", corrupt.to_str().unwrap()],
        &["model.safetensors", "not a valid safetensors"],
    );

    let bad_json = copy_checkpoint("tokenizer");
    std::fs::write(bad_json.join("tokenizer.json"), "{ not json").unwrap();
    c.fails(
        &["sample", "--ckpt", bad_json.to_str().unwrap()],
        &["tokenizer.json", "not a tokenizer.json"],
    );

    let mismatch = copy_checkpoint("mismatch");
    let config = std::fs::read_to_string(mismatch.join("config.json"))
        .unwrap()
        .replace("\"vocab_size\": 65", "\"vocab_size\": 66");
    std::fs::write(mismatch.join("config.json"), config).unwrap();
    c.fails(
        &["sample", "--ckpt", mismatch.to_str().unwrap()],
        &["tokenizer.json", "65 tokens", "vocab_size 66"],
    );

    let missing = copy_checkpoint("missing");
    std::fs::remove_file(missing.join("config.json")).unwrap();
    c.fails(
        &["sample", "--ckpt", missing.to_str().unwrap()],
        &["config.json", "missing"],
    );

    c.fails(
        &["sample", "--ckpt", "/nonexistent/ckpt"],
        &["/nonexistent/ckpt", "no checkpoint"],
    );

    // A folder holding checkpoints (as `assets/` holds `phase1/`) lists them;
    // a subfolder without a config.json is not one.
    let folder = scratch("folder");
    for name in ["phase2", "phase1"] {
        let dir = folder.join(name);
        std::fs::create_dir(&dir).unwrap();
        for entry in std::fs::read_dir(checkpoint()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(folder.join("configs")).unwrap();
    let phase1 = folder.join("phase1").display().to_string();
    let phase2 = folder.join("phase2").display().to_string();
    c.fails(
        &["sample", "--ckpt", folder.to_str().unwrap()],
        &[
            "a folder of checkpoints, not a checkpoint",
            &format!("--ckpt: {phase1}, {phase2}"),
        ],
    );
    let (_, _, err) = samnet(&["sample", "--ckpt", folder.to_str().unwrap()]);
    assert!(!err.contains("configs"), "{err}");
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

/// Piped, stderr gets only the line naming the adapter; in a terminal (a
/// pseudo-terminal from util-linux's `script`) sampling draws a bar of
/// denoising steps, and eval a spinner for the validation loss and a bar
/// over the denoising steps of all its samples.
#[cfg(target_os = "linux")]
#[test]
fn progress_shows_in_a_terminal_and_the_adapter_always() {
    let ckpt = checkpoint().to_str().unwrap();
    let in_terminal = |args: &[&str]| {
        let command = format!("{} {}", env!("CARGO_BIN_EXE_samnet"), args.join(" "));
        let out = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .output()
            .expect("runs script (util-linux)");
        let shown = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{args:?}: {shown}");
        shown
    };
    let sample = ["sample", "--ckpt", ckpt, "--len", "16", "--steps", "8"];
    let (ok, _, err) = samnet(&sample);
    assert!(ok, "{err}");
    assert!(
        err.starts_with("sampling 16 positions in 8 steps on ") && err.lines().count() == 1,
        "{err}"
    );
    let shown = in_terminal(&sample);
    assert!(
        shown.contains("step ") && shown.contains("/8  ") && shown.contains(" steps/s  "),
        "{shown}"
    );
    assert!(shown.contains(" left"), "{shown}");

    let data = shakespeare();
    let eval = [
        "eval", "--ckpt", ckpt, "--data", &data, "--len", "16", "--steps", "2",
    ];
    let (ok, _, err) = samnet(&eval);
    assert!(ok, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("evaluating on ")) && !err.contains("validation loss at"),
        "{err}"
    );
    let shown = in_terminal(&eval);
    assert!(shown.contains("validation loss at 5 timesteps"), "{shown}");
    // 8 samples of 2 steps each.
    assert!(
        shown.contains("8 samples: ") && shown.contains("/16  "),
        "{shown}"
    );
    assert!(shown.contains(" left"), "{shown}");
}

/// `export --int8` writes a file about a quarter of f32's whose matrices are
/// within half a row's step of the checkpoint's; `sample` and `eval` load it.
#[test]
fn an_int8_export_loads_and_samples() {
    let out = scratch("int8").join("model");
    let ckpt = checkpoint().to_str().unwrap().to_string();
    let (ok, _, err) = samnet(&[
        "export",
        "--ckpt",
        &ckpt,
        "--out",
        out.to_str().unwrap(),
        "--int8",
    ]);
    assert!(ok, "{err}");
    let read = |dir: &Path| {
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        (bytes.len(), checkpoint::decode(&bytes, "x").unwrap().0)
    };
    let (int8_len, int8) = read(&out);
    let (f32_len, full) = read(checkpoint());
    assert!(3 * int8_len < f32_len, "{int8_len} vs {f32_len} bytes");
    assert_eq!(int8.len(), full.len());
    for (q, t) in int8.iter().zip(&full) {
        assert_eq!((&q.name, &q.shape), (&t.name, &t.shape));
        let cols = *t.shape.last().unwrap();
        for (row_q, row) in q.data.chunks(cols).zip(t.data.chunks(cols)) {
            let max = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let bound = if t.shape.len() == 2 {
                0.5 * max / 127.0
            } else {
                1e-3 * max
            };
            for (a, b) in row_q.iter().zip(row) {
                assert!(
                    (a - b).abs() <= bound * 1.001 + 1e-7,
                    "{}: {a} vs {b}",
                    t.name
                );
            }
        }
    }
    let model = out.to_str().unwrap();
    let (ok, text, err) = samnet(&["sample", "--ckpt", model, "--len", "10", "--steps", "2"]);
    assert!(
        ok && text.trim_end_matches('\n').chars().count() == 10,
        "{err}{text:?}"
    );
    fails_clearly(
        &["export", "--ckpt", &ckpt, "--out", model, "--int8", "--f16"],
        &["--int8", "--f16"],
    );
}

/// `average` writes each parameter's weighted mean (weights scaled to sum to
/// 1), a model `sample` loads; checkpoints that are not one model, and
/// weights that do not fit, are refused by name.
#[test]
fn average_writes_the_weighted_mean_of_one_models_checkpoints() {
    let ckpt = checkpoint().to_str().unwrap().to_string();
    let tripled = with_model("average-tripled", |tensors| {
        for t in tensors.iter_mut() {
            t.data.iter_mut().for_each(|x| *x *= 3.0);
        }
    });
    let tripled = tripled.to_str().unwrap().to_string();
    let out = scratch("average").join("model");
    let model = out.to_str().unwrap().to_string();
    let (ok, _, err) = samnet(&[
        "average",
        "--ckpt",
        &ckpt,
        "--ckpt",
        &tripled,
        "--weights",
        "3,1",
        "--out",
        &model,
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("× 0.750") && err.contains("× 0.250"), "{err}");
    let read = |dir: &Path| {
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        checkpoint::decode(&bytes, "x").unwrap().0
    };
    let (mean, first) = (read(&out), read(checkpoint()));
    assert_eq!(mean.len(), first.len());
    for t in &first {
        let m = mean
            .iter()
            .find(|m| m.name == t.name)
            .expect("every tensor");
        assert_eq!(m.shape, t.shape);
        for (a, b) in m.data.iter().zip(&t.data) {
            // 0.75·x + 0.25·3x
            assert!(
                (a - 1.5 * b).abs() <= 1e-6 * (1.0 + b.abs()),
                "{}: {a} vs {b}",
                t.name
            );
        }
    }
    let (ok, text, err) = samnet(&["sample", "--ckpt", &model, "--len", "10", "--steps", "2"]);
    assert!(
        ok && text.trim_end_matches('\n').chars().count() == 10,
        "{err}{text:?}"
    );

    let heads = copy_checkpoint("average-heads");
    let config = std::fs::read_to_string(heads.join("config.json"))
        .unwrap()
        .replace("\"n_heads\": 4", "\"n_heads\": 8")
        .replace("\"count\": 2", "\"count\": 4");
    std::fs::write(heads.join("config.json"), config).unwrap();
    let heads = heads.to_str().unwrap();
    let mut c = Category::new("average: checkpoints and weights");
    c.fails(
        &["average", "--ckpt", &ckpt, "--ckpt", heads, "--out", &model],
        &["config.json", "model.", "one architecture"],
    );
    c.fails(
        &["average", "--ckpt", &ckpt, "--out", &model],
        &["at least two checkpoints"],
    );
    let (first, second) = (ckpt.as_str(), tripled.as_str());
    let weighted = |weights| {
        [
            "average",
            "--ckpt",
            first,
            "--ckpt",
            second,
            "--weights",
            weights,
            "--out",
            &model,
        ]
    };
    c.fails(
        &weighted("1"),
        &["--weights", "1 weights for 2 checkpoints"],
    );
    c.fails(&weighted("1,-1"), &["average-tripled", "≥ 0", "-1"]);
}

/// `model.safetensors` of a copy of the fixture checkpoint, rewritten by `edit`.
fn with_model(name: &str, edit: impl FnOnce(&mut Vec<NamedTensor>)) -> PathBuf {
    let dir = copy_checkpoint(name);
    let path = dir.join("model.safetensors");
    let (mut tensors, meta) =
        checkpoint::decode(&std::fs::read(&path).unwrap(), "fixture").unwrap();
    edit(&mut tensors);
    std::fs::write(
        &path,
        checkpoint::encode(&tensors, StoreAs::F32, meta).unwrap(),
    )
    .unwrap();
    dir
}

/// A safetensors file with the given header (JSON) and payload.
fn raw_safetensors(length: u64, header: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = length.to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

#[test]
fn hostile_model_files() {
    let mut c = Category::new("hostile or damaged model.safetensors");
    let sample = |dir: &Path, needles: &[&str], c: &mut Category| {
        let mut n = vec!["model.safetensors"];
        n.extend_from_slice(needles);
        c.fails(&["sample", "--ckpt", dir.to_str().unwrap()], &n);
    };
    let header = r#"{"embedding.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let raw_cases: [(&str, Vec<u8>, &[&str]); 7] = [
        ("empty", Vec::new(), &["not a valid safetensors"]),
        ("short", vec![1, 2, 3], &["not a valid safetensors"]),
        (
            "length-overflow",
            raw_safetensors(u64::MAX, header, &[0; 8]),
            &["not a valid safetensors"],
        ),
        (
            "length-past-end",
            raw_safetensors(1 << 20, header, &[0; 8]),
            &["not a valid safetensors"],
        ),
        (
            "offsets-outside",
            raw_safetensors(
                header.len() as u64,
                &header
                    .replace("[0,8]", "[0,1099511627776]")
                    .replace("[2]", "[274877906944]"),
                &[0; 8],
            ),
            &["not a valid safetensors"],
        ),
        (
            "not-json",
            raw_safetensors(8, "{{{{{{{{", &[]),
            &["not a valid safetensors"],
        ),
        (
            "int-dtype",
            raw_safetensors(header.len() as u64, &header.replace("F32", "I32"), &[0; 8]),
            &[
                "'embedding.weight'",
                "dtype I32",
                "expected F32, F16, BF16 or I8",
            ],
        ),
    ];
    for (name, bytes, needles) in raw_cases {
        let dir = copy_checkpoint(name);
        std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
        sample(&dir, needles, &mut c);
    }
    let nan = with_model("nan", |t| t[0].data[3] = f32::NAN);
    sample(&nan, &["non-finite value (NaN) at index 3"], &mut c);
    let inf = with_model("inf", |t| t[1].data[0] = f32::NEG_INFINITY);
    sample(&inf, &["non-finite value (-inf) at index 0"], &mut c);
    let shape = with_model("shape", |t| {
        let i = t.iter().position(|t| t.name == "embedding.weight").unwrap();
        t[i].shape.reverse();
    });
    sample(
        &shape,
        &["'embedding.weight' has shape", "the config expects"],
        &mut c,
    );
    let missing = with_model("missing-tensor", |t| t.retain(|t| t.name != "input.bias"));
    sample(&missing, &["missing tensor 'input.bias'"], &mut c);
    let extra = with_model("extra-tensor", |t| {
        t.push(NamedTensor {
            name: "backdoor".into(),
            shape: vec![1],
            data: vec![0.0],
        })
    });
    sample(&extra, &["unexpected tensor 'backdoor'"], &mut c);
}

#[test]
fn mismatched_checkpoint_parts() {
    let mut c = Category::new("config/tokenizer/checkpoint mismatch");
    let sample = |dir: &Path, needles: &[&str], c: &mut Category| {
        c.fails(&["sample", "--ckpt", dir.to_str().unwrap()], needles);
    };
    let wider = copy_checkpoint("wider");
    let config = std::fs::read_to_string(wider.join("config.json"))
        .unwrap()
        .replace("\"d_model\": 32", "\"d_model\": 64");
    std::fs::write(wider.join("config.json"), config).unwrap();
    sample(
        &wider,
        &["model.safetensors", "has shape", "the config expects"],
        &mut c,
    );

    let not_config = copy_checkpoint("not-config");
    std::fs::write(not_config.join("config.json"), "[1, 2, 3]").unwrap();
    sample(&not_config, &["config.json", "not a SamNet config"], &mut c);

    let empty_tok = copy_checkpoint("empty-tokenizer");
    std::fs::write(empty_tok.join("tokenizer.json"), "{}").unwrap();
    sample(
        &empty_tok,
        &["tokenizer.json", "not a tokenizer.json"],
        &mut c,
    );

    // Cut inside the decoder: the tokenizers crate panics on this by
    // itself; it must still be a clear error.
    let cut = copy_checkpoint("cut-tokenizer");
    let json = std::fs::read_to_string(cut.join("tokenizer.json")).unwrap();
    let at = json.find("\"decoder\"").unwrap() + 20;
    std::fs::write(cut.join("tokenizer.json"), &json[..at]).unwrap();
    sample(&cut, &["tokenizer.json", "not a tokenizer.json"], &mut c);

    let state = copy_checkpoint("state");
    std::fs::write(state.join("state.json"), "{\"step\": -3}").unwrap();
    sample(&state, &["state.json", "not a training state"], &mut c);

    // Resuming needs the optimizer state that an exported model lacks.
    let run = scratch("no-optimizer");
    let ckpt = copy_checkpoint("no-optimizer-src");
    std::fs::rename(&ckpt, run.join("checkpoint")).unwrap();
    std::fs::remove_file(run.join("checkpoint").join("optimizer.safetensors")).unwrap();
    c.fails(
        &[
            "train",
            "--resume",
            "--data",
            &shakespeare(),
            "--out",
            run.to_str().unwrap(),
        ],
        &["optimizer.safetensors", "cannot resume training"],
    );
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
    let long_text = format!("{}▢", "a".repeat(5000));
    for (args, needles) in [
        (
            vec!["infill", "open [___ hole"],
            vec!["column 6", "not closed"],
        ),
        (vec!["infill", "bad [___:x]"], vec!["length \"x\""]),
        (vec!["infill", "no holes"], vec!["no hole"]),
        (
            vec!["infill", "▢", "--hole", "0"],
            vec!["--hole must be 1..=4096 positions, got 0"],
        ),
        (
            vec!["infill", "▢", "--hole", "5000"],
            vec!["--hole must be 1..=4096 positions, got 5000"],
        ),
        (
            vec!["infill", "big [___:5000]"],
            vec!["column 5", "positions in 1..=4096"],
        ),
        (
            vec!["infill", "[___:4000] and [___:4000]"],
            vec!["more than 4096 positions", "longest sequence", "column 16"],
        ),
        (
            vec!["infill", &long_text],
            vec!["template takes 5001 positions", "more than the 4096"],
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--ckpt", &ckpt]);
        fails_clearly(&args, &needles);
    }
}

/// A masked (MDLM) checkpoint through every verb that samples: sample,
/// infill (known text kept), complete and eval, with the options of its
/// kind accepted and gaussian's refused.
#[test]
fn a_masked_checkpoint_samples_infills_completes_and_evaluates() {
    let run = scratch("masked-run");
    let (ok, _, err) = samnet(&[
        "train",
        "--preset",
        "tiny-masked",
        "--steps",
        "3",
        "--data",
        &shakespeare(),
        "--out",
        run.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(ok, "{err}");
    let ckpt = run.join("checkpoint");
    let ckpt = ckpt.to_str().unwrap();
    let config = std::fs::read_to_string(run.join("checkpoint/config.json")).unwrap();
    assert!(config.contains("\"kind\": \"masked\""), "{config}");
    let (ok, out, err) = samnet(&[
        "sample", "--ckpt", ckpt, "--len", "12", "--steps", "4", "--order", "random",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim_end_matches('\n').chars().count(), 12, "{out:?}");
    let (ok, out, err) = samnet(&["infill", "ROMEO:[___:5]!", "--ckpt", ckpt, "--steps", "3"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("ROMEO:") && out.trim_end_matches('\n').ends_with('!'),
        "{out:?}"
    );
    let file = run.join("speech.txt");
    std::fs::write(&file, "To be, or not\nthat is\n").unwrap();
    let (ok, out, err) = samnet(&[
        "complete",
        "--ckpt",
        ckpt,
        "--file",
        file.to_str().unwrap(),
        "--line",
        "2",
        "--col",
        "5",
        "--hole",
        "3",
        "--len",
        "24",
        "--steps",
        "3",
    ]);
    assert!(ok, "{err}");
    assert!(!out.is_empty(), "complete printed nothing");
    let (ok, out, err) = samnet(&[
        "eval",
        "--ckpt",
        ckpt,
        "--data",
        &shakespeare(),
        "--len",
        "16",
        "--steps",
        "2",
        "--samples-only",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("valid_word_rate"), "{out}");
    fails_clearly(
        &["sample", "--ckpt", ckpt, "--eta", "0.5"],
        &["--eta does not apply", "\"masked\""],
    );
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
    // At the end of the file the text may end with the hole; not before.
    let (ok, stdout, err) = samnet(&[
        "complete", "--ckpt", &ckpt, "--file", &file_arg, "--line", "2", "--col", "99", "--hole",
        "6", "--len", "48", "--steps", "4", "--ends",
    ]);
    assert!(ok && !stdout.is_empty(), "{err}");
    fails_clearly(
        &[
            "complete", "--ckpt", &ckpt, "--file", &file_arg, "--line", "2", "--col", "8", "--ends",
        ],
        &[
            "speech.txt",
            "--ends completes at the end of the file",
            "line 2, column 8",
        ],
    );
    fails_clearly(
        &[
            "complete", "--ckpt", &ckpt, "--file", &file_arg, "--line", "1", "--hole", "64",
            "--len", "64",
        ],
        &["--hole must be 1..64 positions (fewer than --len 64), got 64"],
    );
    fails_clearly(
        &[
            "complete", "--ckpt", &ckpt, "--file", &file_arg, "--line", "1", "--len", "0",
        ],
        &["--len must be 1..=4096 positions, got 0"],
    );
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
    fails_clearly(
        &args,
        &["folder", "no .txt, .py, .json, .jsonl or .gz files"],
    );
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

    // The prose infilling figure: held-out sentences of the book, a hole each.
    let (ok, stdout, err) = samnet(&[
        "eval-infill",
        "--ckpt",
        phase2.join("checkpoint").to_str().unwrap(),
        "--data",
        &book,
        "--sentences",
        "3",
        "--len",
        "32",
        "--steps",
        "2",
    ]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["sentences"], 3);
    for r in report["results"].as_array().unwrap() {
        assert_eq!(r["hidden"].as_str().unwrap().chars().count(), 20, "{r}");
        assert!(r["words_right"].as_u64() <= r["words"].as_u64(), "{r}");
    }
    let accuracy = report["exact_word_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));

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
        err.contains("a window that starts at one ends with it"),
        "{err}"
    );
    assert!(
        err.contains(r#"diffusion settings differ"#)
            && err.contains(r#"known_positions "noised" → "clean""#),
        "{err}"
    );
    let windows = err
        .lines()
        .find(|l| l.starts_with("warning: the windows are drawn unlike"))
        .unwrap_or_else(|| panic!("no warning that the windows differ: {err}"));
    assert!(
        windows.contains(": pad_examples false → true (") && !windows.contains("lr "),
        "only the settings that shape a window are named: {windows}"
    );
    let c4 = config(&phase4);
    assert_eq!(c4["diffusion"]["known_positions"], "clean");
    assert_eq!(c4["model"]["vocab_size"], 300);

    // Phase 4's figure: the 20 held-out seed tasks, each response scored by
    // ROUGE-L beside copying the instruction.
    let phase4_ckpt = phase4.join("checkpoint");
    let tasks = shared_data("alpaca_seed_tasks.jsonl");
    let eval_instruct = |extra: &[&str]| {
        let mut args = vec![
            "eval-instruct",
            "--ckpt",
            phase4_ckpt.to_str().unwrap(),
            "--tasks",
            &tasks,
            "--len",
            "32",
            "--hole",
            "12",
            "--steps",
            "2",
        ];
        args.extend_from_slice(extra);
        samnet(&args)
    };
    // Three batches, the last of six tasks.
    let (ok, stdout, err) = eval_instruct(&["--order", "blocks", "--batch", "7"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["tasks"], 20);
    // The report says how it decoded: the order asked for, the checkpoint's temperature.
    assert_eq!(report["order"], "blocks");
    assert_eq!(report["temperature"], c4["diffusion"]["temperature"]);
    assert_eq!(report["results"].as_array().unwrap().len(), 20);
    for key in ["rouge_l", "copy_instruction_rouge_l"] {
        assert!(
            (0.0..=1.0).contains(&report[key].as_f64().unwrap()),
            "{key}"
        );
    }
    assert!(report["copy_instruction_rouge_l"].as_f64().unwrap() > 0.0);
    let words: usize = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["response"].as_str().unwrap().split_whitespace().count())
        .sum();
    assert_eq!(report["response_words_mean"], words as f64 / 20.0);
    assert_eq!(report["hole_end"], "open");
    reads_its_prompt_is_scored(&report);
    assert!(report["held_out"].is_string() && report["trained"].is_null());
    let held_out_first = report["results"][0]["task"].clone();
    // A task's draws are its own, not its batch's: one batch of all 20
    // answers each task as the three batches did.
    let (ok, stdout, err) = eval_instruct(&["--order", "blocks"]);
    assert!(ok, "{err}");
    let one_batch: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let responses = |r: &serde_json::Value| {
        let results = r["results"].as_array().unwrap();
        results
            .iter()
            .map(|t| t["response"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(responses(&one_batch), responses(&report));
    // Answers that end with the hole (the separator known after it), here
    // on 20 seed tasks that training read instead of the held-out ones.
    // Three responses a task, the one most like the others kept.
    let (ok, stdout, err) = eval_instruct(&["--ends", "--split", "trained", "--samples", "3"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (report["hole"].as_u64(), report["hole_end"].as_str()),
        (Some(12), Some("document"))
    );
    assert_eq!(report["tasks"], 20);
    assert_eq!(report["samples"], 3);
    let (mut one_draw_sum, mut best_sum) = (0.0, 0.0);
    for result in report["results"].as_array().unwrap() {
        let candidates: Vec<&str> = result["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let scores: Vec<f64> = result["candidates_rouge_l"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!((candidates.len(), scores.len()), (3, 3));
        let kept = result["kept"].as_u64().unwrap() as usize;
        assert_eq!(kept, samnet_core::metrics::most_agreed(&candidates));
        assert_eq!(result["response"], candidates[kept]);
        assert_eq!(result["rouge_l"], scores[kept]);
        one_draw_sum += scores.iter().sum::<f64>() / 3.0;
        best_sum += scores.iter().copied().fold(0.0, f64::max);
    }
    let close = |key: &str, sum: f64| (report[key].as_f64().unwrap() - sum / 20.0).abs() < 1e-12;
    assert!(close("one_draw_rouge_l", one_draw_sum) && close("best_candidate_rouge_l", best_sum));
    let kept_mean = report["rouge_l"].as_f64().unwrap();
    assert!(kept_mean <= report["best_candidate_rouge_l"].as_f64().unwrap() + 1e-12);
    assert!(report["trained"].is_string() && report["held_out"].is_null());
    let trained_first = report["results"][0]["task"].as_str().unwrap();
    assert!(trained_first.ends_with(" line 2"), "{trained_first}");
    assert_ne!(report["results"][0]["task"], held_out_first);
    fails_clearly(
        &[
            "eval-instruct",
            "--ckpt",
            phase4.join("checkpoint").to_str().unwrap(),
            "--tasks",
            &shared_data("alpaca_sample.json"),
        ],
        &["alpaca_sample.json"],
    );

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

/// Code completion on HumanEval's held-out fifth, from a model trained on
/// the other four fifths: all 33 problems completed and scored, and their
/// tests run where Python exists.
#[test]
fn eval_code_scores_the_held_out_humaneval_problems() {
    let run = scratch("code");
    let humaneval = shared_data("humaneval.jsonl.gz");
    // The held-out prompts use one character (`) the training problems lack.
    let extra = run.join("extra.py");
    std::fs::write(&extra, "quoted = '`'\n").unwrap();
    let out = run.join("model");
    let (ok, _, err) = samnet(&[
        "train",
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--data",
        &humaneval,
        extra.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("131 HumanEval problem(s) (33 held out"),
        "{err}"
    );
    let python = Command::new("python3").arg("--version").output().is_ok();
    let ckpt = out.join("checkpoint");
    let mut args = vec![
        "eval-code",
        "--ckpt",
        ckpt.to_str().unwrap(),
        "--problems",
        &humaneval,
        "--steps",
        "2",
        "--len",
        "32",
        "--hole",
        "16",
        // Six batches, the last of three problems.
        "--batch",
        "6",
    ];
    if python {
        args.push("--run-tests");
    } else {
        println!("python3 not found: the tests of the completions are not run");
    }
    let (ok, stdout, err) = samnet(&args);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["problems"], 33);
    assert!(report["held_out"].is_string());
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 33);
    for r in results {
        let n: usize = r["task_id"].as_str().unwrap()[10..].parse().unwrap();
        assert_eq!(n % 5, 0, "{r}");
        assert_eq!(r["compiles"].is_boolean(), python, "{r}");
        if python {
            let test = r["test"].as_str().unwrap();
            assert!(["passed", "failed", "timeout"].contains(&test), "{r}");
            assert!(test != "passed" || r["compiles"] == true, "{r}");
        }
    }
    let exact = report["exact_match"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&exact));
    assert_eq!(report["passed"].is_u64(), python);
    assert_eq!(report["compiled"].is_u64(), python);
    reads_its_prompt_is_scored(&report);
    let batch_at = args.iter().position(|a| *a == "--batch").unwrap();
    let no_batch: Vec<&str> = args[..batch_at]
        .iter()
        .copied()
        .chain(["--batch", "0"])
        .collect();
    let (ok, _, err) = samnet(&no_batch);
    assert!(!ok && err.contains("--batch must be at least 1"), "{err}");

    // Bodies that end with their holes, two sizes taking the candidates in
    // turn: the report names the sizes, each kept body the size it came from.
    let ending = |holes: &str, samples: &str| {
        let mut a: Vec<&str> = args[..5].to_vec();
        a.extend(["--steps", "2", "--len", "32", "--limit", "2", "--ends"]);
        a.extend(["--hole", holes, "--samples", samples, "--temperature", "1"]);
        samnet(&a)
    };
    let (ok, stdout, err) = ending("4,6", "4");
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["hole"], serde_json::json!([4, 6]));
    assert_eq!(report["hole_end"], "document");
    for r in report["results"].as_array().unwrap() {
        assert!([4, 6].contains(&r["hole"].as_u64().unwrap()), "{r}");
        assert_eq!(r["chosen"]["candidates"].as_array().unwrap().len(), 4);
    }
    let (ok, _, err) = ending("4,6,8", "2");
    assert!(
        !ok && err.contains("3 hole sizes need at least as many --samples, got 2"),
        "{err}"
    );

    // The same figure on problems that training read: the one after each
    // held-out problem.
    let mut trained: Vec<&str> = args[..5].to_vec();
    trained.extend(["--steps", "2", "--len", "32", "--limit", "2"]);
    trained.extend(["--hole", "8", "--split", "trained"]);
    let (ok, stdout, err) = samnet(&trained);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["trained"].is_string() && report["held_out"].is_null());
    let ids: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["HumanEval/1", "HumanEval/6"]);
    assert_eq!(report["prompt_as"], "example");
    trained.extend(["--prompt-as", "cursor"]);
    let (ok, stdout, err) = samnet(&trained);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["prompt_as"], "cursor");

    // Single-line infilling on the first two held-out problems: one case per
    // non-blank line of their canonical bodies, each beside the blank baseline.
    args.truncate(5);
    args.extend([
        "--steps",
        "2",
        "--len",
        "128",
        "--single-line",
        "--limit",
        "2",
        // Three candidates a line, one kept.
        "--samples",
        "3",
    ]);
    if python {
        args.push("--run-tests");
    }
    let (ok, stdout, err) = samnet(&args);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["problems"], 2);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len() as u64, report["lines"].as_u64().unwrap());
    assert!(results.len() >= 2, "{report}");
    for r in results {
        assert!(
            ["HumanEval/0", "HumanEval/5"].contains(&r["task_id"].as_str().unwrap()),
            "{r}"
        );
        assert!(!r["filled"].as_str().unwrap().contains('\n'), "{r}");
        let chosen = &r["chosen"];
        let candidates = chosen["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 3, "{r}");
        assert_eq!(
            candidates[chosen["index"].as_u64().unwrap() as usize],
            r["filled"]
        );
        assert!((1..=3).contains(&chosen["votes"].as_u64().unwrap()), "{r}");
        // (passed, stated) where the candidate ran; nothing runs without Python.
        assert!(python || chosen["examples"].is_null(), "{r}");
        if python {
            for key in ["test", "blank_test"] {
                assert!(
                    ["passed", "failed", "timeout"].contains(&r[key].as_str().unwrap()),
                    "{r}"
                );
            }
        }
    }
    assert_eq!(report["blank_pass_rate"].is_f64(), python);
    if python {
        let any = report["any_passed"].as_u64().unwrap();
        assert!(any >= report["passed"].as_u64().unwrap(), "{report}");
        assert!(any >= report["voted_passed"].as_u64().unwrap(), "{report}");
        let share = report["candidate_pass_rate"].as_f64().unwrap();
        assert!(share <= any as f64 / results.len() as f64, "{report}");
    }
    assert_eq!(report["hole_end"], "open");

    // The file known to end after the body: the same lines, each filled.
    args.retain(|a| *a != "--run-tests");
    let limit = args.iter().position(|a| *a == "--limit").unwrap();
    args[limit + 1] = "1";
    args.push("--ends");
    let (ok, stdout, err) = samnet(&args);
    assert!(ok, "{err}");
    let ending: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(ending["hole_end"], "document");
    let lines = |r: &serde_json::Value| r["results"].as_array().unwrap().len();
    let first_problems_lines = results
        .iter()
        .filter(|r| r["task_id"] == "HumanEval/0")
        .count();
    assert_eq!(lines(&ending), first_problems_lines, "{ending}");
}

/// Whether a model reads its prompt (`reference_nll`): the references scored
/// under their own prompts and under another case's, at each of the five
/// validation timesteps, the means their average.
fn reads_its_prompt_is_scored(report: &serde_json::Value) {
    let nll = &report["reference_nll"];
    let by_t = nll["by_t"].as_array().unwrap();
    assert_eq!(by_t.len(), 5, "{nll}");
    for key in ["own_prompt", "another_tasks_prompt"] {
        let mean = nll[key].as_f64().unwrap();
        assert!(mean.is_finite() && mean > 0.0, "{nll}");
        let of_t: f64 = by_t.iter().map(|x| x[key].as_f64().unwrap()).sum::<f64>() / 5.0;
        assert!((mean - of_t).abs() < 1e-9, "{nll}");
    }
}

/// A copy of `native/tests/fixtures/run` (a few logged steps, two
/// evaluations, a checkpoint/ with config.json and state.json).
fn fixture_run(name: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run");
    let run = scratch(name).join("run");
    copy(&fixture, &run);
    run
}

#[test]
fn report_draws_a_chart_per_logged_series_and_the_samples() {
    let run = fixture_run("report");
    let (ok, _, err) = samnet(&["report", run.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        err.starts_with("wrote ") && err.contains("(5 logged steps)"),
        "{err}"
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let charts = [
        "loss",
        "mse",
        "ce",
        "grad_norm",
        "lr",
        "tokens_per_s",
        "loss_scale",
        "gpu_memory_bytes",
        "val-ce",
        "val-mse",
        "sample-quality",
    ];
    for chart in charts {
        let figure = html
            .split(&format!("<figure class=\"chart\" id=\"chart-{chart}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("no chart {chart}"));
        let figure = &figure[..figure.find("</figure>").unwrap()];
        assert!(
            figure.contains("<svg") && figure.contains("<polyline"),
            "{chart}: {figure}"
        );
    }
    assert_eq!(html.matches("<svg").count(), charts.len());
    // No step was skipped, so there is no chart of them.
    assert!(!html.contains("chart-skipped_steps"));
    for legend in [
        "t = 50",
        "t = 950",
        "mean",
        "valid words",
        "diversity",
        "novelty",
    ] {
        assert!(html.contains(&format!("</i>{legend}</span>")), "{legend}");
    }
    // Each evaluation's samples, escaped, beside its step.
    let at_50 = html.split("id=\"samples-step-50\"").nth(1).unwrap();
    assert!(at_50.contains("<pre>ROMEO: &lt;b&gt;thee&lt;/b&gt; &amp; me</pre>"));
    assert!(at_50.contains("<pre>KING:\n&#39;tis &quot;so&quot;</pre>"));
    assert!(html.contains("id=\"samples-step-100\"") && html.contains("<pre>thou art</pre>"));
    // config.json and state.json from the run's checkpoint.
    assert!(html.contains("<caption>config: train</caption>"));
    let state = html.split("<caption>state.json</caption>").nth(1).unwrap();
    assert!(state[..state.find("</table>").unwrap()].contains("<th>step</th><td>100</td>"));
    assert!(!html.contains("<script") && !html.contains("http"));

    let elsewhere = run.parent().unwrap().join("elsewhere.html");
    let (ok, _, err) = samnet(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(elsewhere).unwrap(), html);
}

#[test]
fn report_names_the_malformed_line_of_a_log() {
    let run = fixture_run("report-bad");
    let log = run.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.insert_str(text.find('\n').unwrap() + 1, "{\"step\": 2, \"loss\": }\n");
    std::fs::write(&log, text).unwrap();
    let run = run.to_str().unwrap();
    fails_clearly(&["report", run], &["metrics.jsonl:2: not JSON"]);
    assert!(!Path::new(run).join("report.html").exists());
    let empty = scratch("report-none");
    fails_clearly(&["report", empty.to_str().unwrap()], &["metrics.jsonl"]);
}
