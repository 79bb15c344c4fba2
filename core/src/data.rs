//! Training text: reading and checking a file, documents packed into
//! train/validation streams (90/10), and random windows drawn reproducibly
//! from (seed, step), with each position's loss weight and known flag.

use crate::config::{ExamplePadding, InfillSpans};
use crate::corpus::{Body, Document};
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

/// Tokens of one split: the documents, shuffled and packed with the
/// tokenizer's separator between them, and where the instruction examples are.
#[derive(Debug, Default)]
struct Stream {
    tokens: Vec<u32>,
    /// Per token: 1 inside an example's prompt (known, outside the loss);
    /// empty when the split has no examples.
    prompt: Vec<u8>,
    /// [start, end) of every example and the separator after it (sorted): a
    /// window never starts inside one.
    examples: Vec<(usize, usize)>,
}

impl Stream {
    fn push(&mut self, tokens: &[u32], prompt_len: Option<usize>, separator: &[u32]) {
        if !self.tokens.is_empty() {
            let before = self.tokens.len();
            self.tokens.extend_from_slice(separator);
            // An example's span takes in the separator after it.
            if let Some(last) = self.examples.last_mut().filter(|e| e.1 == before) {
                last.1 = self.tokens.len();
            }
        }
        let start = self.tokens.len();
        self.tokens.extend_from_slice(tokens);
        if let Some(p) = prompt_len {
            self.prompt.resize(start, 0);
            self.prompt
                .extend((0..tokens.len()).map(|i| u8::from(i < p)));
            self.examples.push((start, self.tokens.len()));
        }
    }

    fn finish(&mut self) {
        if !self.examples.is_empty() {
            self.prompt.resize(self.tokens.len(), 0);
        }
    }

    /// `s`, or the first token of the example it falls inside.
    fn snap(&self, s: usize) -> usize {
        let i = self.examples.partition_point(|&(start, _)| start <= s);
        match i.checked_sub(1).map(|i| self.examples[i]) {
            Some((start, end)) if s < end => start,
            _ => s,
        }
    }

    /// The end of the example that starts at `s` (its separator included).
    fn example_end(&self, s: usize) -> Option<usize> {
        let i = self.examples.partition_point(|&(start, _)| start < s);
        self.examples.get(i).filter(|e| e.0 == s).map(|e| e.1)
    }

    /// The window at `s`; where it starts at an example and `padding` is not
    /// empty, every position after the example holds `padding` (repeated),
    /// with loss weight `pad_weight`, instead of the next document.
    fn window(
        &self,
        s: usize,
        seq_len: usize,
        (padding, pad_weight): (&[u32], f32),
        out: &mut Windows,
    ) {
        let first = out.tokens.len();
        out.tokens.extend_from_slice(&self.tokens[s..s + seq_len]);
        if self.prompt.is_empty() {
            out.weight.extend(std::iter::repeat_n(1.0, seq_len));
            out.known.extend(std::iter::repeat_n(0.0, seq_len));
        } else {
            let p = &self.prompt[s..s + seq_len];
            out.weight.extend(p.iter().map(|&k| 1.0 - f32::from(k)));
            out.known.extend(p.iter().map(|&k| f32::from(k)));
        }
        let Some(end) = self.example_end(s).filter(|_| !padding.is_empty()) else {
            return;
        };
        for (i, at) in (first + end - s..first + seq_len).enumerate() {
            out.tokens[at] = padding[i % padding.len()];
            (out.weight[at], out.known[at]) = (pad_weight, 0.0);
        }
    }
}

/// Windows of a batch, (batch, seq_len) row-major: tokens, the loss weight
/// of each position (0 in a prompt) and whether it is known (1 in a prompt).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Windows {
    pub tokens: Vec<u32>,
    pub weight: Vec<f32>,
    pub known: Vec<f32>,
}

impl Windows {
    /// References (responses, function bodies) laid out to be scored twice,
    /// after their own prompts and after the next case's, the prompt the
    /// only difference: `[own, another's]`. One window of `seq_len` per
    /// reference, as training pads an example and `eval-instruct` samples
    /// one: the whole prompt at the window's start (its end, if it is
    /// longer than half the window), known; then the reference and one
    /// separator, scored; then separators, known. Both windows score the
    /// same tokens (the reference cut to fit after the longer prompt), and
    /// where they begin ([`Windows::scored_starts`]), as the origin of each
    /// row's corruption draws ([`crate::eval::windows_loss`]), corrupts the
    /// reference alike after either prompt. Cutting both prompts to one
    /// length would line them up instead, but a prompt that starts
    /// mid-sentence is a layout training never shows: it cost a model that
    /// had memorised its answers 0.4–0.6 nats per token (docs/pipeline.md).
    /// Separators before a prompt would read, to a model trained on padded
    /// examples, as the end of an answer (`a_tiny_model_learns_to_read_its_prompt`).
    pub fn prompt_pairs(
        tokenizer: &Tokenizer,
        (prompts, references): (&[&str], &[&str]),
        seq_len: usize,
    ) -> Result<[Windows; 2]> {
        assert_eq!(prompts.len(), references.len(), "one prompt per reference");
        let separator = tokenizer.separator()?;
        let prompts = prompts
            .iter()
            .map(|p| {
                let tokens = tokenizer.encode(p)?;
                Ok(tokens[tokens.len().saturating_sub(seq_len / 2)..].to_vec())
            })
            .collect::<Result<Vec<_>>>()?;
        let next = |i: usize| &prompts[(i + 1) % prompts.len()];
        let mut out = [Windows::default(), Windows::default()];
        for (i, reference) in references.iter().enumerate() {
            let mut scored = tokenizer.encode(reference)?;
            scored.extend(&separator);
            scored.truncate(seq_len - prompts[i].len().max(next(i).len()));
            let padding = separator.iter().copied().cycle();
            for (windows, prompt) in out.iter_mut().zip([&prompts[i], next(i)]) {
                windows.tokens.extend(prompt);
                windows.tokens.extend(&scored);
                let rest = seq_len - prompt.len() - scored.len();
                windows.tokens.extend(padding.clone().take(rest));
                let scored = prompt.len()..prompt.len() + scored.len();
                for position in 0..seq_len {
                    let is_scored = scored.contains(&position);
                    windows.weight.push(f32::from(u8::from(is_scored)));
                    windows.known.push(f32::from(u8::from(!is_scored)));
                }
            }
        }
        Ok(out)
    }

    /// Per window of `seq_len`, its first scored position (0 if none).
    pub fn scored_starts(&self, seq_len: usize) -> Vec<usize> {
        self.weight
            .chunks_exact(seq_len)
            .map(|row| row.iter().position(|&w| w != 0.0).unwrap_or(0))
            .collect()
    }

    /// Turns each window, with probability `fraction`, into an infilling
    /// example: one span of 1 to `seq_len / 2` positions keeps its own loss
    /// weights and known flags, every position outside it becomes known
    /// and weightless. `spans` draws the span; `line_breaks` (per token id,
    /// [`Tokenizer::line_breaks`]) is where lines start, for
    /// [`InfillSpans::Lines`]. Windows that already hold known positions
    /// (an instruction's prompt) are left as they are.
    pub fn hold_outside_spans(
        &mut self,
        seq_len: usize,
        (fraction, spans): (f64, InfillSpans),
        line_breaks: &[bool],
        rng: &mut Rng,
    ) {
        for ((weight, known), tokens) in self
            .weight
            .chunks_exact_mut(seq_len)
            .zip(self.known.chunks_exact_mut(seq_len))
            .zip(self.tokens.chunks_exact(seq_len))
        {
            // Drawn for every window, so one window's draws do not depend
            // on another's contents.
            let (pick, len, start) = (rng.uniform(), rng.uniform(), rng.uniform());
            let whole_lines = spans == InfillSpans::Lines && rng.uniform() < 0.5;
            if pick >= fraction || known.iter().any(|&k| k != 0.0) {
                continue;
            }
            let longest = (seq_len / 2).max(1);
            let breaks: Vec<usize> = if whole_lines {
                (0..seq_len)
                    .filter(|&i| line_breaks.get(tokens[i] as usize) == Some(&true))
                    .collect()
            } else {
                Vec::new()
            };
            let (start, len) = if breaks.len() >= 2 {
                lines_span(&breaks, longest, (len, start))
            } else {
                let len = match spans {
                    InfillSpans::Uniform => 1 + (len * longest as f64) as usize,
                    InfillSpans::LogUniform | InfillSpans::Lines => log_uniform(len, longest),
                };
                let len = len.clamp(1, longest);
                let start = (start * (seq_len - len + 1) as f64) as usize;
                (start.min(seq_len - len), len)
            };
            for i in (0..start).chain(start + len..seq_len) {
                known[i] = 1.0;
                weight[i] = 0.0;
            }
        }
    }
}

/// 1 to `longest` with every scale equally likely, from a uniform `u`:
/// P(len ≤ k) = ln(k + 1) / ln(longest + 1).
fn log_uniform(u: f64, longest: usize) -> usize {
    (((longest + 1) as f64).powf(u) as usize).clamp(1, longest)
}

/// (start, len) of whole lines between the line starts `breaks` (sorted
/// positions): the number of lines log-uniform, fewer where they would
/// pass `longest` positions, and which lines uniform (from `u`).
fn lines_span(breaks: &[usize], longest: usize, u: (f64, f64)) -> (usize, usize) {
    let most = breaks.len() - 1;
    let mut lines = log_uniform(u.0, most);
    let first = ((u.1 * (most - lines + 1) as f64) as usize).min(most - lines);
    while lines > 1 && breaks[first + lines] - breaks[first] > longest {
        lines -= 1;
    }
    let len = (breaks[first + lines] - breaks[first]).min(longest);
    (breaks[first], len)
}

/// A tokenized corpus split for training and validation: each text
/// document's first 90 % trains and its last 10 % validates; every tenth
/// instruction example (after shuffling) validates, the others train,
/// except that one which always trains ([`Document::always_trains`]) takes
/// no turn.
#[derive(Debug)]
pub struct TextData {
    train_stream: Stream,
    val_stream: Stream,
    /// [`Tokenizer::line_breaks`] of the tokenizer that encoded it.
    line_breaks: Vec<bool>,
    /// The tokens between packed documents.
    separator: Vec<u32>,
    /// See [`TextData::with_example_padding`].
    example_padding: ExamplePadding,
}

impl TextData {
    /// Tokenizes `text` and splits it; both parts must hold a window of `seq_len`.
    pub fn new(text: &str, tokenizer: &Tokenizer, seq_len: usize, origin: &str) -> Result<Self> {
        let doc = Document {
            source: origin.to_string(),
            body: Body::Text(text.to_string()),
            always_trains: false,
        };
        Self::from_documents(&[doc], tokenizer, seq_len, 0, origin)
    }

    /// Tokenizes `documents`, shuffles them (a function of `seed`) and packs
    /// each split into one stream with the tokenizer's separator between
    /// documents; `origin` names the corpus in errors.
    pub fn from_documents(
        documents: &[Document],
        tokenizer: &Tokenizer,
        seq_len: usize,
        seed: u64,
        origin: &str,
    ) -> Result<Self> {
        if documents.is_empty() {
            return Err(Error::file(origin, "holds no documents"));
        }
        let separator = if documents.len() > 1 {
            tokenizer.separator().map_err(|e| Error::file(origin, e))?
        } else {
            Vec::new()
        };
        let mut order: Vec<usize> = (0..documents.len()).collect();
        let mut rng = Rng::new(seed ^ 0x5348_5546_464C_4544);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (mut train, mut val) = (Stream::default(), Stream::default());
        let mut examples = 0;
        for &i in &order {
            let doc = &documents[i];
            let encode = |text: &str| {
                tokenizer
                    .encode(text)
                    .map_err(|e| Error::file(&doc.source, e))
            };
            match &doc.body {
                Body::Text(text) => {
                    let tokens = encode(text)?;
                    let cut = tokens.len() * 9 / 10;
                    train.push(&tokens[..cut], None, &separator);
                    val.push(&tokens[cut..], None, &separator);
                }
                Body::Example { prompt, response } => {
                    let mut tokens = encode(prompt)?;
                    let prompt_len = tokens.len();
                    tokens.extend(encode(response)?);
                    let validates = !doc.always_trains && examples % 10 == 9;
                    let split = if validates { &mut val } else { &mut train };
                    split.push(&tokens, Some(prompt_len), &separator);
                    // A probe takes no turn: the tenth example after it validates.
                    examples += usize::from(!doc.always_trains);
                }
            }
        }
        train.finish();
        val.finish();
        let total = train.tokens.len() + val.tokens.len();
        if val.tokens.len() < seq_len + 1 || train.tokens.len() < seq_len + 1 {
            return Err(Error::file(
                origin,
                format!(
                    "{total} tokens is too little: the 10 % validation split must hold a window of {seq_len} (need at least {})",
                    10 * (seq_len + 1)
                ),
            ));
        }
        Ok(TextData {
            train_stream: train,
            val_stream: val,
            line_breaks: tokenizer.line_breaks(),
            separator,
            example_padding: ExamplePadding::Packed,
        })
    }

    /// What follows an example in a window that starts at it
    /// ([`crate::config::TrainConfig::pad_examples`]).
    pub fn with_example_padding(mut self, padding: ExamplePadding) -> Self {
        self.example_padding = padding;
        self
    }

    /// The tokens after an example in a window that starts at it, in place
    /// of the next document (empty: the next document), and their loss
    /// weight.
    fn padding(&self) -> (&[u32], f32) {
        match self.example_padding {
            ExamplePadding::Packed => (&[], 1.0),
            ExamplePadding::Scored => (&self.separator, 1.0),
            ExamplePadding::Unscored => (&self.separator, 0.0),
        }
    }

    /// Per token id, whether it starts a line ([`Tokenizer::line_breaks`]).
    pub fn line_breaks(&self) -> &[bool] {
        &self.line_breaks
    }

    pub fn tokens(&self, split: Split) -> &[u32] {
        &self.stream(split).tokens
    }

    fn stream(&self, split: Split) -> &Stream {
        match split {
            Split::Train => &self.train_stream,
            Split::Val => &self.val_stream,
        }
    }

    /// Whether any instruction example (with a prompt) is in the corpus.
    pub fn has_prompts(&self) -> bool {
        !self.train_stream.examples.is_empty() || !self.val_stream.examples.is_empty()
    }

    /// `batch` windows of `seq_len` tokens at random starts (moved back to
    /// the start of an example they would fall inside): a function of
    /// (seed, step) alone, so a resumed run sees the same batches. With
    /// `example_share` > 0, that share of the windows (drawn per window)
    /// starts at an instruction example picked uniformly, whatever share of
    /// the tokens the examples are.
    pub fn batch_windows(
        &self,
        split: Split,
        (batch, seq_len): (usize, usize),
        seed: u64,
        step: u64,
        example_share: f64,
    ) -> Windows {
        let stream = self.stream(split);
        let mut rng =
            Rng::new(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (split as u64) << 63);
        let starts = stream.tokens.len() - seq_len + 1;
        // Examples a whole window can start at (sorted by start).
        let eligible = stream
            .examples
            .partition_point(|&(start, _)| start < starts);
        let mut out = Windows::default();
        for _ in 0..batch {
            let random = stream.snap(rng.below(starts as u64) as usize);
            // Drawn only when asked for: runs without it keep their batches.
            let at_example = example_share > 0.0 && eligible > 0 && rng.uniform() < example_share;
            let s = if at_example {
                stream.examples[rng.below(eligible as u64) as usize].0
            } else {
                random
            };
            stream.window(s, seq_len, self.padding(), &mut out);
        }
        out
    }

    /// The tokens of [`TextData::batch_windows`].
    pub fn batch(
        &self,
        split: Split,
        batch: usize,
        seq_len: usize,
        seed: u64,
        step: u64,
    ) -> Vec<u32> {
        self.batch_windows(split, (batch, seq_len), seed, step, 0.0)
            .tokens
    }

    /// Fixed, evenly spaced validation windows (the same every evaluation).
    pub fn val_window_set(&self, count: usize, seq_len: usize) -> Windows {
        let stream = &self.val_stream;
        let starts = stream.tokens.len() - seq_len;
        let mut out = Windows::default();
        for i in 0..count {
            let s = if count > 1 {
                i * starts / (count - 1)
            } else {
                0
            };
            stream.window(stream.snap(s), seq_len, self.padding(), &mut out);
        }
        out
    }

    /// The tokens of [`TextData::val_window_set`].
    pub fn val_windows(&self, count: usize, seq_len: usize) -> Vec<u32> {
        self.val_window_set(count, seq_len).tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn infilling_windows_hold_all_but_one_span() {
        let seq = 13;
        let plain = Windows {
            tokens: vec![0; 4 * seq],
            weight: vec![1.0; 4 * seq],
            known: vec![0.0; 4 * seq],
        };
        let mut prompted = plain.clone();
        prompted.known[2 * seq] = 1.0;
        prompted.weight[2 * seq] = 0.0;
        let untouched = prompted.clone();
        prompted.hold_outside_spans(seq, (0.0, InfillSpans::Uniform), &[], &mut Rng::new(1));
        assert_eq!(prompted, untouched, "fraction 0 changes nothing");
        let mut lens = BTreeSet::new();
        for seed in 0..50 {
            let mut w = untouched.clone();
            w.hold_outside_spans(seq, (1.0, InfillSpans::Uniform), &[], &mut Rng::new(seed));
            assert_eq!(w.known[2 * seq..3 * seq], untouched.known[2 * seq..3 * seq]);
            assert_eq!(
                w.weight[2 * seq..3 * seq],
                untouched.weight[2 * seq..3 * seq]
            );
            for row in [0, 1, 3] {
                let known = &w.known[row * seq..(row + 1) * seq];
                let free: Vec<usize> = (0..seq).filter(|&i| known[i] == 0.0).collect();
                let (first, last) = (free[0], *free.last().unwrap());
                assert_eq!(
                    free.len(),
                    last - first + 1,
                    "one contiguous span: {known:?}"
                );
                assert!((1..=seq / 2).contains(&free.len()), "{}", free.len());
                let weights = &w.weight[row * seq..(row + 1) * seq];
                for (weight, k) in weights.iter().zip(known) {
                    assert_eq!(*weight, 1.0 - k, "known positions are weightless");
                }
                lens.insert(free.len());
            }
        }
        assert_eq!(lens.len(), seq / 2, "every span length occurs: {lens:?}");
        let mut half = plain.clone();
        half.hold_outside_spans(seq, (0.5, InfillSpans::Uniform), &[], &mut Rng::new(3));
        let held = (0..4).filter(|r| half.known[r * seq..(r + 1) * seq].contains(&1.0));
        assert!((1..4).contains(&held.count()), "some windows, not all");
    }

    #[test]
    fn log_uniform_spans_are_mostly_short_and_reach_every_length() {
        let (seq, rows) = (64, 4000);
        let mut w = Windows {
            tokens: vec![0; rows * seq],
            weight: vec![1.0; rows * seq],
            known: vec![0.0; rows * seq],
        };
        w.hold_outside_spans(seq, (1.0, InfillSpans::LogUniform), &[], &mut Rng::new(5));
        let lens: Vec<usize> = w
            .known
            .chunks(seq)
            .map(|k| k.iter().filter(|&&k| k == 0.0).count())
            .collect();
        assert!(lens.iter().all(|l| (1..=seq / 2).contains(l)));
        let share = |k: usize| lens.iter().filter(|&&l| l <= k).count() as f64 / rows as f64;
        // P(len ≤ k) = ln(k + 1) / ln(33): 0.40 at 3, 0.63 at 8; uniform: 0.09, 0.25.
        assert!((share(3) - 0.396).abs() < 0.03, "{}", share(3));
        assert!((share(8) - 0.628).abs() < 0.03, "{}", share(8));
        let distinct: BTreeSet<usize> = lens.into_iter().collect();
        assert_eq!(distinct.len(), seq / 2, "every length occurs");
    }

    /// Token 0 starts a line, every fifth position: half the spans run
    /// from one line start to a later one, mostly a single line; the
    /// others, and every span of a window without lines, are log-uniform.
    #[test]
    fn line_spans_cover_whole_lines() {
        let (seq, rows) = (64, 2000);
        let line_breaks = [true, false];
        let mut w = Windows {
            tokens: (0..rows * seq).map(|i| u32::from(i % 5 != 0)).collect(),
            weight: vec![1.0; rows * seq],
            known: vec![0.0; rows * seq],
        };
        w.tokens[..seq].fill(1);
        w.hold_outside_spans(
            seq,
            (1.0, InfillSpans::Lines),
            &line_breaks,
            &mut Rng::new(9),
        );
        let (mut whole, mut single) = (0, 0);
        for (r, known) in w.known.chunks(seq).enumerate() {
            let free: Vec<usize> = (0..seq).filter(|&i| known[i] == 0.0).collect();
            let (first, len) = (free[0], free.len());
            assert_eq!(free[len - 1] - first + 1, len, "one contiguous span");
            assert!((1..=seq / 2).contains(&len));
            let tokens = &w.tokens[r * seq..(r + 1) * seq];
            let end = first + len;
            if tokens[first] == 0 && len % 5 == 0 && end < seq && tokens[end] == 0 {
                whole += 1;
                single += usize::from(len == 5);
            }
        }
        let share = whole as f64 / rows as f64;
        // Whole lines: about half, plus log-uniform spans that happen to be.
        assert!((0.45..0.6).contains(&share), "{share}");
        // 1 of up to 12 lines, log-uniform: ln 2 / ln 13 = 0.27 of them.
        assert!(single as f64 / whole as f64 > 0.2, "{single} of {whole}");
    }

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
        assert_eq!(
            data.tokens(Split::Train).len() + data.tokens(Split::Val).len(),
            text.len()
        );
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

    fn text_doc(name: &str, text: &str) -> Document {
        Document {
            source: name.into(),
            body: Body::Text(text.into()),
            always_trains: false,
        }
    }

    fn example_doc(i: usize) -> Document {
        Document {
            source: format!("record {i}"),
            body: Body::Example {
                prompt: format!("Q{}?", i % 10),
                response: format!("a{}.", i % 10),
            },
            always_trains: false,
        }
    }

    #[test]
    fn documents_are_shuffled_by_seed_and_packed_with_separators() {
        let docs: Vec<Document> = (0..6)
            .map(|i| text_doc(&format!("d{i}"), &format!("{i}").repeat(40)))
            .collect();
        let tok = Tokenizer::char_level("012345\n").unwrap();
        let data = TextData::from_documents(&docs, &tok, 8, 1, "c").unwrap();
        let train = tok.decode(data.tokens(Split::Train)).unwrap();
        // Each document gives 36 training characters; blank lines between them.
        let parts: Vec<&str> = train.split("\n\n").collect();
        assert_eq!(parts.len(), 6, "{train}");
        assert!(
            parts
                .iter()
                .all(|p| p.len() == 36 && p.chars().all(|c| c == p.as_bytes()[0] as char))
        );
        let order = |seed| {
            let d = TextData::from_documents(&docs, &tok, 8, seed, "c").unwrap();
            tok.decode(d.tokens(Split::Train)).unwrap()
        };
        assert_eq!(order(1), train);
        assert_ne!(order(2), train, "another seed, another order");
        let val = tok.decode(data.tokens(Split::Val)).unwrap();
        assert_eq!(val.split("\n\n").count(), 6);
        // Plain text: every position trains and none is known.
        let w = data.batch_windows(Split::Train, (3, 8), 0, 0, 0.0);
        assert!(w.weight.iter().all(|&x| x == 1.0) && w.known.iter().all(|&x| x == 0.0));
        assert!(!data.has_prompts());
    }

    #[test]
    fn example_prompts_are_known_and_out_of_the_loss() {
        let docs: Vec<Document> = (0..40).map(example_doc).collect();
        let tok = Tokenizer::char_level("Q?a.0123456789\n").unwrap();
        let data = TextData::from_documents(&docs, &tok, 12, 3, "ex").unwrap();
        assert!(data.has_prompts());
        // 4 of 40 examples validate (one in ten).
        let val = tok.decode(data.tokens(Split::Val)).unwrap();
        assert_eq!(val.matches('Q').count(), 4, "{val}");
        let q = tok.encode("Q").unwrap()[0];
        for step in 0..20 {
            let w = data.batch_windows(Split::Train, (4, 12), 9, step, 0.0);
            for row in 0..4 {
                let r = row * 12..(row + 1) * 12;
                let text = tok.decode(&w.tokens[r.clone()]).unwrap();
                // Windows start at an example (never inside one) ...
                assert_eq!(w.tokens[r.start], q, "{text:?}");
                // ... and its prompt "Qn?" is known and weightless, the rest trains.
                for (j, c) in text.chars().enumerate() {
                    let in_prompt = text[..text.char_indices().nth(j).unwrap().0]
                        .rsplit("\n\n")
                        .next()
                        .is_some_and(|doc| !doc.contains('?'))
                        && c != '\n';
                    assert_eq!(
                        w.known[r.start + j],
                        f32::from(u8::from(in_prompt)),
                        "{text:?} at {j}"
                    );
                    assert_eq!(w.weight[r.start + j], 1.0 - w.known[r.start + j]);
                }
            }
        }
        let v = data.val_window_set(3, 12);
        assert_eq!(v.tokens[0], q);
        assert_eq!(v.known.len(), 36);
    }

    /// One example in ten validates, but never one that always trains (a
    /// `--split trained` probe): that one takes no turn.
    #[test]
    fn examples_that_always_train_never_validate() {
        let tok = Tokenizer::char_level("Q?ap.0123456789\n").unwrap();
        let docs: Vec<Document> = (0..200)
            .map(|i| match i % 3 {
                0 => Document {
                    body: Body::Example {
                        prompt: format!("Q{}?", i % 10),
                        response: "p.".into(),
                    },
                    always_trains: true,
                    ..example_doc(i)
                },
                _ => example_doc(i),
            })
            .collect();
        let data = TextData::from_documents(&docs, &tok, 12, 5, "ex").unwrap();
        let (train, val) = (
            tok.decode(data.tokens(Split::Train)).unwrap(),
            tok.decode(data.tokens(Split::Val)).unwrap(),
        );
        assert_eq!(train.matches("p.").count(), 67, "{train}");
        assert!(!val.contains('p'), "{val}");
        // One in ten of the 133 others.
        assert_eq!(val.matches('Q').count(), 13, "{val}");
    }

    /// A window that starts at an example ("Qn?" known, "an." and the
    /// separator "\n\n" scored) holds the separator after it to its end,
    /// scored (or, unscored, outside the loss); every other window is as
    /// packed.
    #[test]
    fn padded_windows_end_with_the_example_they_start_at() {
        let mut docs: Vec<Document> = (0..40).map(example_doc).collect();
        docs.push(text_doc("book", &"a.".repeat(400)));
        let tok = Tokenizer::char_level("Q?a.0123456789\n").unwrap();
        let packed = || TextData::from_documents(&docs, &tok, 12, 3, "ex").unwrap();
        let with = |padding| packed().with_example_padding(padding);
        let (plain, padded) = (packed(), with(ExamplePadding::Scored));
        let unscored = with(ExamplePadding::Unscored);
        let q = tok.encode("Q").unwrap()[0];
        let mut at_examples = 0;
        for step in 0..20 {
            let p = plain.batch_windows(Split::Train, (8, 12), 1, step, 0.5);
            let w = padded.batch_windows(Split::Train, (8, 12), 1, step, 0.5);
            let u = unscored.batch_windows(Split::Train, (8, 12), 1, step, 0.5);
            assert_eq!((&u.tokens, &u.known), (&w.tokens, &w.known));
            for r in (0..8).map(|row| row * 12..(row + 1) * 12) {
                if p.tokens[r.start] != q {
                    assert_eq!(p.tokens[r.clone()], w.tokens[r.clone()]);
                    assert_eq!(p.weight[r.clone()], w.weight[r.clone()]);
                    assert_eq!(p.weight[r.clone()], u.weight[r.clone()]);
                    assert_eq!(p.known[r.clone()], w.known[r.clone()]);
                    continue;
                }
                let closed: Vec<f32> = (0..12)
                    .map(|i| f32::from(u8::from((3..8).contains(&i))))
                    .collect();
                assert_eq!(
                    u.weight[r.clone()],
                    closed,
                    "the example scored, its padding not"
                );
                at_examples += 1;
                let text = tok.decode(&w.tokens[r.clone()]).unwrap();
                let example = tok.decode(&p.tokens[r.start..r.start + 8]).unwrap();
                assert_eq!(text, format!("{example}\n\n\n\n"));
                assert_ne!(p.tokens[r.start + 8..r.end], w.tokens[r.start + 8..r.end]);
                let known: Vec<f32> = (0..12).map(|i| f32::from(u8::from(i < 3))).collect();
                assert_eq!(w.known[r.clone()], known, "{text:?}");
                assert!(w.weight[r.start + 3..r.end].iter().all(|&x| x == 1.0));
            }
        }
        assert!(at_examples > 40, "{at_examples} windows at an example");
        let v = padded.val_window_set(20, 12);
        let at_examples: Vec<String> = (v.tokens.chunks(12).filter(|row| row[0] == q))
            .map(|row| tok.decode(row).unwrap())
            .collect();
        assert!(!at_examples.is_empty());
        for text in at_examples {
            assert!(text.ends_with("\n\n\n\n"), "{text:?}");
        }
    }

    /// Each prompt opens its window whole (its end where it is longer than
    /// half the window); the reference and one separator follow it, scored,
    /// cut to fit after the longer of its two prompts; the rest is known.
    #[test]
    fn references_are_scored_after_whole_prompts() {
        let tok = Tokenizer::char_level("Qab?xyz.\n").unwrap();
        let prompts = ["Qa?", "Qabababab?", "Qb?"];
        let references = ["xy.", "xyzxyz.", "zyx."];
        let [own, another] = Windows::prompt_pairs(&tok, (&prompts, &references), 12).unwrap();
        let starts = (own.scored_starts(12), another.scored_starts(12));
        assert_eq!(starts, (vec![3, 6, 3], vec![6, 3, 3]));
        let rows = |w: &Windows| -> Vec<String> {
            w.tokens
                .chunks(12)
                .map(|r| tok.decode(r).unwrap())
                .collect()
        };
        // "Qabababab?" is cut to its last six tokens (half the window).
        let own_rows = ["Qa?xy.\n\n\n\n\n\n", "babab?xyzxyz", "Qb?zyx.\n\n\n\n\n"];
        assert_eq!(rows(&own), own_rows);
        // The second reference and its separator (9 tokens) are cut to the 6
        // that fit after its longer prompt, in both windows.
        let other_rows = ["babab?xy.\n\n\n", "Qb?xyzxyz\n\n\n", "Qa?zyx.\n\n\n\n\n"];
        assert_eq!(rows(&another), other_rows);
        let scored = |w: &Windows, row: usize| -> Vec<usize> {
            (0..12).filter(|&i| w.weight[row * 12 + i] == 1.0).collect()
        };
        for (row, own_span, other_span) in [(0, 3..8, 6..11), (1, 6..12, 3..9), (2, 3..9, 3..9)] {
            assert_eq!(scored(&own, row), own_span.collect::<Vec<_>>(), "row {row}");
            assert_eq!(
                scored(&another, row),
                other_span.collect::<Vec<_>>(),
                "row {row}"
            );
        }
        for w in [&own, &another] {
            let known: Vec<f32> = w.weight.iter().map(|x| 1.0 - x).collect();
            assert_eq!(w.known, known, "the rest known");
            for row in 0..3 {
                let tokens = |w: &Windows| -> Vec<u32> {
                    scored(w, row)
                        .iter()
                        .map(|&i| w.tokens[row * 12 + i])
                        .collect()
                };
                assert_eq!(tokens(w), tokens(&own), "row {row}: the same tokens scored");
            }
        }
    }

    #[test]
    fn a_share_of_windows_starts_at_an_example() {
        let mut docs: Vec<Document> = (0..8).map(example_doc).collect();
        docs.push(text_doc("book", &"a.".repeat(2000)));
        let tok = Tokenizer::char_level("Q?a.0123456789\n").unwrap();
        let data = TextData::from_documents(&docs, &tok, 12, 3, "ex").unwrap();
        let q = tok.encode("Q").unwrap()[0];
        let at_examples = |share: f64| {
            (0..50)
                .map(|step| data.batch_windows(Split::Train, (8, 12), 1, step, share))
                .flat_map(|w| w.tokens.chunks(12).map(|row| row[0]).collect::<Vec<_>>())
                .filter(|&first| first == q)
                .count() as f64
                / 400.0
        };
        let (none, half, all) = (at_examples(0.0), at_examples(0.5), at_examples(1.0));
        assert!(none < 0.1, "examples are a small part of the text: {none}");
        assert!((0.4..0.65).contains(&half), "{half}");
        assert_eq!(all, 1.0);
        assert_eq!(
            data.batch_windows(Split::Train, (8, 12), 1, 3, 0.0),
            data.batch_windows(Split::Train, (8, 12), 1, 3, 0.0),
        );
    }
}
