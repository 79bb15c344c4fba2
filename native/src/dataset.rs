//! The default corpus, TinyShakespeare: downloaded once from its canonical
//! location into a cache directory and verified by its SHA-256.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

pub const TINYSHAKESPEARE_URL: &str =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
pub const TINYSHAKESPEARE_SHA256: &str =
    "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed";

/// `$SAMNET_CACHE`, else `$XDG_CACHE_HOME/samnet`, else `~/.cache/samnet`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SAMNET_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("samnet");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("samnet")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The path of the cached TinyShakespeare, downloading it first if needed.
pub fn tinyshakespeare() -> anyhow::Result<PathBuf> {
    let path = cache_dir().join("tinyshakespeare.txt");
    if path.exists() {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if sha256_hex(&bytes) == TINYSHAKESPEARE_SHA256 {
            return Ok(path);
        }
        eprintln!("{}: checksum mismatch, downloading again", path.display());
    }
    eprintln!("downloading TinyShakespeare from {TINYSHAKESPEARE_URL}");
    let bytes = download(TINYSHAKESPEARE_URL).map_err(|e| {
        anyhow::anyhow!(
            "could not download the default dataset ({e}); on a machine without network access pass --data FILE \
             (e.g. a copy of tinyshakespeare.txt)"
        )
    })?;
    let digest = sha256_hex(&bytes);
    if digest != TINYSHAKESPEARE_SHA256 {
        bail!(
            "downloaded {TINYSHAKESPEARE_URL} has SHA-256 {digest}, expected {TINYSHAKESPEARE_SHA256}; pass --data FILE"
        );
    }
    write_atomic(&path, &bytes)?;
    Ok(path)
}

fn download(url: &str) -> anyhow::Result<Vec<u8>> {
    let mut response = ureq::get(url).call()?;
    Ok(response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()?)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("moving {} into place", path.display()))?;
    Ok(())
}
