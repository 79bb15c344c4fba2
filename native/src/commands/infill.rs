use samnet_core::conditioning::{DEFAULT_HOLE, Known, MAX_SAMPLE_LEN, parse_template};
use samnet_core::gpu::GpuOptions;

use super::sample::{Generation, generate, max_sequence_len};
use crate::run::load_checkpoint;

#[derive(clap::Args)]
pub struct Args {
    /// Text with holes to fill: `[___]` (--hole positions), `[___:N]`, or one `▢` per position.
    template: String,
    #[command(flatten)]
    generation: Generation,
    /// Positions a bare `[___]` stands for.
    #[arg(long, default_value_t = DEFAULT_HOLE)]
    hole: usize,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    if args.hole == 0 || args.hole > MAX_SAMPLE_LEN {
        anyhow::bail!(
            "--hole must be 1..={MAX_SAMPLE_LEN} positions, got {}",
            args.hole
        );
    }
    let segments = parse_template(&args.template, args.hole)?;
    let loaded = load_checkpoint(&args.generation.ckpt)?;
    let known = Known::infill(&loaded.tokenizer, &segments, None)?;
    let max_len = max_sequence_len(&loaded.snapshot.config);
    if known.tokens.len() > max_len {
        anyhow::bail!(
            "the infill template takes {} positions, more than the {max_len} this model samples",
            known.tokens.len()
        );
    }
    let tokens = generate(options, &loaded, &args.generation, &known)?;
    println!("{}", loaded.tokenizer.decode(&tokens)?);
    Ok(())
}
