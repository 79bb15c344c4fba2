//! `samnet`: train, sample and inspect SamNet models on any WebGPU adapter.

mod commands;
mod dataset;
mod metrics_log;
mod progress;
mod prompt_use;
mod python;
mod report;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "samnet",
    version,
    about = "SamNet: a diffusion language model on WebGPU"
)]
struct Cli {
    /// GPU backend(s) to use: vulkan, metal, dx12, gl (comma-separated). Also WGPU_BACKEND.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Only use an adapter whose name contains this text.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model: phase 1 (TinyShakespeare, characters) to phase 4 (instructions); see --preset.
    Train(commands::train::Args),
    /// Generate text from a checkpoint.
    Sample(commands::sample::Args),
    /// Fill the holes of a text: `[___]`, `[___:N]` or `▢` positions.
    Infill(commands::infill::Args),
    /// Fill code at a cursor, with the code before and after it known.
    Complete(commands::complete::Args),
    /// Validation loss at fixed timesteps and sample quality, as JSON.
    Eval(commands::eval::Args),
    /// Code completion on HumanEval's held-out problems: exact match and (--run-tests) pass rate, as JSON.
    EvalCode(commands::eval_code::Args),
    /// Instruction following on the held-out seed tasks: ROUGE-L against their references beside copying the instruction, as JSON.
    EvalInstruct(commands::eval_instruct::Args),
    /// Infilling on prose: held-out sentences with a hole each, the share of hidden words put back, as JSON.
    EvalInfill(commands::eval_infill::Args),
    /// Benchmarks that print JSON.
    #[command(subcommand)]
    Bench(commands::bench::Bench),
    /// Write a checkpoint's weights (optionally f16), config and tokenizer for shipping.
    Export(commands::export::Args),
    /// Average the weights of checkpoints of one architecture (a model soup; WiSE-FT between a model and its fine-tuned child).
    Average(commands::average::Args),
    /// Render a training run's metrics.jsonl as one HTML page of charts and samples.
    Report(commands::report::Args),
    /// Check the GPU: adapter, features, limits, and a kernel self-test.
    Doctor(commands::doctor::Args),
    /// Tokenizers: train a byte-level BPE.
    #[command(subcommand)]
    Tokenizer(commands::tokenizer::Command),
}

fn main() {
    private_runtime_dir_if_unset();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error on one line, as every other error.
        Err(e) => {
            let text = e.render().to_string();
            eprintln!(
                "{} (see --help)",
                text.lines().next().unwrap_or("error: invalid arguments")
            );
            std::process::exit(2);
        }
    };
    let result =
        commands::gpu_options(cli.backend.as_deref(), cli.adapter.as_deref()).and_then(|options| {
            match cli.command {
                Command::Train(args) => commands::train::run(&options, args),
                Command::Sample(args) => commands::sample::run(&options, args),
                Command::Infill(args) => commands::infill::run(&options, args),
                Command::Complete(args) => commands::complete::run(&options, args),
                Command::Eval(args) => commands::eval::run(&options, args),
                Command::EvalCode(args) => commands::eval_code::run(&options, args),
                Command::EvalInstruct(args) => commands::eval_instruct::run(&options, args),
                Command::EvalInfill(args) => commands::eval_infill::run(&options, args),
                Command::Bench(bench) => commands::bench::run(&options, bench),
                Command::Export(args) => commands::export::run(args),
                Command::Average(args) => commands::average::run(args),
                Command::Report(args) => commands::report::run(args),
                Command::Doctor(args) => commands::doctor::run(&options, args),
                Command::Tokenizer(command) => commands::tokenizer::run(command),
            }
        });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Mesa's drivers (lavapipe among them) try Wayland while opening the
/// adapter, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not
/// set in the environment." when it is unset — on every headless run, where it
/// reads like a samnet error. A private empty directory (no socket in it, so
/// the connection fails quietly) silences it; an existing setting is kept.
#[cfg(unix)]
fn private_runtime_dir_if_unset() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("samnet-runtime-{uid}"));
    // It may exist from an earlier run; whether it is ours is checked below.
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // In a shared temp dir someone else may have made it first: use it only
    // if it is a real directory of ours that no one else can enter.
    let private = std::fs::symlink_metadata(&dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0);
    if private {
        // SAFETY: called first thing in main, before any thread exists, so
        // nothing reads the environment concurrently.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

/// Only Mesa on Unix-like systems reads XDG_RUNTIME_DIR.
#[cfg(not(unix))]
fn private_runtime_dir_if_unset() {}
