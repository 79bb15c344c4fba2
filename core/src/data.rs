//! Training text: reading and checking a file, the 90/10 split, and random
//! windows drawn reproducibly from (seed, step).

use crate::rng::Rng;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Checks that `bytes` (the contents of `origin`) is non-empty UTF-8 text.
pub fn text_from_bytes(bytes: Vec<u8>, origin: &str) -> Result<String> {
    if bytes.is_empty() {
        return Err(Error::file(
            origin,
            "the file is empty; expected UTF-8 text",
        ));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(Error::file(
            origin,
            format!("binary data (a NUL byte at offset {at}); expected UTF-8 text"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::file(
            origin,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(not(target_arch = "wasm32"))]
pub fn read_text(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::file(path, format!("cannot read the data file: {e}")))?;
    text_from_bytes(bytes, &path.display().to_string())
}

/// Which part of the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

/// A tokenized corpus: the first 90 % trains, the last 10 % validates.
#[derive(Debug)]
pub struct TextData {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl TextData {
    /// Tokenizes `text` and splits it; both parts must hold a window of `seq_len`.
    pub fn new(text: &str, tokenizer: &Tokenizer, seq_len: usize, origin: &str) -> Result<Self> {
        let tokens = tokenizer.encode(text).map_err(|e| Error::file(origin, e))?;
        let cut = tokens.len() * 9 / 10;
        let (train, val) = (tokens[..cut].to_vec(), tokens[cut..].to_vec());
        if val.len() < seq_len + 1 {
            return Err(Error::file(
                origin,
                format!(
                    "{} tokens is too little: the 10 % validation split must hold a window of {seq_len} (need at least {})",
                    tokens.len(),
                    10 * (seq_len + 1)
                ),
            ));
        }
        Ok(TextData { train, val })
    }

    pub fn tokens(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// `batch` windows of `seq_len` tokens, (batch, seq_len) row-major, at
    /// random starts: a function of (seed, step) alone, so a resumed run sees
    /// the same batches.
    pub fn batch(
        &self,
        split: Split,
        batch: usize,
        seq_len: usize,
        seed: u64,
        step: u64,
    ) -> Vec<u32> {
        let tokens = self.tokens(split);
        let mut rng =
            Rng::new(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (split as u64) << 63);
        let starts = (tokens.len() - seq_len + 1) as u64;
        let mut out = Vec::with_capacity(batch * seq_len);
        for _ in 0..batch {
            let s = rng.below(starts) as usize;
            out.extend_from_slice(&tokens[s..s + seq_len]);
        }
        out
    }

    /// Fixed, evenly spaced validation windows (the same every evaluation).
    pub fn val_windows(&self, count: usize, seq_len: usize) -> Vec<u32> {
        let starts = self.val.len() - seq_len;
        let mut out = Vec::with_capacity(count * seq_len);
        for i in 0..count {
            let s = if count > 1 {
                i * starts / (count - 1)
            } else {
                0
            };
            out.extend_from_slice(&self.val[s..s + seq_len]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_are_named() {
        assert!(
            text_from_bytes(vec![], "a.txt")
                .unwrap_err()
                .to_string()
                .contains("a.txt: the file is empty")
        );
        assert!(
            text_from_bytes(b"ab\0c".to_vec(), "b.bin")
                .unwrap_err()
                .to_string()
                .contains("NUL byte at offset 2")
        );
        assert!(
            text_from_bytes(vec![b'a', 0xff], "c.txt")
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
    }

    #[test]
    fn batches_are_reproducible_windows() {
        let text = "the quick brown fox jumps over the lazy dog\n".repeat(50);
        let tok = Tokenizer::char_level(&text).unwrap();
        let data = TextData::new(&text, &tok, 16, "t").unwrap();
        assert_eq!(data.train.len() + data.val.len(), text.len());
        let a = data.batch(Split::Train, 4, 16, 7, 3);
        assert_eq!(a, data.batch(Split::Train, 4, 16, 7, 3));
        assert_ne!(a, data.batch(Split::Train, 4, 16, 7, 4));
        let decoded = tok.decode(&a[..16]).unwrap();
        assert!(text.contains(&decoded));
    }

    #[test]
    fn too_small_a_corpus_is_an_error() {
        let tok = Tokenizer::char_level("abc").unwrap();
        let err = TextData::new("abcabc", &tok, 32, "small.txt")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("small.txt:"), "{err}");
    }
}
