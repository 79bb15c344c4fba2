//! Tokenizers in Hugging Face `tokenizer.json` form, through the `tokenizers`
//! crate: a character-level one (a BPE model with no merges, so it shares
//! the code path of the BPE tokenizers of later phases), byte-level BPE
//! trained on a corpus (every input encodes; decoding restores it exactly),
//! and any `tokenizer.json` loaded from disk or bytes.

use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, DecoderWrapper};

use crate::{Error, Result, guard};

/// The special token between documents in a trained BPE vocabulary.
pub const SEPARATOR: &str = "<|endoftext|>";

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Id → token text, for per-position display.
    pieces: Vec<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({} tokens)", self.pieces.len())
    }
}

impl Tokenizer {
    /// One token per distinct character of `text`, ids in character order.
    pub fn char_level(text: &str) -> Result<Self> {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        if chars.is_empty() {
            return Err(Error::Invalid(
                "cannot build a tokenizer from empty text".into(),
            ));
        }
        let vocab: Vocab = chars
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_string(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, Vec::new())
            .build()
            .map_err(|e| Error::Invalid(format!("building the character tokenizer: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_decoder(Some(Fuse::new()));
        Self::wrap(inner, "character tokenizer")
    }

    /// Byte-level BPE with `vocab_size` tokens trained on `texts`: the 256
    /// byte tokens, [`SEPARATOR`] (a special token, id 0), then merges in
    /// order of frequency. Deterministic for the same texts.
    pub fn train_bpe<S: AsRef<str> + Sync>(texts: &[S], vocab_size: usize) -> Result<Self> {
        let floor = ByteLevel::alphabet().len() + 1;
        if vocab_size <= floor {
            return Err(Error::Invalid(format!(
                "a byte-level BPE vocabulary must exceed {floor} tokens (256 bytes and the separator), got {vocab_size}"
            )));
        }
        if texts.iter().all(|t| t.as_ref().is_empty()) {
            return Err(Error::Invalid(
                "cannot train a tokenizer on empty text".into(),
            ));
        }
        let trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(SEPARATOR, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut inner = tokenizers::Tokenizer::new(BPE::default());
        // No prefix space, so decode(encode(text)) == text for any text.
        let byte_level = ByteLevel::new(false, true, true);
        inner.with_pre_tokenizer(Some(byte_level));
        inner.with_decoder(Some(byte_level));
        // Line-aligned pieces: whole books are too long for one training sequence.
        let pieces = texts.iter().flat_map(|t| chunks(t.as_ref(), 1 << 16));
        inner
            .train(&mut TrainerWrapper::BpeTrainer(trainer), pieces)
            .map_err(|e| Error::Invalid(format!("training the BPE tokenizer: {e}")))?;
        Self::wrap(inner, "BPE tokenizer")
    }

    /// Parses a `tokenizer.json`; `origin` names it in errors.
    /// The JSON syntax is checked first (the `tokenizers` crate panics on
    /// some syntax errors), and any panic left is contained as an error.
    pub fn from_json(json: &[u8], origin: &str) -> Result<Self> {
        let not_one =
            |e: &dyn std::fmt::Display| Error::file(origin, format!("not a tokenizer.json: {e}"));
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| not_one(&e))?;
        let inner = guard::contain(|| serde_json::from_value::<tokenizers::Tokenizer>(value))
            .map_err(|e| not_one(&format!("rejected by the tokenizers library ({e})")))?
            .map_err(|e| not_one(&e))?;
        Self::wrap(inner, origin)
    }

    fn wrap(inner: tokenizers::Tokenizer, origin: &str) -> Result<Self> {
        let vocab = inner.get_vocab(true);
        let size = vocab.len();
        let mut pieces = vec![String::new(); size];
        for (piece, id) in vocab {
            match pieces.get_mut(id as usize) {
                Some(slot) => *slot = piece,
                None => {
                    return Err(Error::file(
                        origin,
                        format!("token id {id} outside a vocabulary of {size}"),
                    ));
                }
            }
        }
        let mut tokenizer = Tokenizer { inner, pieces };
        if matches!(
            tokenizer.inner.get_decoder(),
            Some(DecoderWrapper::ByteLevel(_))
        ) {
            // Byte-level pieces are stored byte-mapped ("Ġthe"); show their text.
            for id in 0..tokenizer.pieces.len() as u32 {
                tokenizer.pieces[id as usize] = tokenizer.decode(&[id])?;
            }
        }
        Ok(tokenizer)
    }

    /// The id of [`SEPARATOR`], where the vocabulary has it (trained BPE).
    pub fn separator_token(&self) -> Option<u32> {
        self.inner.token_to_id(SEPARATOR)
    }

    /// The token ids put between packed documents: the [`SEPARATOR`] token
    /// where the vocabulary has it (trained BPE), else a blank line.
    pub fn separator(&self) -> Result<Vec<u32>> {
        if let Some(id) = self.separator_token() {
            return Ok(vec![id]);
        }
        self.encode("\n\n").map_err(|_| {
            Error::Invalid(format!(
                "the tokenizer has neither {SEPARATOR} nor a newline to separate documents with"
            ))
        })
    }

    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(true)
            .map_err(|e| Error::Invalid(format!("serialising the tokenizer: {e}")))
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Whether every token is a single character (the phase-1 tokenizer).
    pub fn is_char_level(&self) -> bool {
        self.pieces.iter().all(|p| p.chars().count() == 1)
    }

    /// Token ids of `text`. Text the tokenizer cannot represent is an error
    /// naming the first offending character and where it is (the BPE model
    /// would otherwise drop it silently).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        // Encode in line-aligned chunks: the character model sees no
        // pre-tokenizer, so a whole file would otherwise be one "word".
        for chunk in chunks(text, 1 << 16) {
            let encoding = guard::contain(|| self.inner.encode(chunk, false))
                .map_err(|e| Error::Invalid(format!("tokenizing: the tokenizer failed ({e})")))?
                .map_err(|e| Error::Invalid(format!("tokenizing: {e}")))?;
            ids.extend_from_slice(encoding.get_ids());
        }
        if self.decode(&ids)? != text {
            return Err(self.unknown_char_error(text));
        }
        Ok(ids)
    }

    fn unknown_char_error(&self, text: &str) -> Error {
        for (line_no, line) in text.split('\n').enumerate() {
            for (col, c) in line.chars().enumerate() {
                let single = c.to_string();
                let known = guard::contain(|| self.inner.encode(single.as_str(), false))
                    .is_ok_and(|r| r.is_ok_and(|e| !e.get_ids().is_empty()));
                if !known {
                    return Error::Invalid(format!(
                        "character {c:?} (U+{:04X}) at line {}, column {} is not in the tokenizer's vocabulary",
                        c as u32,
                        line_no + 1,
                        col + 1
                    ));
                }
            }
        }
        Error::Invalid(
            "the tokenizer does not reproduce this text (decode(encode(text)) differs)".into(),
        )
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.pieces.len()) {
            return Err(Error::Invalid(format!(
                "token id {bad} outside a vocabulary of {}",
                self.pieces.len()
            )));
        }
        guard::contain(|| self.inner.decode(ids, false))
            .map_err(|e| Error::Invalid(format!("decoding: the tokenizer failed ({e})")))?
            .map_err(|e| Error::Invalid(format!("decoding: {e}")))
    }

    /// Per token id, whether its text holds a newline: where a line (with
    /// its indentation, which a byte-level BPE joins to the newline) starts.
    pub fn line_breaks(&self) -> Vec<bool> {
        self.pieces.iter().map(|p| p.contains('\n')).collect()
    }

    /// The text of one token (for per-position display).
    pub fn piece(&self, id: u32) -> &str {
        self.pieces
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("\u{FFFD}")
    }
}

/// Splits `text` into pieces of about `size` bytes, cut after a newline where possible.
fn chunks(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(size);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        if end < rest.len()
            && let Some(nl) = rest[..end].rfind('\n')
        {
            end = nl + 1;
        }
        let (head, tail) = rest.split_at(end);
        rest = tail;
        Some(head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_are_the_tokens_holding_a_newline() {
        let code = "def f(x):\n    return x\n\ndef g(y):\n    return y\n";
        let tok = Tokenizer::train_bpe(&[code.repeat(20)], 300).unwrap();
        let breaks = tok.line_breaks();
        assert_eq!(breaks.len(), tok.vocab_size());
        let ids = tok.encode("def f(x):\n    return x").unwrap();
        let marked: Vec<bool> = ids.iter().map(|&i| breaks[i as usize]).collect();
        let expected: Vec<bool> = ids.iter().map(|&i| tok.piece(i).contains('\n')).collect();
        assert_eq!(marked, expected);
        assert_eq!(marked.iter().filter(|&&b| b).count(), 1, "{ids:?}");
    }

    #[test]
    fn char_level_round_trips_and_serialises() {
        let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
        let t = Tokenizer::char_level(text).unwrap();
        let ids = t.encode(text).unwrap();
        assert_eq!(ids.len(), text.chars().count());
        assert_eq!(t.decode(&ids).unwrap(), text);
        assert!(t.is_char_level());
        let reloaded = Tokenizer::from_json(t.to_json().unwrap().as_bytes(), "test").unwrap();
        assert_eq!(reloaded.encode(text).unwrap(), ids);
        assert_eq!(reloaded.vocab_size(), t.vocab_size());
        assert_eq!(t.piece(ids[0]), "F");
    }

    #[test]
    fn unknown_characters_are_named_with_their_position() {
        let t = Tokenizer::char_level("abc\n").unwrap();
        let err = t.encode("ab\nca z").unwrap_err().to_string();
        assert!(
            err.contains("' '") && err.contains("line 2, column 3"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        let err = Tokenizer::from_json(b"{not json", "x/tokenizer.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x/tokenizer.json: not a tokenizer.json"),
            "{err}"
        );
    }

    #[test]
    fn long_text_is_chunked_on_lines() {
        let text = "to be or not to be\n".repeat(10_000);
        let t = Tokenizer::char_level(&text).unwrap();
        assert_eq!(t.encode(&text).unwrap().len(), text.len());
    }

    const CORPUS: &str = "It was the best of times, it was the worst of times, it was the age of wisdom.\n\
        It was the epoch of belief, it was the epoch of incredulity, it was the season of Light.\n";

    #[test]
    fn bpe_trains_a_tiny_vocabulary_that_round_trips_any_text() {
        let t = Tokenizer::train_bpe(&[CORPUS.repeat(3)], 300).unwrap();
        assert_eq!(t.vocab_size(), 300);
        assert!(!t.is_char_level());
        assert_eq!(t.separator().unwrap(), vec![0]);
        assert_eq!(t.piece(0), SEPARATOR);
        // Merges learnt from the corpus compress it well below one token a byte.
        let ids = t.encode(CORPUS).unwrap();
        assert!(ids.len() * 2 < CORPUS.len(), "{} tokens", ids.len());
        assert_eq!(t.decode(&ids).unwrap(), CORPUS);
        assert!(
            ids.iter().any(|&i| t.piece(i) == " times"),
            "{:?}",
            ids.iter().map(|&i| t.piece(i)).collect::<Vec<_>>()
        );
        // Byte level: text never seen (other scripts, emoji, control bytes,
        // leading and repeated spaces) still encodes and decodes exactly.
        for text in [
            "  Ünïcödé —  日本語 🦀\t\r\n",
            "\u{0}\u{7f}x",
            " ",
            "<|endoftext|> ends",
        ] {
            let ids = t.encode(text).unwrap();
            assert_eq!(t.decode(&ids).unwrap(), text);
        }
        // Saved and reloaded, it is the same tokenizer.
        let reloaded = Tokenizer::from_json(t.to_json().unwrap().as_bytes(), "t").unwrap();
        assert_eq!(reloaded.encode(CORPUS).unwrap(), ids);
        assert_eq!(reloaded.piece(ids[1]), t.piece(ids[1]));
    }

    #[test]
    fn bpe_training_is_deterministic() {
        let texts = [CORPUS, "a second document, about the epoch of wisdom\n"];
        let a = Tokenizer::train_bpe(&texts, 320)
            .unwrap()
            .to_json()
            .unwrap();
        let b = Tokenizer::train_bpe(&texts, 320)
            .unwrap()
            .to_json()
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bpe_rejects_impossible_vocabularies_and_empty_text() {
        let err = Tokenizer::train_bpe(&[CORPUS], 200)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must exceed 257 tokens"), "{err}");
        let err = Tokenizer::train_bpe(&[""], 300).unwrap_err().to_string();
        assert!(err.contains("empty text"), "{err}");
    }

    #[test]
    fn char_level_separates_documents_with_a_blank_line() {
        let t = Tokenizer::char_level("ab\n").unwrap();
        assert_eq!(t.decode(&t.separator().unwrap()).unwrap(), "\n\n");
        let err = Tokenizer::char_level("ab")
            .unwrap()
            .separator()
            .unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
    }
}
