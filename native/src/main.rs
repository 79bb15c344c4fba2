//! `samnet`: train, sample and inspect SamNet models on any WebGPU adapter.

mod commands;
mod dataset;
mod metrics_log;
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
    /// Benchmarks that print JSON.
    #[command(subcommand)]
    Bench(commands::bench::Bench),
    /// Write a checkpoint's weights (optionally f16), config and tokenizer for shipping.
    Export(commands::export::Args),
    /// Check the GPU: adapter, features, limits, and a kernel self-test.
    Doctor(commands::doctor::Args),
    /// Tokenizers: train a byte-level BPE.
    #[command(subcommand)]
    Tokenizer(commands::tokenizer::Command),
}

fn main() {
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
                Command::Bench(bench) => commands::bench::run(&options, bench),
                Command::Export(args) => commands::export::run(args),
                Command::Doctor(args) => commands::doctor::run(&options, args),
                Command::Tokenizer(command) => commands::tokenizer::run(command),
            }
        });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
