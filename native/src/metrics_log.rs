//! `metrics.jsonl` across interruptions: a run killed after its last
//! checkpoint leaves lines for steps that the resumed run will take again
//! (and perhaps a torn last line). Before training, the log is cut back to
//! the steps the run starts from, so a resumed run's log reads exactly like
//! an uninterrupted one's.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Keeps the complete lines of `path` logged at steps ≤ `step`; returns how
/// many lines were dropped. The file is replaced atomically (temporary file,
/// fsync, rename); a missing file is left missing.
pub fn keep_up_to(path: &Path, step: usize) -> anyhow::Result<usize> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let logged_at = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step")?.as_u64())
    };
    let mut kept = String::new();
    let mut dropped = 0;
    for line in text.split_inclusive('\n') {
        let complete = line.ends_with('\n');
        match logged_at(line.trim_end()) {
            Some(s) if complete && s as usize <= step => kept.push_str(line),
            _ => dropped += 1,
        }
    }
    if dropped == 0 {
        return Ok(0);
    }
    let tmp = path.with_extension("jsonl.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(kept.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("rewriting {}", path.display()))?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_later_steps_and_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("samnet-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"step\":4}\n{\"st",
        )
        .unwrap();
        assert_eq!(keep_up_to(&path, 2).unwrap(), 3);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n"
        );
        assert_eq!(keep_up_to(&path, 2).unwrap(), 0);
        assert_eq!(keep_up_to(&dir.join("none.jsonl"), 0).unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
