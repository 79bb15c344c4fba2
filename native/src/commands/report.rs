use std::path::{Path, PathBuf};

use anyhow::Context;
use samnet_core::checkpoint;
use serde_json::Value;

use crate::report::{self, Run};

#[derive(clap::Args)]
pub struct Args {
    /// The run directory (`train --out`): metrics.jsonl, and config.json and
    /// state.json in it or in its checkpoint/.
    run_dir: PathBuf,
    /// Where to write the page (default: RUN_DIR/report.html).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Renders RUN_DIR/metrics.jsonl (and the run's config and state) as one
/// self-contained HTML page.
pub fn run(args: Args) -> anyhow::Result<()> {
    let log_path = args.run_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&log_path)
        .with_context(|| format!("reading {}", log_path.display()))?;
    let log = report::log::parse(&text, &log_path.display().to_string())?;
    if log.records.is_empty() {
        anyhow::bail!("{}: no logged step yet", log_path.display());
    }
    if log.torn_last_line {
        eprintln!(
            "{}: left out the last line, which is incomplete (a run still writing it?)",
            log_path.display()
        );
    }
    let config = run_file(&args.run_dir, "config.json")?;
    let state = run_file(&args.run_dir, "state.json")?;
    let name = args.run_dir.display().to_string();
    let html = report::page(&Run {
        name: &name,
        records: &log.records,
        config: config.as_ref(),
        state: state.as_ref(),
    });
    let out = args.out.unwrap_or_else(|| args.run_dir.join("report.html"));
    std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} ({} logged steps)",
        out.display(),
        log.records.len()
    );
    Ok(())
}

/// `name` from the run directory itself (an exported or shipped model) or
/// else from its checkpoint (a training run's): None in neither.
fn run_file(run_dir: &Path, name: &str) -> anyhow::Result<Option<Value>> {
    let in_checkpoint = checkpoint::resolve_dir(&run_dir.join("checkpoint"))
        .ok()
        .map(|dir| dir.join(name));
    let Some(path) = std::iter::once(run_dir.join(name))
        .chain(in_checkpoint)
        .find(|path| path.is_file())
    else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    Ok(Some(value))
}
