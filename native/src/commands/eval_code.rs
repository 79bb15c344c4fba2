//! `samnet eval-code`: the code-completion figure. Each held-out HumanEval
//! problem's prompt (signature and docstring) is known, the positions after
//! it are denoised, and the body — cut where the function ends — is scored
//! by exact match with the canonical body and, with `--run-tests`, by
//! running the problem's tests on it (pass@1 at the checkpoint's decoding
//! temperature, or `--temperature`), beside whether the prompt and body
//! compile at all.
//!
//! Beside it, whether the model reads the docstring at all
//! ([`crate::prompt_use`]): the canonical bodies scored given their own
//! prompts and given the next held-out problem's.
//!
//! `--single-line` is the benchmark where two-sided context counts: every
//! non-blank line of each held-out canonical body is hidden in turn and
//! denoised from the code before and after it (the hole as long as the line,
//! in tokens where it stands, as diffusion infilling benchmarks give it:
//! [`Known::around_hidden`]), then the problem's tests run on the body with
//! the fill's first non-blank line in its place ([`humaneval::filled_line`])
//! — beside the trivial filling, `pass` at the line's indentation.
//!
//! `--samples N` draws N candidates for every hole, each from its own noise,
//! and keeps one without the problem's tests: the candidate that passes the
//! most examples stated in the prompt (with `--run-tests`;
//! [`humaneval::examples`]), then the one the most candidates agree with
//! (self-consistency), then the first. Its tests give pass@1 after that
//! selection; beside it the report gives the pass rate of the most frequent
//! candidate alone (`voted_pass_rate`, no code run to choose), the expected
//! pass rate of one draw (`candidate_pass_rate`) and the holes where any
//! candidate passes (`any_passed`).
//!
//! `--split trained` scores as many problems that training read (task
//! numbers 1, 6, …) instead of the held-out fifth: a model that fails those
//! too has not fitted what it trained on.
//!
//! `--prompt-as example` (the default) lays a completion out as training
//! reads a HumanEval problem: the prompt tokenized on its own, its closing
//! newline known, the body's hole after it. `--prompt-as cursor` is the
//! layout of `samnet complete`, the prompt's closing whitespace left to the
//! model, one position earlier than any training example starts a body
//! (the figures in docs/pipeline.md before 2026-12-06 were measured so).
//!
//! `--ends` makes each body end with its hole (the separator known after
//! it: [`HoleEnd::Document`]), and `--hole` may list several sizes that the
//! candidates take in turn: bodies of every length, each written whole.
//! With `--single-line` it makes the file end after the body's last line.

use std::path::PathBuf;

use anyhow::Context;
use samnet_core::conditioning::{HoleEnd, Known};
use samnet_core::corpus::read_data_file;
use samnet_core::data::text_from_bytes;
use samnet_core::gpu::GpuOptions;
use samnet_core::humaneval::{self, Problem};
use serde_json::json;

use crate::prompt_use::prompt_use;
use crate::python::{Python, Run, compile_check};
use crate::run::{
    EvalDenoising, EvalSampling, Filled, Loaded, Split, fill_holes, load_checkpoint, with_decoding,
};

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
    /// Positions the body may take; several sizes (`--hole 16,32,64`) take
    /// each problem's candidates in turn (`--samples` at least as many).
    #[arg(long, value_delimiter = ',', default_value = "128")]
    hole: Vec<usize>,
    /// The body ends with the hole: the separator (the end of the file)
    /// known right after it, so each candidate is a whole body of at most
    /// its hole's positions, not the start of a longer one cut off. With
    /// --single-line, the separator is known after the body's last line,
    /// as a padded training example ends.
    #[arg(long)]
    ends: bool,
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
    /// Single-line infilling: hide each line of each canonical body scored
    /// in turn and fill it from both sides.
    #[arg(long)]
    single_line: bool,
    /// Only the first N problems of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Which problems: the held-out fifth, or as many that training read
    /// (task numbers 1, 6, …), to tell a model that has not fitted what it
    /// trained on from one that does not generalise it.
    #[arg(long, value_enum, default_value_t = Split::HeldOut)]
    split: Split,
    /// How the prompt meets the body: as training reads a HumanEval
    /// problem (`example`), or as `samnet complete` meets a cursor after it
    /// (`cursor`).
    #[arg(long, value_enum, default_value_t = PromptAs::Example)]
    prompt_as: PromptAs,
    /// Candidates drawn for every hole, one kept (see above); use a
    /// temperature above 0: at 0 they differ only through their starting
    /// noise, and mostly agree.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    samples: u32,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let loaded = load_checkpoint(&args.ckpt)?;
    let cfg = &loaded.snapshot.config;
    let origin = args.problems.display().to_string();
    let text = text_from_bytes(read_data_file(&args.problems)?, &origin)?;
    let chosen = match args.split {
        Split::HeldOut => Problem::is_held_out,
        Split::Trained => Problem::is_trained_probe,
    };
    let problems: Vec<Problem> = humaneval::parse(&text, &origin)?
        .into_iter()
        .filter(chosen)
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    if problems.is_empty() {
        anyhow::bail!("{origin}: no problems of {}", problems_of(args.split));
    }
    let sampling = args.denoising.resolve(cfg)?;
    let python = if args.run_tests {
        Some(Python::new(&args.python, args.timeout)?)
    } else {
        None
    };
    if args.single_line {
        return single_line(&args, options, &loaded, &problems, &sampling, python);
    }

    let samples = args.samples as usize;
    if args.hole.len() > samples {
        anyhow::bail!(
            "{} hole sizes need at least as many --samples, got {samples}",
            args.hole.len()
        );
    }
    let end = HoleEnd::ending(args.ends);
    // One row per candidate: every problem's prompt, then its hole, the
    // sizes in turn.
    let mut rows = Vec::new();
    for p in &problems {
        let by_size = args
            .hole
            .iter()
            .map(|&hole| {
                let tokenizer = &loaded.tokenizer;
                let prompt = (p.prompt.as_str(), p.signature());
                match args.prompt_as {
                    PromptAs::Example => {
                        Known::after_prompt(tokenizer, prompt, hole, sampling.len, end)
                    }
                    PromptAs::Cursor => {
                        Known::completion(tokenizer, prompt.0, prompt.1, (hole, end), sampling.len)
                    }
                }
            })
            .collect::<samnet_core::Result<Vec<_>>>()
            .with_context(|| format!("{}: the prompt of {}", origin, p.task_id))?;
        rows.extend((0..samples).map(|j| by_size[j % by_size.len()].clone()));
    }
    let Filled {
        gpu,
        model,
        fills,
        seconds: sampling_s,
    } = fill_holes(options, &loaded, &rows, &sampling)?;
    let prompts: Vec<&str> = problems.iter().map(|p| p.prompt.as_str()).collect();
    let canonical: Vec<&str> = problems
        .iter()
        .map(|p| p.canonical_solution.as_str())
        .collect();
    let reference_nll = prompt_use(
        (&gpu, &model, &loaded.tokenizer),
        (&prompts, &canonical),
        (sampling.len, sampling.batch),
    )?;
    let bodies: Vec<&str> = fills.iter().map(|f| humaneval::function_body(f)).collect();
    let checks = match &python {
        Some(python) => {
            let candidates: Vec<(&Problem, String)> = problems
                .iter()
                .flat_map(|p| std::iter::repeat_n(p, samples))
                .zip(&bodies)
                .map(|(p, body)| (p, body.to_string()))
                .collect();
            Some(CandidateChecks::run(python, &candidates, true)?)
        }
        None => None,
    };

    let mut results = Vec::new();
    let mut tally = Tally::default();
    for (i, p) in problems.iter().enumerate() {
        let span = i * samples..(i + 1) * samples;
        let candidates = &bodies[span.clone()];
        let chosen = choose(
            candidates,
            checks.as_ref(),
            span.start,
            humaneval::same_code,
        );
        let voted = span.start + choose(candidates, None, 0, humaneval::same_code).index;
        let body = candidates[chosen.index];
        let is_exact = humaneval::same_code(body, &p.canonical_solution);
        let k = span.start + chosen.index;
        tally.count(is_exact, checks.as_ref(), span, (k, voted));
        results.push(json!({
            "task_id": p.task_id,
            "exact": is_exact,
            "test": checks.as_ref().map(|c| c.tests[k].outcome),
            "compiles": checks.as_ref().map(|c| c.compiles[k].passed()),
            "completion": body,
            "hole": args.hole[chosen.index % args.hole.len()],
            "chosen": chosen.json(args.samples, candidates),
        }));
    }
    let n = problems.len() as f64;
    let run_tests = python.is_some();
    let report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "adapter": gpu.info.name,
        "problems": problems.len(),
        "steps": sampling.options.steps,
        "len": sampling.len,
        "hole": args.hole,
        "hole_end": end,
        "prompt_as": args.prompt_as,
        "seed": sampling.options.seed,
        "samples": args.samples,
        "selection": selection(args.samples, run_tests),
        "exact_match": tally.exact as f64 / n,
        "compiled": run_tests.then_some(tally.compiled),
        "reference_nll": reference_nll,
        "sampling_s": sampling_s,
    });
    let report = with_decoding(report, &sampling.options, cfg.diffusion.kind);
    print_report(
        report,
        args.split,
        tally.json(problems.len(), run_tests),
        results,
    )
}

/// Where a completion's hole starts. Training reads a HumanEval problem as
/// an example, its prompt and body tokenized apart: the prompt's closing
/// newline is a token of its own, known, and the body's first token is its
/// indentation. A text file tokenizes the same place as one token, the
/// newline and the indentation together, which a cursor after the prompt
/// leaves for the model to write ([`Known::completion`]): one position
/// earlier than any training example put the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum PromptAs {
    /// The prompt tokenized on its own and known whole, as training reads it.
    Example,
    /// The prompt's closing whitespace left to the model, as at a cursor.
    Cursor,
}

/// The problems a split scores.
fn problems_of(split: Split) -> &'static str {
    match split {
        Split::HeldOut => "HumanEval task numbers divisible by 5",
        Split::Trained => "HumanEval task numbers 1, 6, 11, … (trained on)",
    }
}

/// The report with the problems scored, the shared figures and the results,
/// last, as JSON.
fn print_report(
    mut report: serde_json::Value,
    split: Split,
    figures: serde_json::Value,
    results: Vec<serde_json::Value>,
) -> anyhow::Result<()> {
    let object = report.as_object_mut().expect("a report is an object");
    object.insert(split.key().into(), problems_of(split).into());
    if let serde_json::Value::Object(figures) = figures {
        object.extend(figures);
    }
    object.insert("results".into(), results.into());
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `--single-line`: every line of every body scored filled from both sides.
fn single_line(
    args: &Args,
    options: &GpuOptions,
    loaded: &Loaded,
    problems: &[Problem],
    sampling: &EvalSampling,
    python: Option<Python>,
) -> anyhow::Result<()> {
    let origin = args.problems.display().to_string();
    let samples = args.samples as usize;
    let mut rows = Vec::new();
    let mut cases = Vec::new();
    for p in problems {
        for hole in humaneval::line_holes(p) {
            let around = (
                hole.before.as_str(),
                hole.hidden.as_str(),
                hole.after.as_str(),
            );
            let end = HoleEnd::ending(args.ends);
            let row =
                Known::around_hidden(&loaded.tokenizer, around, end, p.signature(), sampling.len)
                    .with_context(|| format!("{origin}: {} line {}", p.task_id, hole.line + 1))?;
            rows.extend(std::iter::repeat_n(row, samples));
            cases.push((p, hole));
        }
    }
    let Filled {
        gpu,
        fills,
        seconds: sampling_s,
        ..
    } = fill_holes(options, loaded, &rows, sampling)?;
    let lines: Vec<&str> = fills.iter().map(|f| humaneval::filled_line(f)).collect();
    let (checks, blanks) = match &python {
        Some(python) => {
            let candidates: Vec<(&Problem, String)> = cases
                .iter()
                .flat_map(|case| std::iter::repeat_n(case, samples))
                .zip(&lines)
                .map(|((p, hole), line)| (*p, hole.body_with(p, line)))
                .collect();
            let checks = CandidateChecks::run(python, &candidates, false)?;
            let blanks: Vec<String> = cases
                .iter()
                .map(|(p, hole)| p.test_program(&hole.body_with(p, &hole.blank())))
                .collect();
            (Some(checks), python.run_all(&blanks)?)
        }
        None => (None, Vec::new()),
    };
    let same_line = |a: &str, b: &str| a.trim_end() == b.trim_end();
    let mut tally = Tally::default();
    let mut blank_passed = 0;
    let mut results = Vec::new();
    for (i, (p, hole)) in cases.iter().enumerate() {
        let span = i * samples..(i + 1) * samples;
        let candidates = &lines[span.clone()];
        let chosen = choose(candidates, checks.as_ref(), span.start, same_line);
        let voted = span.start + choose(candidates, None, 0, same_line).index;
        let k = span.start + chosen.index;
        let is_exact = same_line(lines[k], &hole.hidden);
        tally.count(is_exact, checks.as_ref(), span, (k, voted));
        let blank = blanks.get(i).map(|r| r.outcome);
        blank_passed += usize::from(blank == Some("passed"));
        results.push(json!({
            "task_id": p.task_id,
            "line": hole.line + 1,
            "hidden": hole.hidden,
            "filled": lines[k],
            "fill": fills[k],
            "exact": is_exact,
            "test": checks.as_ref().map(|c| c.tests[k].outcome),
            "blank_test": blank,
            "chosen": chosen.json(args.samples, candidates),
        }));
    }
    let n = cases.len().max(1) as f64;
    let run_tests = python.is_some();
    let report = json!({
        "checkpoint": loaded.dir.display().to_string(),
        "adapter": gpu.info.name,
        "benchmark": "single-line infilling: each non-blank line of each canonical body scored hidden, filled from the code before and after it (hole = the line's length in tokens where it stands), the fill's first non-blank line in its place",
        "problems": problems.len(),
        "lines": cases.len(),
        "hole_end": HoleEnd::ending(args.ends),
        "steps": sampling.options.steps,
        "len": sampling.len,
        "seed": sampling.options.seed,
        "samples": args.samples,
        "selection": selection(args.samples, run_tests),
        "exact_line": tally.exact as f64 / n,
        "blank_pass_rate": run_tests.then(|| blank_passed as f64 / n),
        "blank_passed": run_tests.then_some(blank_passed),
        "sampling_s": sampling_s,
    });
    let report = with_decoding(
        report,
        &sampling.options,
        loaded.snapshot.config.diffusion.kind,
    );
    print_report(
        report,
        args.split,
        tally.json(cases.len(), run_tests),
        results,
    )
}

fn selection(samples: u32, run_tests: bool) -> &'static str {
    match (samples, run_tests) {
        (1, _) => "the one candidate",
        (_, true) => {
            "the candidate passing the most of the prompt's examples, then the most frequent, then the first"
        }
        (_, false) => "the most frequent candidate, then the first",
    }
}

/// Every candidate's runs: the prompt's examples, the problem's tests and
/// (for completions) the compile check, all at once.
struct CandidateChecks {
    examples: Vec<Option<(usize, usize)>>,
    tests: Vec<Run>,
    compiles: Vec<Run>,
}

impl CandidateChecks {
    /// Runs every candidate — its problem and the whole body it makes —
    /// against the prompt's examples and the problem's tests, and with
    /// `compile` through the compile check of the prompt and body.
    fn run(
        python: &Python,
        candidates: &[(&Problem, String)],
        compile: bool,
    ) -> anyhow::Result<Self> {
        let examples = candidates
            .iter()
            .map(|(p, body)| humaneval::examples_program(p, body, &humaneval::examples(p)));
        let tests = candidates.iter().map(|(p, body)| p.test_program(body));
        let compiles = candidates
            .iter()
            .filter(|_| compile)
            .map(|(p, body)| compile_check(&format!("{}{body}", p.prompt)));
        let programs: Vec<String> = examples.chain(tests).chain(compiles).collect();
        let mut runs = python.run_all(&programs)?;
        let compiles = runs.split_off(2 * candidates.len());
        let tests = runs.split_off(candidates.len());
        let examples = runs.iter().map(|r| humaneval::tally(&r.stdout)).collect();
        Ok(Self {
            examples,
            tests,
            compiles,
        })
    }
}

/// The candidate kept, and why.
struct Chosen {
    index: usize,
    /// (passed, stated) of the prompt's examples, where they ran.
    examples: Option<(usize, usize)>,
    votes: usize,
}

impl Chosen {
    fn json(&self, samples: u32, candidates: &[&str]) -> serde_json::Value {
        if samples == 1 {
            return json!({ "examples": self.examples });
        }
        json!({
            "index": self.index,
            "examples": self.examples,
            "votes": self.votes,
            "candidates": candidates,
        })
    }
}

/// The candidate passing the most examples (`checks` from `offset` on),
/// then the one the most candidates are the same as, then the first.
fn choose(
    candidates: &[&str],
    checks: Option<&CandidateChecks>,
    offset: usize,
    same: impl Fn(&str, &str) -> bool,
) -> Chosen {
    let examples = |i: usize| checks.and_then(|c| c.examples[offset + i]);
    let votes = |i: usize| candidates.iter().filter(|c| same(c, candidates[i])).count();
    let index = (0..candidates.len())
        .max_by_key(|&i| {
            let passed = examples(i).map_or(0, |(passed, _)| passed);
            (
                passed,
                examples(i).is_some(),
                votes(i),
                std::cmp::Reverse(i),
            )
        })
        .expect("at least one candidate");
    Chosen {
        index,
        examples: examples(index),
        votes: votes(index),
    }
}

#[derive(Default)]
struct Tally {
    exact: usize,
    passed: usize,
    any_passed: usize,
    /// Passed by the most frequent candidate alone (no example run).
    voted_passed: usize,
    /// Sum over holes of the share of candidates that pass: divided by the
    /// holes, the expected pass@1 of a single draw.
    candidate_share: f64,
    compiled: usize,
}

impl Tally {
    /// One hole: its candidates at `span` of `checks`, the one kept and the
    /// most frequent one at `chosen` and `voted`.
    fn count(
        &mut self,
        exact: bool,
        checks: Option<&CandidateChecks>,
        span: std::ops::Range<usize>,
        (chosen, voted): (usize, usize),
    ) {
        self.exact += usize::from(exact);
        if let Some(c) = checks {
            let tests = &c.tests[span];
            let passing = tests.iter().filter(|r| r.passed()).count();
            self.passed += usize::from(c.tests[chosen].passed());
            self.voted_passed += usize::from(c.tests[voted].passed());
            self.any_passed += usize::from(passing > 0);
            self.candidate_share += passing as f64 / tests.len() as f64;
            self.compiled += usize::from(c.compiles.get(chosen).is_some_and(Run::passed));
        }
    }

    /// The figures every report shares, `None` without tests.
    fn json(&self, holes: usize, run_tests: bool) -> serde_json::Value {
        let n = holes.max(1) as f64;
        let rate = |k: usize| run_tests.then(|| k as f64 / n);
        json!({
            "pass_rate": rate(self.passed),
            "passed": run_tests.then_some(self.passed),
            "any_passed": run_tests.then_some(self.any_passed),
            "voted_passed": run_tests.then_some(self.voted_passed),
            "voted_pass_rate": rate(self.voted_passed),
            "candidate_pass_rate": run_tests.then(|| self.candidate_share / n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: canonical bodies pass their tests, a wrong body
    /// fails.
    #[test]
    fn canonical_bodies_pass_wrong_ones_fail() {
        let Ok(python) = Python::new("python3", 10) else {
            println!("python3 not found: the harness is not exercised");
            return;
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/humaneval.jsonl.gz");
        let text = text_from_bytes(read_data_file(&path).unwrap(), "humaneval").unwrap();
        let problems = humaneval::parse(&text, "humaneval").unwrap();
        for p in problems.iter().filter(|p| p.is_held_out()).take(4) {
            let body = humaneval::function_body(&p.canonical_solution);
            assert!(
                humaneval::same_code(body, &p.canonical_solution),
                "{}",
                p.task_id
            );
            let runs = python
                .run_all(&[p.test_program(body), p.test_program("    return None\n")])
                .unwrap();
            assert_eq!(
                [runs[0].outcome, runs[1].outcome],
                ["passed", "failed"],
                "{}",
                p.task_id
            );
        }
    }

    fn checks(examples: &[Option<(usize, usize)>]) -> CandidateChecks {
        CandidateChecks {
            examples: examples.to_vec(),
            tests: Vec::new(),
            compiles: Vec::new(),
        }
    }

    #[test]
    fn examples_outrank_votes_which_outrank_order() {
        let same = |a: &str, b: &str| a == b;
        let lines = ["a", "b", "b", "c", "c"];
        // Without examples: the most frequent, the first of a tie.
        assert_eq!(choose(&lines, None, 0, same).index, 1);
        // Examples first, read from the candidates' offset.
        let ran = checks(&[
            Some((9, 9)),
            Some((1, 2)),
            Some((0, 2)),
            Some((0, 2)),
            None,
            Some((2, 2)),
        ]);
        let chosen = choose(&lines, Some(&ran), 1, same);
        assert_eq!(
            (chosen.index, chosen.examples, chosen.votes),
            (4, Some((2, 2)), 2)
        );
        // A candidate that ran outranks one that did not, at 0 passed.
        let ran = checks(&[None, None, Some((0, 2)), None, None]);
        assert_eq!(choose(&lines, Some(&ran), 0, same).index, 2);
        assert_eq!(choose(&["x"], Some(&ran), 4, same).index, 0);
    }
}
