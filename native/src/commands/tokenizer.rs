//! `samnet tokenizer train`: a byte-level BPE tokenizer (Hugging Face
//! `tokenizer.json`) trained on text and instruction files.

use std::path::PathBuf;
use std::time::Instant;

use samnet_core::tokenizer::Tokenizer;

use crate::run::{document_texts, read_corpus, write_file_atomic};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Train a byte-level BPE tokenizer on text, Alpaca JSON and seed-task JSONL files or folders.
    Train(TrainArgs),
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Vocabulary size (256 byte tokens and the <|endoftext|> separator included).
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    /// Files and folders to train on.
    #[arg(long, num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// Where to write the tokenizer.json.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => train(args),
    }
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let corpus = read_corpus(&args.data)?;
    let texts = document_texts(&corpus.documents);
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let started = Instant::now();
    let tokenizer = Tokenizer::train_bpe(&texts, args.vocab)?;
    let seconds = started.elapsed().as_secs_f64();
    let tokens: usize = texts
        .iter()
        .map(|t| tokenizer.encode(t).map(|ids| ids.len()))
        .sum::<samnet_core::Result<usize>>()?;
    write_file_atomic(&args.out, tokenizer.to_json()?.as_bytes())?;
    eprintln!(
        "{}: {} tokens, trained in {seconds:.1} s on {} documents ({:.2} MB); {:.2} bytes per token on them",
        args.out.display(),
        tokenizer.vocab_size(),
        corpus.documents.len(),
        bytes as f64 / 1e6,
        bytes as f64 / tokens.max(1) as f64
    );
    Ok(())
}
