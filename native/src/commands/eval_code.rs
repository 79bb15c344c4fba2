//! `samnet eval-code`: the code-completion figure. Each held-out HumanEval
//! problem's prompt (signature and docstring) is known, the positions after
//! it are denoised, and the body — cut where the function ends — is scored
//! by exact match with the canonical body and, with `--run-tests`, by
//! running the problem's tests on it (pass@1 at the checkpoint's decoding
//! temperature, or `--temperature`), beside whether the prompt and body
//! compile at all.
//!
//! `--single-line` is the benchmark where two-sided context counts: every
//! non-blank line of each held-out canonical body is hidden in turn and
//! denoised from the code before and after it (the hole as long as the line,
//! in tokens where it stands, as diffusion infilling benchmarks give it:
//! [`Known::around_hidden`]), then the problem's tests run on the body with
//! the fill's first non-blank line in its place ([`humaneval::filled_line`])
//! — beside the trivial filling, `pass` at the line's indentation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use samnet_core::conditioning::Known;
use samnet_core::corpus::read_data_file;
use samnet_core::data::text_from_bytes;
use samnet_core::gpu::GpuOptions;
use samnet_core::humaneval::{self, Problem};
use serde_json::json;

use crate::run::{EvalDenoising, EvalSampling, Loaded, fill_holes, load_checkpoint};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// HumanEval problems (JSON Lines, optionally gzipped); the held-out
    /// fifth (task numbers divisible by 5) is evaluated.
    #[arg(long)]
    problems: PathBuf,
    #[command(flatten)]
    denoising: EvalDenoising,
    /// Positions the body may take.
    #[arg(long, default_value_t = 128)]
    hole: usize,
    /// Also run each problem's tests on its completion. This executes
    /// generated code: as with HumanEval's own harness, do it in a sandbox.
    #[arg(long)]
    run_tests: bool,
    /// The Python that runs the tests.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Seconds each test program may run.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Single-line infilling: hide each line of each held-out canonical body
    /// in turn and fill it from both sides.
    #[arg(long)]
    single_line: bool,
    /// Only the first N held-out problems.
    #[arg(long)]
    limit: Option<usize>,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let cfg = &loaded.snapshot.config;
    let origin = args.problems.display().to_string();
    let text = text_from_bytes(read_data_file(&args.problems)?, &origin)?;
    let problems: Vec<Problem> = humaneval::parse(&text, &origin)?
        .into_iter()
        .filter(Problem::is_held_out)
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    if problems.is_empty() {
        anyhow::bail!("{origin}: no held-out problems (task numbers divisible by 5)");
    }
    let sampling = args.denoising.resolve(cfg)?;
    let len = sampling.len;
    if args.run_tests {
        check_python(&args.python)?;
    }
    if args.single_line {
        return single_line(options, &args, &loaded, &problems, &sampling);
    }

    // One batch: every problem's prompt end, then its hole.
    let rows = problems
        .iter()
        .map(|p| {
            Known::around_cursor(
                &loaded.tokenizer,
                (&p.prompt, ""),
                p.signature(),
                args.hole,
                len,
            )
            .with_context(|| format!("{}: the prompt of {}", origin, p.task_id))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (gpu, fills, sampling_s) = fill_holes(options, &loaded, &rows, &sampling)?;

    let mut results = Vec::new();
    let (mut exact, mut passed, mut compiled) = (0, 0, 0);
    for (i, (p, generated)) in problems.iter().zip(&fills).enumerate() {
        let body = humaneval::function_body(generated);
        let is_exact = humaneval::same_code(body, &p.canonical_solution);
        exact += usize::from(is_exact);
        let (test, parses) = if args.run_tests {
            let outcome = run_test(&args.python, &p.test_program(body), args.timeout, 2 * i)?;
            let source = format!("{}{body}", p.prompt);
            let parses = compiles(&args.python, &source, args.timeout, 2 * i + 1)?;
            passed += usize::from(outcome == "passed");
            compiled += usize::from(parses);
            (Some(outcome), Some(parses))
        } else {
            (None, None)
        };
        results.push(json!({
            "task_id": p.task_id,
            "exact": is_exact,
            "test": test,
            "compiles": parses,
            "completion": body,
        }));
    }
    let n = problems.len();
    let report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "adapter": gpu.info.name,
        "problems": n,
        "held_out": "HumanEval task numbers divisible by 5",
        "steps": sampling.options.steps,
        "len": len,
        "hole": args.hole,
        "seed": sampling.options.seed,
        "exact_match": exact as f64 / n as f64,
        "pass_rate": args.run_tests.then(|| passed as f64 / n as f64),
        "passed": args.run_tests.then_some(passed),
        "compiled": args.run_tests.then_some(compiled),
        "sampling_s": sampling_s,
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `--single-line`: every line of every held-out body filled from both sides.
fn single_line(
    options: &GpuOptions,
    args: &Args,
    loaded: &Loaded,
    problems: &[Problem],
    sampling: &EvalSampling,
) -> anyhow::Result<()> {
    let len = sampling.len;
    let origin = args.problems.display().to_string();
    let tokenizer = &loaded.tokenizer;
    let mut rows = Vec::new();
    let mut cases = Vec::new();
    for p in problems {
        for hole in humaneval::line_holes(p) {
            let around = (
                hole.before.as_str(),
                hole.hidden.as_str(),
                hole.after.as_str(),
            );
            let row = Known::around_hidden(tokenizer, around, p.signature(), len)
                .with_context(|| format!("{origin}: {} line {}", p.task_id, hole.line + 1))?;
            rows.push(row);
            cases.push((p, hole));
        }
    }
    let (gpu, fills, sampling_s) = fill_holes(options, loaded, &rows, sampling)?;
    let (mut exact, mut passed, mut blank_passed) = (0, 0, 0);
    let mut results = Vec::new();
    for (i, ((p, hole), fill)) in cases.iter().zip(&fills).enumerate() {
        let filled = humaneval::filled_line(fill).to_string();
        let is_exact = filled.trim_end() == hole.hidden.trim_end();
        exact += usize::from(is_exact);
        let (test, baseline) = if args.run_tests {
            let run = |line: &str, k: usize| {
                let program = p.test_program(&hole.body_with(p, line));
                run_test(&args.python, &program, args.timeout, k)
            };
            let (test, baseline) = (run(&filled, 2 * i)?, run(&hole.blank(), 2 * i + 1)?);
            passed += usize::from(test == "passed");
            blank_passed += usize::from(baseline == "passed");
            (Some(test), Some(baseline))
        } else {
            (None, None)
        };
        results.push(json!({
            "task_id": p.task_id,
            "line": hole.line + 1,
            "hidden": hole.hidden,
            "filled": filled,
            "fill": fill,
            "exact": is_exact,
            "test": test,
            "blank_test": baseline,
        }));
    }
    let n = cases.len().max(1) as f64;
    let rate = |k: usize| args.run_tests.then(|| k as f64 / n);
    let report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "adapter": gpu.info.name,
        "benchmark": "single-line infilling: each non-blank line of each held-out canonical body hidden, filled from the code before and after it (hole = the line's length in tokens where it stands), the fill's first non-blank line in its place",
        "problems": problems.len(),
        "lines": cases.len(),
        "steps": sampling.options.steps,
        "len": len,
        "seed": sampling.options.seed,
        "exact_line": exact as f64 / n,
        "pass_rate": rate(passed),
        "passed": args.run_tests.then_some(passed),
        "blank_pass_rate": rate(blank_passed),
        "blank_passed": args.run_tests.then_some(blank_passed),
        "sampling_s": sampling_s,
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn check_python(python: &str) -> anyhow::Result<()> {
    let ok = Command::new(python)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        anyhow::bail!("--run-tests needs Python: cannot run '{python}' (pass --python PATH)");
    }
    Ok(())
}

/// Whether Python compiles `source` (the prompt and a completion): a
/// completion that does not is wrong before any test runs.
fn compiles(python: &str, source: &str, timeout: u64, index: usize) -> anyhow::Result<bool> {
    // A JSON string is a Python string literal.
    let check = format!("compile({}, 'completion', 'exec')\n", json!(source));
    Ok(run_test(python, &check, timeout, index)? == "passed")
}

/// "passed", "failed" or "timeout" for one test program.
fn run_test(
    python: &str,
    program: &str,
    timeout: u64,
    index: usize,
) -> anyhow::Result<&'static str> {
    let file = std::env::temp_dir().join(format!(
        "samnet-humaneval-{}-{index}.py",
        std::process::id()
    ));
    std::fs::write(&file, program).with_context(|| format!("writing {}", file.display()))?;
    let outcome = wait_for(python, &file, Duration::from_secs(timeout));
    std::fs::remove_file(&file).ok();
    outcome
}

fn wait_for(python: &str, file: &Path, timeout: Duration) -> anyhow::Result<&'static str> {
    let mut child = Command::new(python)
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {python}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(if status.success() { "passed" } else { "failed" });
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            return Ok("timeout");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: canonical bodies pass their tests, a wrong body
    /// fails, a body that never returns times out; the compile check tells
    /// Python from broken Python.
    #[test]
    fn canonical_bodies_pass_wrong_ones_fail_and_loops_time_out() {
        if check_python("python3").is_err() {
            println!("python3 not found: the harness is not exercised");
            return;
        }
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/humaneval.jsonl.gz");
        let text = text_from_bytes(read_data_file(&path).unwrap(), "humaneval").unwrap();
        let problems = humaneval::parse(&text, "humaneval").unwrap();
        for p in problems.iter().filter(|p| p.is_held_out()).take(4) {
            let body = humaneval::function_body(&p.canonical_solution);
            assert!(
                humaneval::same_code(body, &p.canonical_solution),
                "{}",
                p.task_id
            );
            let outcome = run_test("python3", &p.test_program(body), 10, 0).unwrap();
            assert_eq!(outcome, "passed", "{}", p.task_id);
            let wrong = run_test("python3", &p.test_program("    return None\n"), 10, 1).unwrap();
            assert_eq!(wrong, "failed", "{}", p.task_id);
        }
        assert!(compiles("python3", "def f(x):\n    return x  # é \"\\n\n", 10, 3).unwrap());
        assert!(!compiles("python3", "def f(x):\n    return x)\n", 10, 3).unwrap());
        let looping = problems[0].test_program("    while True:\n        pass\n");
        assert_eq!(run_test("python3", &looping, 1, 2).unwrap(), "timeout");
    }
}
