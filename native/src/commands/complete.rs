use std::path::PathBuf;

use anyhow::Context;
use samnet_core::conditioning::{HoleEnd, Known, enclosing_definition};
use samnet_core::gpu::GpuOptions;

use super::sample::{Generation, check_len_flag, generate};
use crate::run::load_checkpoint;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    generation: Generation,
    /// The source file.
    #[arg(long)]
    file: PathBuf,
    /// Cursor line (from 1).
    #[arg(long)]
    line: usize,
    /// Cursor column (from 1, in characters; past the end means the line's end).
    #[arg(long, default_value_t = 1)]
    col: usize,
    /// Positions to fill at the cursor.
    #[arg(long, default_value_t = 64)]
    hole: usize,
    /// Positions in the window (context before and after the cursor + the hole).
    #[arg(long, default_value_t = 256)]
    len: usize,
    /// The text ends with the hole: the separator (the end of the file)
    /// known right after it, so what fills it is written whole (a function
    /// body that ends) rather than cut where the hole stops. Only where
    /// nothing but whitespace follows the cursor.
    #[arg(long)]
    ends: bool,
}

pub fn run(options: &GpuOptions, args: Args) -> anyhow::Result<()> {
    let source =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let source = String::from_utf8(source).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            args.file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let cursor = cursor_offset(&source, args.line, args.col)
        .with_context(|| format!("{}", args.file.display()))?;
    let loaded = load_checkpoint(&args.generation.ckpt)?;
    check_len_flag(args.len, &loaded.snapshot.config)?;
    if args.hole == 0 || args.hole >= args.len {
        anyhow::bail!(
            "--hole must be 1..{} positions (fewer than --len {}), got {}",
            args.len,
            args.len,
            args.hole
        );
    }
    let (before, after) = source.split_at(cursor);
    let pinned = enclosing_definition(before, after);
    let (known, hole) = if args.ends {
        if !after.trim().is_empty() {
            anyhow::bail!(
                "{}: --ends completes at the end of the file, and text follows line {}, column {}",
                args.file.display(),
                args.line,
                args.col
            );
        }
        let end = (args.hole, HoleEnd::Document);
        Known::completion(&loaded.tokenizer, before, pinned, end, args.len)?
    } else {
        Known::around_cursor(
            &loaded.tokenizer,
            (before, after),
            pinned,
            args.hole,
            args.len,
        )?
    };
    let tokens = generate(options, &loaded, &args.generation, &known)?;
    println!("{}", hole.filled(&loaded.tokenizer, &tokens)?);
    Ok(())
}

/// Byte offset of (line, col), both from 1; a column past the line's end is its end.
fn cursor_offset(source: &str, line: usize, col: usize) -> anyhow::Result<usize> {
    if line == 0 || col == 0 {
        anyhow::bail!("--line and --col count from 1");
    }
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    let Some(text) = lines.get(line - 1) else {
        anyhow::bail!("has {} lines, no line {line}", lines.len());
    };
    let start: usize = lines[..line - 1].iter().map(|l| l.len()).sum();
    let body = text.strip_suffix('\n').unwrap_or(text);
    let within = body
        .char_indices()
        .nth(col - 1)
        .map_or(body.len(), |(i, _)| i);
    Ok(start + within)
}

#[cfg(test)]
mod tests {
    use super::cursor_offset;

    #[test]
    fn cursor_offsets_count_characters_from_one() {
        let src = "def f(x):\n    return é\n";
        assert_eq!(cursor_offset(src, 1, 1).unwrap(), 0);
        assert_eq!(cursor_offset(src, 2, 5).unwrap(), 14);
        assert_eq!(&src[cursor_offset(src, 2, 13).unwrap()..], "\n");
        assert!(cursor_offset(src, 3, 1).is_err());
        assert!(cursor_offset(src, 0, 1).is_err());
    }
}
