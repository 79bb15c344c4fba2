//! What a sample is conditioned on: positions held known while the rest is
//! denoised. A prompt fixes a prefix; an infill template fixes the text around
//! holes; a code completion fixes the code before and after a cursor.
//!
//! Infill templates mark holes with `[___]` (a hole of the default length),
//! `[___:N]` (N positions) or one `▢` per position; any number of underscores
//! (at least one) may be written. Everything else is known text.

use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// One position to fill.
pub const HOLE_CHAR: char = '▢';
/// Positions a bare `[___]` stands for.
pub const DEFAULT_HOLE: usize = 16;
/// The longest sequence samnet samples (positions) from a model built for
/// fewer (one whose `max_seq_len` is longer samples up to that), and so the
/// most positions the holes of one template may add up to.
pub const MAX_SAMPLE_LEN: usize = 4096;

/// What follows a hole that nothing written follows (a completion, a
/// response).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoleEnd {
    /// Nothing known: the model writes past the hole as it likes, and what it
    /// fills may stop mid-thought where the hole does.
    Open,
    /// The tokenizer's separator, known right after the hole: the document
    /// ends there, as a packed training document ends before the next one,
    /// so the model writes a whole answer (or body) of at most the hole's
    /// positions.
    Document,
}

impl HoleEnd {
    /// `Document` where the text is to end with the hole, else `Open`.
    pub fn ending(ends: bool) -> Self {
        if ends {
            HoleEnd::Document
        } else {
            HoleEnd::Open
        }
    }

    fn tokens(self, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        match self {
            HoleEnd::Open => Ok(Vec::new()),
            HoleEnd::Document => tokenizer.separator(),
        }
    }
}

/// A template split into known text and holes, before tokenizing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Hole(usize),
}

/// Parses an infill template. Errors name the column (in characters, from 1)
/// of what is malformed.
pub fn parse_template(template: &str, default_hole: usize) -> Result<Vec<Segment>> {
    if default_hole == 0 || default_hole > MAX_SAMPLE_LEN {
        return Err(Error::Invalid(format!(
            "the default hole length must be 1..={MAX_SAMPLE_LEN} positions, got {default_hole}"
        )));
    }
    let mut hole_positions = 0usize;
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut chars = template.char_indices().peekable();
    let column = |byte: usize| template[..byte].chars().count() + 1;
    let push_hole = |segments: &mut Vec<Segment>, text: &mut String, n: usize| {
        if !text.is_empty() {
            segments.push(Segment::Text(std::mem::take(text)));
        }
        match segments.last_mut() {
            Some(Segment::Hole(m)) => *m += n,
            _ => segments.push(Segment::Hole(n)),
        }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            HOLE_CHAR => {
                hole_positions += 1;
                if hole_positions > MAX_SAMPLE_LEN {
                    return Err(Error::Invalid(format!(
                        "the infill holes add up to more than {MAX_SAMPLE_LEN} positions, the longest sequence samnet samples (at column {})",
                        column(at)
                    )));
                }
                push_hole(&mut segments, &mut text, 1)
            }
            '[' if template[at + 1..].starts_with('_') => {
                let rest = &template[at + 1..];
                let close = rest.find(']').ok_or_else(|| {
                    Error::Invalid(format!(
                        "infill hole at column {} is not closed: expected `[___]` or `[___:N]`",
                        column(at)
                    ))
                })?;
                let inner = &rest[..close];
                let (underscores, length) = match inner.split_once(':') {
                    Some((u, n)) => (u, Some(n)),
                    None => (inner, None),
                };
                // Quoted with escapes, so the error stays on one line.
                if !underscores.chars().all(|c| c == '_') {
                    return Err(Error::Invalid(format!(
                        "infill hole at column {} is {:?}: expected `[___]` or `[___:N]`",
                        column(at),
                        format!("[{inner}]")
                    )));
                }
                let n = match length {
                    None => default_hole,
                    Some(n) => n
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| (1..=MAX_SAMPLE_LEN).contains(&n))
                        .ok_or_else(|| {
                            Error::Invalid(format!(
                                "infill hole at column {} has length {n:?}: expected a whole number of positions in 1..={MAX_SAMPLE_LEN}",
                                column(at)
                            ))
                        })?,
                };
                hole_positions += n;
                if hole_positions > MAX_SAMPLE_LEN {
                    return Err(Error::Invalid(format!(
                        "the infill holes add up to more than {MAX_SAMPLE_LEN} positions, the longest sequence samnet samples (at column {})",
                        column(at)
                    )));
                }
                push_hole(&mut segments, &mut text, n);
                // Skip the hole's body and its closing bracket.
                while chars.next_if(|&(i, _)| i <= at + 1 + close).is_some() {}
            }
            _ => text.push(c),
        }
    }
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    if !segments.iter().any(|s| matches!(s, Segment::Hole(_))) {
        return Err(Error::Invalid(
            "the infill text has no hole: mark positions to fill with `[___]`, `[___:N]` or `▢`"
                .into(),
        ));
    }
    Ok(segments)
}

/// Positions held known: `tokens` (count·len) where `mask` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub tokens: Vec<u32>,
    pub mask: Vec<bool>,
}

impl Known {
    /// Nothing known.
    pub fn none(len: usize) -> Known {
        Known {
            tokens: vec![0; len],
            mask: vec![false; len],
        }
    }

    /// `prompt` fixed at the start of a sequence of `len`.
    pub fn prompt(tokenizer: &Tokenizer, prompt: &str, len: usize) -> Result<Known> {
        let ids = tokenizer.encode(prompt)?;
        if ids.len() > len {
            return Err(Error::Invalid(format!(
                "the prompt is {} tokens, longer than the {len} positions sampled",
                ids.len()
            )));
        }
        let mut known = Known::none(len);
        known.tokens[..ids.len()].copy_from_slice(&ids);
        known.mask[..ids.len()].fill(true);
        Ok(known)
    }

    /// Like [`Known::prompt`], and the prompt must fit in what the model was
    /// built for (`max_seq_len` positions), whatever the sampled length.
    pub fn prompt_within(
        tokenizer: &Tokenizer,
        prompt: &str,
        len: usize,
        max_seq_len: usize,
    ) -> Result<Known> {
        let known = Known::prompt(tokenizer, prompt, len)?;
        let held = known.held_prefix();
        if held > max_seq_len {
            return Err(Error::Invalid(format!(
                "the prompt is {held} tokens, more than the model's max_seq_len of {max_seq_len}"
            )));
        }
        Ok(known)
    }

    /// Positions held from the start (a prompt's length).
    pub fn held_prefix(&self) -> usize {
        self.mask.iter().take_while(|&&m| m).count()
    }

    /// An infill template laid out from position 0; positions after it (up to
    /// `len`, if larger) are free. `len = None` samples exactly the template.
    pub fn infill(
        tokenizer: &Tokenizer,
        segments: &[Segment],
        len: Option<usize>,
    ) -> Result<Known> {
        let mut known = Known::none(0);
        for segment in segments {
            match segment {
                Segment::Text(text) => {
                    let ids = tokenizer.encode(text)?;
                    known.mask.extend(std::iter::repeat_n(true, ids.len()));
                    known.tokens.extend(ids);
                }
                Segment::Hole(n) => {
                    known.tokens.extend(std::iter::repeat_n(0, *n));
                    known.mask.extend(std::iter::repeat_n(false, *n));
                }
            }
        }
        let used = known.tokens.len();
        let len = len.unwrap_or(used);
        if used > len {
            return Err(Error::Invalid(format!(
                "the infill template takes {used} positions, more than the {len} sampled"
            )));
        }
        known.tokens.resize(len, 0);
        known.mask.resize(len, false);
        Ok(known)
    }

    /// Code completion: a hole of `hole` positions at the cursor, with as much
    /// context before and after it as fits in `len` (before first: it matters
    /// most). With a BPE tokenizer the whitespace that ends `before` (the
    /// cursor line's indentation, the newline before a line, the space
    /// before a word) joins the hole, with positions of its own: a byte-level
    /// BPE tokenizes a run of whitespace together with the word after it, so
    /// the model never saw such a run end where text continues.
    ///
    /// Where `before` does not fit, its start is cut; `pinned`, a line of
    /// `before` (say the signature of the function around the cursor,
    /// whose names the hole needs), then stays at the window's start, the
    /// whole lines after it that fit following it.
    pub fn around_cursor(
        tokenizer: &Tokenizer,
        (before, after): (&str, &str),
        pinned: Option<&str>,
        hole: usize,
        len: usize,
    ) -> Result<(Known, CursorHole)> {
        let after = tokenizer.encode(after)?;
        Self::cursor_then(tokenizer, (before, &after), pinned, hole, len)
    }

    /// A benchmark's hole around known hidden text: [`Known::around_cursor`]
    /// with a hole as long as `hidden` is where it stands, that is as many
    /// positions as the whitespace before it and `hidden` take when they are
    /// tokenized together (a byte-level BPE joins a newline and the next
    /// line's indentation into one token), less the whitespace's own tokens.
    /// Counting `hidden` alone would give the hole a position that no
    /// training text fills. With [`HoleEnd::Document`] the text is known to
    /// end where `after` does (the separator after it, where it fits), as a
    /// padded training example ends.
    pub fn around_hidden(
        tokenizer: &Tokenizer,
        (before, hidden, after): (&str, &str, &str),
        end: HoleEnd,
        pinned: Option<&str>,
        len: usize,
    ) -> Result<(Known, CursorHole)> {
        let whitespace = cursor_whitespace(tokenizer, before);
        let together = tokenizer.encode(&format!("{whitespace}{hidden}"))?.len();
        let hole = together.saturating_sub(tokenizer.encode(whitespace)?.len());
        let mut after = tokenizer.encode(after)?;
        after.extend(end.tokens(tokenizer)?);
        Self::cursor_then(tokenizer, (before, &after), pinned, hole.max(1), len)
    }

    /// An example's response (an instruction's answer, a HumanEval body):
    /// the prompt known exactly as training tokenized it (on its own, its
    /// closing newline included), then a hole of `hole` positions; the rest
    /// of `len` is left to the model. Where the prompt is cut, `pinned` (a
    /// line of it) opens the window.
    pub fn after_prompt(
        tokenizer: &Tokenizer,
        (prompt, pinned): (&str, Option<&str>),
        hole: usize,
        len: usize,
        end: HoleEnd,
    ) -> Result<(Known, CursorHole)> {
        let after = end.tokens(tokenizer)?;
        Self::hole_between(tokenizer, (prompt, "", &after), pinned, hole, len)
    }

    /// Code completion at the end of what is written: [`Known::around_cursor`]
    /// with nothing after the cursor but what `end` puts there.
    pub fn completion(
        tokenizer: &Tokenizer,
        before: &str,
        pinned: Option<&str>,
        (hole, end): (usize, HoleEnd),
        len: usize,
    ) -> Result<(Known, CursorHole)> {
        let after = end.tokens(tokenizer)?;
        Self::cursor_then(tokenizer, (before, &after), pinned, hole, len)
    }

    /// The hole at the cursor that ends `before`, its whitespace taken in.
    fn cursor_then(
        tokenizer: &Tokenizer,
        (before, after): (&str, &[u32]),
        pinned: Option<&str>,
        hole: usize,
        len: usize,
    ) -> Result<(Known, CursorHole)> {
        let prefix = cursor_whitespace(tokenizer, before);
        let before = &before[..before.len() - prefix.len()];
        Self::hole_between(tokenizer, (before, prefix, after), pinned, hole, len)
    }

    /// `before`, the hole (`prefix` written into its first positions by the
    /// model, then `hole` more) and `after`, trimmed to `len`; where
    /// `before` is cut, `pinned` (a line of it) opens the window.
    fn hole_between(
        tokenizer: &Tokenizer,
        (before_text, prefix, after): (&str, &str, &[u32]),
        pinned: Option<&str>,
        hole: usize,
        len: usize,
    ) -> Result<(Known, CursorHole)> {
        let positions = hole + tokenizer.encode(prefix)?.len();
        if hole == 0 || positions >= len {
            let whitespace = match positions - hole {
                0 => String::new(),
                n => format!(" (and {n} for the whitespace before the cursor)"),
            };
            return Err(Error::Invalid(format!(
                "the hole must be 1..{len} positions (fewer than the sequence), got {hole}{whitespace}"
            )));
        }
        let before = tokenizer.encode(before_text)?;
        let room = len - positions;
        let after_kept = after
            .len()
            .min(room / 4)
            .max(room.saturating_sub(before.len()));
        let after_kept = after_kept.min(after.len());
        let before_room = room - after_kept;
        let before = match pinned {
            Some(line) if before.len() > before_room => {
                pinned_then_tail(tokenizer, (before_text, &before), line, before_room)?
            }
            _ => None,
        }
        .unwrap_or_else(|| before[before.len() - before.len().min(before_room)..].to_vec());
        let before_kept = before.len();
        let mut known = Known::none(0);
        known.tokens.extend_from_slice(&before);
        known.tokens.extend(std::iter::repeat_n(0, positions));
        known.tokens.extend_from_slice(&after[..after_kept]);
        known.mask = (0..known.tokens.len())
            .map(|i| i < before_kept || i >= before_kept + positions)
            .collect();
        known.tokens.resize(len, 0);
        known.mask.resize(len, false);
        let hole = CursorHole {
            start: before_kept,
            positions,
            prefix: prefix.to_string(),
        };
        Ok((known, hole))
    }
}

/// The Python definition around a cursor, the line to pin in its window
/// ([`Known::around_cursor`]): the nearest `def`, `async def` or `class`
/// line above the cursor's line that is indented less than it and than every
/// line between them. `None` at the top level (an unindented cursor line) or
/// where no such line is in `before`. A signature spread over several lines
/// gives its first.
pub fn enclosing_definition<'a>(before: &'a str, after: &str) -> Option<&'a str> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let (above, cursor_start) = match before.rfind('\n') {
        Some(at) => (&before[..at], &before[at + 1..]),
        None => return None,
    };
    let cursor_line = format!("{cursor_start}{}", after.split('\n').next().unwrap_or(""));
    let mut within = indent(&cursor_line);
    for line in above.rsplit('\n').filter(|l| !l.trim().is_empty()) {
        if indent(line) >= within {
            continue;
        }
        let code = line.trim_start();
        if ["def ", "async def ", "class "]
            .iter()
            .any(|k| code.starts_with(k))
        {
            return Some(line);
        }
        within = indent(line);
    }
    None
}

/// Where `before` (`tokens`, tokenized) is cut to its last `room` tokens
/// and that cuts off `line` (the last line of `before` that starts with
/// it): the tokens of `line`, then the whole lines of `before` after it that
/// fit in `room` with it. `None` where the cut keeps `line` anyway, `before`
/// holds no such line or it fills the room alone.
fn pinned_then_tail(
    tokenizer: &Tokenizer,
    (before, tokens): (&str, &[u32]),
    line: &str,
    room: usize,
) -> Result<Option<Vec<u32>>> {
    let line = line.trim_end();
    let Some(at) = before
        .rmatch_indices(line)
        .map(|(at, _)| at)
        .find(|&at| at == 0 || before[..at].ends_with('\n'))
    else {
        return Ok(None);
    };
    let pinned = tokenizer.encode(line)?;
    let cut_at = tokens.len().saturating_sub(room);
    if tokenizer.encode(&before[..at])?.len() >= cut_at || pinned.len() >= room {
        return Ok(None);
    }
    let rest = tokenizer.encode(&before[at + line.len()..])?;
    // The tail starts at a token that holds a newline: the start of a line.
    let line_breaks = tokenizer.line_breaks();
    let cut = rest.len().saturating_sub(room - pinned.len());
    let start = (cut..rest.len())
        .find(|&i| line_breaks.get(rest[i] as usize).copied().unwrap_or(false))
        .unwrap_or(rest.len());
    Ok(Some([&pinned[..], &rest[start..]].concat()))
}

/// The whitespace that ends `before` and joins a cursor's hole (none for a
/// character tokenizer): see [`Known::around_cursor`].
fn cursor_whitespace<'a>(tokenizer: &Tokenizer, before: &'a str) -> &'a str {
    if tokenizer.is_char_level() {
        ""
    } else {
        &before[before.trim_end().len()..]
    }
}

/// Where [`Known::around_cursor`] or [`Known::after_prompt`] put the hole,
/// and the whitespace from before the cursor that it took in (none after a
/// prompt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorHole {
    pub start: usize,
    pub positions: usize,
    pub prefix: String,
}

impl CursorHole {
    /// The positions of the hole.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.positions
    }

    /// What the hole holds in `tokens` (a sampled sequence) up to its first
    /// separator token (a model trained on padded examples ends its answer
    /// with it: the rest is padding, never source text), less the whitespace
    /// it took in from before the cursor where it was written back.
    pub fn filled(&self, tokenizer: &Tokenizer, tokens: &[u32]) -> Result<String> {
        let hole = &tokens[self.range()];
        let text = tokenizer.decode(&hole[..text_end(hole, 0, tokenizer.separator_token())])?;
        Ok(match text.strip_prefix(&self.prefix) {
            Some(rest) => rest.to_string(),
            None => text,
        })
    }
}

/// Where generated text ends: at the first `separator` from position `from`
/// on (a model trained on packed documents writes one after its answer and
/// then starts another document), else the whole sequence.
pub fn text_end(tokens: &[u32], from: usize, separator: Option<u32>) -> usize {
    separator
        .and_then(|sep| {
            tokens
                .iter()
                .enumerate()
                .skip(from)
                .find(|&(_, &t)| t == sep)
                .map(|(i, _)| i)
        })
        .unwrap_or(tokens.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_into_text_and_holes() {
        let s = parse_template("To be[___:3] or ▢▢ not[_]!", 5).unwrap();
        assert_eq!(
            s,
            vec![
                Segment::Text("To be".into()),
                Segment::Hole(3),
                Segment::Text(" or ".into()),
                Segment::Hole(2),
                Segment::Text(" not".into()),
                Segment::Hole(5),
                Segment::Text("!".into()),
            ]
        );
        // Adjacent holes merge; brackets that are not holes stay text.
        assert_eq!(
            parse_template("[a]▢[___:2]", 4).unwrap(),
            vec![Segment::Text("[a]".into()), Segment::Hole(3)]
        );
    }

    #[test]
    fn malformed_templates_name_the_column() {
        let err = |t: &str| parse_template(t, 4).unwrap_err().to_string();
        assert!(err("ab[___").contains("column 3"), "{}", err("ab[___"));
        assert!(err("x[___:0]").contains("length \"0\""));
        assert!(err("x[___:ten]").contains("length \"ten\""));
        assert!(err("[_x_]").contains("\"[_x_]\""));
        // Huge or overflowing lengths and newlines inside a bad hole: one-line errors.
        assert!(err(&format!("[___:{}]▢", usize::MAX)).contains("positions in 1..="));
        assert!(err("[___:5000]").contains("positions in 1..=4096"));
        let too_many = err("[___:3000] [___:3000]");
        assert!(
            too_many.contains("more than 4096 positions, the longest sequence")
                && too_many.contains("column 12"),
            "{too_many}"
        );
        assert!(!err("a[___\nb]").contains('\n'));
        assert!(err("no holes here").contains("no hole"));
    }

    #[test]
    fn known_positions_follow_the_template() {
        let tok = Tokenizer::char_level("abcdefgh ").unwrap();
        let segments = parse_template("ab[___:3]c", 4).unwrap();
        let k = Known::infill(&tok, &segments, Some(8)).unwrap();
        assert_eq!(
            k.mask,
            [true, true, false, false, false, true, false, false]
        );
        assert_eq!(tok.decode(&k.tokens[..2]).unwrap(), "ab");
        assert_eq!(tok.decode(&k.tokens[5..6]).unwrap(), "c");
        assert!(Known::infill(&tok, &segments, Some(5)).is_err());
        let p = Known::prompt(&tok, "abc", 5).unwrap();
        assert_eq!(p.mask, [true, true, true, false, false]);
        assert_eq!(p.held_prefix(), 3);
        assert!(Known::prompt_within(&tok, "abc", 5, 3).is_ok());
        let err = Known::prompt_within(&tok, "abcd", 8, 3)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("4 tokens") && err.contains("max_seq_len of 3"),
            "{err}"
        );
        assert!(Known::prompt(&tok, "abcdef", 5).is_err());
    }

    #[test]
    fn generated_text_ends_at_the_first_separator_after_the_prompt() {
        let tokens = [5, 0, 7, 8, 0, 9];
        assert_eq!(text_end(&tokens, 2, Some(0)), 4);
        assert_eq!(text_end(&tokens, 0, Some(0)), 1);
        assert_eq!(text_end(&tokens, 5, Some(0)), 6);
        assert_eq!(text_end(&tokens, 2, None), 6);
    }

    #[test]
    fn cursor_context_fits_the_window() {
        let tok = Tokenizer::char_level("abcdefgh").unwrap();
        let (k, hole) = Known::around_cursor(&tok, ("abcdefgh", "hgfedcba"), None, 4, 12).unwrap();
        // 8 positions of context: at least a quarter after the hole.
        assert_eq!(hole.range(), 6..10);
        assert_eq!(tok.decode(&k.tokens[..6]).unwrap(), "cdefgh");
        assert!(k.mask[..6].iter().all(|&m| m) && k.mask[6..10].iter().all(|&m| !m));
        assert_eq!(tok.decode(&k.tokens[10..]).unwrap(), "hg");
        // Short context: everything kept, the rest of the window free.
        let (k, hole) = Known::around_cursor(&tok, ("ab", "c"), None, 3, 10).unwrap();
        assert_eq!(hole.start, 2);
        assert_eq!(
            k.mask,
            [
                true, true, false, false, false, true, false, false, false, false
            ]
        );
        assert!(Known::around_cursor(&tok, ("a", "b"), None, 10, 10).is_err());
    }

    #[test]
    fn a_bpe_hole_takes_in_the_whitespace_before_the_cursor() {
        let code = "def f(x):\n    return x\n\ndef g(y):\n    return y\n";
        let tok = Tokenizer::train_bpe(&[code.repeat(20)], 300).unwrap();
        let before = "def f(x):\n    ";
        let (k, hole) = Known::around_cursor(&tok, (before, "\n"), None, 2, 32).unwrap();
        assert_eq!(hole.prefix, "\n    ");
        let prefix_tokens = tok.encode("\n    ").unwrap().len();
        assert_eq!(hole.positions, 2 + prefix_tokens);
        let kept = tok.encode("def f(x):").unwrap();
        assert_eq!(
            &k.tokens[..hole.start],
            &kept[..],
            "known text ends before the whitespace"
        );
        assert!(k.mask[hole.range()].iter().all(|&m| !m));
        // A fill that writes the whitespace back is returned without it.
        let mut sampled = k.tokens.clone();
        let written = tok.encode("\n    return x").unwrap();
        sampled[hole.start..hole.start + written.len()].copy_from_slice(&written);
        for t in &mut sampled[hole.start + written.len()..hole.range().end] {
            *t = tok.encode("\n").unwrap()[0];
        }
        let filled = hole.filled(&tok, &sampled).unwrap();
        assert!(filled.starts_with("return x"), "{filled:?}");
        // A separator ends the fill: what follows it is padding.
        let last = hole.range().end - 1;
        sampled[last] = tok.separator_token().unwrap();
        let kept = tok.decode(&sampled[hole.start..last]).unwrap();
        let cut = hole.filled(&tok, &sampled).unwrap();
        assert_eq!(cut, kept.strip_prefix("\n    ").unwrap(), "{kept:?}");
        assert!(cut.len() < filled.len(), "{cut:?}");
        // Characters tokenize alone: nothing moves.
        let chars = Tokenizer::char_level(code).unwrap();
        let (_, hole) = Known::around_cursor(&chars, (before, "\n"), None, 2, 32).unwrap();
        assert_eq!((hole.prefix.as_str(), hole.positions), ("", 2));
    }

    /// A hidden line's hole is as long as the line where it stands: the
    /// newline before it and its indentation are one token there, so the
    /// hole is one position shorter than the line tokenized alone.
    #[test]
    fn a_hidden_line_takes_the_positions_it_takes_in_place() {
        let code = "def f(x):\n    if x:\n        return []\n    return x\n\n";
        let tok = Tokenizer::train_bpe(&[code.repeat(20)], 300).unwrap();
        let (before, hidden, after) = (
            "def f(x):\n    if x:\n",
            "        return []",
            "\n    return x\n",
        );
        let (k, hole) =
            Known::around_hidden(&tok, (before, hidden, after), HoleEnd::Open, None, 32).unwrap();
        let in_place = tok.encode(&format!("\n{hidden}")).unwrap();
        assert!(in_place.len() < 1 + tok.encode(hidden).unwrap().len());
        assert_eq!(hole.positions, in_place.len());
        // The whole program's tokens, with the hole filled as training saw it.
        let mut sampled = k.tokens.clone();
        sampled[hole.range()].copy_from_slice(&in_place);
        let whole = tok.encode(&format!("{before}{hidden}{after}")).unwrap();
        assert_eq!(&sampled[..whole.len()], &whole[..]);
        assert_eq!(hole.filled(&tok, &sampled).unwrap(), hidden);
        assert!(
            !k.mask[whole.len()..].iter().any(|&m| m),
            "free after the text"
        );
        // A text that ends: the separator known right after it, where it fits.
        let ending = (before, hidden, after);
        let (e, _) = Known::around_hidden(&tok, ending, HoleEnd::Document, None, 32).unwrap();
        let separator = tok.separator_token().unwrap();
        assert_eq!(&e.tokens[..whole.len()], &k.tokens[..whole.len()]);
        assert_eq!(
            (e.tokens[whole.len()], e.mask[whole.len()]),
            (separator, true)
        );
        assert!(!e.mask[whole.len() + 1..].iter().any(|&m| m));
        // Where the text after the hole is cut, so is its end.
        let cut = whole.len() - 1;
        let (c, _) = Known::around_hidden(&tok, ending, HoleEnd::Document, None, cut).unwrap();
        assert_eq!(c.tokens.len(), cut);
        assert!(
            c.mask[cut - 1],
            "the window ends in the text after the hole"
        );
        assert!((0..cut).all(|i| !c.mask[i] || c.tokens[i] != separator));
        // Characters: the hidden text's own length.
        let chars = Tokenizer::char_level(code).unwrap();
        let (_, hole) =
            Known::around_hidden(&chars, (before, hidden, after), HoleEnd::Open, None, 40).unwrap();
        assert_eq!((hole.prefix.as_str(), hole.positions), ("", hidden.len()));
    }

    /// Where the text before a hole is cut, the pinned line (a function's
    /// signature) opens the window, then the whole lines nearest the hole.
    #[test]
    fn a_cut_window_keeps_the_pinned_line() {
        let lines: String = (0..12).map(|i| format!("    line number {i}\n")).collect();
        let before = format!("import os\n\n\ndef f(alpha, beta):\n{lines}");
        let (hidden, after) = ("    return alpha", "\n");
        let tok =
            Tokenizer::train_bpe(&[format!("{before}{hidden}{after}").repeat(20)], 300).unwrap();
        let signature = "def f(alpha, beta):";
        let around = (before.as_str(), hidden, after);
        let (k, hole) =
            Known::around_hidden(&tok, around, HoleEnd::Open, Some(signature), 40).unwrap();
        let pinned = tok.encode(signature).unwrap();
        assert_eq!(&k.tokens[..pinned.len()], &pinned[..]);
        assert!(k.mask[..hole.start].iter().all(|&m| m));
        let kept = tok.decode(&k.tokens[pinned.len()..hole.start]).unwrap();
        assert!(kept.starts_with("\n    line number "), "{kept:?}");
        assert!(
            kept.ends_with("line number 11") && kept.lines().count() > 2,
            "{kept:?}"
        );
        assert!(before.contains(&kept[1..]), "{kept:?}");
        // Unpinned, the window opens inside the lines; with room for it all,
        // the pin changes nothing.
        let (plain, _) = Known::around_hidden(&tok, around, HoleEnd::Open, None, 40).unwrap();
        assert_ne!(&plain.tokens[..pinned.len()], &pinned[..]);
        assert_eq!(
            Known::around_hidden(&tok, around, HoleEnd::Open, Some(signature), 200).unwrap(),
            Known::around_hidden(&tok, around, HoleEnd::Open, None, 200).unwrap()
        );
    }

    /// The pinned line of a cursor is the `def`/`class` whose body holds it.
    #[test]
    fn the_enclosing_definition_is_the_nearest_less_indented_one() {
        let code = "import os\n\nclass Box:\n    def size(self):\n        if self.full:\n\n            return 1\n        x = 2\n\n    def put(self, item):\n        pass\n\n\ndef top(a,\n        b):\n    return a\n";
        let at = |marker: &str| {
            let i = code.find(marker).unwrap();
            enclosing_definition(&code[..i], &code[i..])
        };
        assert_eq!(at("return 1"), Some("    def size(self):"));
        assert_eq!(at("x = 2"), Some("    def size(self):"));
        assert_eq!(at("pass"), Some("    def put(self, item):"));
        assert_eq!(at("def put"), Some("class Box:"));
        assert_eq!(at("return a"), Some("def top(a,"));
        assert_eq!(at("def top"), None);
        assert_eq!(at("import"), None);
        // A cursor on a blank line keeps the indentation typed before it.
        let blank = code.find("\n\n    def put").unwrap() + 1;
        assert_eq!(enclosing_definition(&code[..blank], &code[blank..]), None);
        let typed = format!("{}        ", &code[..blank]);
        assert_eq!(
            enclosing_definition(&typed, &code[blank..]),
            Some("    def size(self):")
        );
    }

    /// An instruction prompt stays as training tokenized it, on its own:
    /// its closing newline is known, not moved into the response's hole.
    #[test]
    fn a_prompt_keeps_its_closing_newline() {
        let text = "### Instruction:\nAdd.\n\n### Response:\n5\n";
        let tok = Tokenizer::train_bpe(&[text.repeat(20)], 300).unwrap();
        let prompt = "### Instruction:\nAdd.\n\n### Response:\n";
        let (k, hole) = Known::after_prompt(&tok, (prompt, None), 3, 32, HoleEnd::Open).unwrap();
        let tokens = tok.encode(prompt).unwrap();
        assert_eq!(&k.tokens[..hole.start], &tokens[..]);
        assert!(k.mask[..hole.start].iter().all(|&m| m));
        assert_eq!((hole.prefix.as_str(), hole.positions), ("", 3));
        assert!(k.mask[hole.start..].iter().all(|&m| !m));
    }

    /// A code prompt laid out as training reads an example keeps every one
    /// of its tokens, its closing newline included, where the cursor layout
    /// leaves that newline to the model; cut to fit, it opens with its
    /// pinned signature.
    #[test]
    fn a_code_prompt_after_which_a_body_starts_as_in_training() {
        let prompt = "def f(alpha, beta):\n    \"\"\"Add them.\"\"\"\n";
        let body = "    return alpha + beta\n";
        let tok = Tokenizer::train_bpe(&[format!("{prompt}{body}").repeat(20)], 300).unwrap();
        let end = HoleEnd::Document;
        let (k, hole) = Known::after_prompt(&tok, (prompt, None), 8, 32, end).unwrap();
        assert_eq!(&k.tokens[..hole.start], &tok.encode(prompt).unwrap()[..]);
        assert_eq!(hole.prefix, "");
        let (_, cursor) = Known::completion(&tok, prompt, None, (8, end), 32).unwrap();
        assert_eq!(cursor.prefix, "\n");
        let signature = "def f(alpha, beta):";
        let long = format!("{signature}\n{}", "    # a comment line\n".repeat(12));
        let (k, hole) = Known::after_prompt(&tok, (&long, Some(signature)), 8, 32, end).unwrap();
        let pinned = tok.encode(signature).unwrap();
        assert_eq!(&k.tokens[..pinned.len()], &pinned[..]);
        assert!(hole.start < 32 - 8, "{hole:?}");
    }

    /// A hole that ends the document holds the separator known right after
    /// it, however much context there is to keep.
    #[test]
    fn an_ending_hole_is_followed_by_the_separator() {
        let code = "def f(x):\n    return x\n\ndef g(y):\n    return y\n";
        let tok = Tokenizer::train_bpe(&[code.repeat(20)], 300).unwrap();
        let separator = tok.separator_token().unwrap();
        let (k, hole) =
            Known::after_prompt(&tok, ("def f(x):\n", None), 4, 32, HoleEnd::Document).unwrap();
        let end = hole.start + hole.positions;
        assert_eq!((k.tokens[end], k.mask[end]), (separator, true));
        assert!(k.mask[hole.range()].iter().all(|&m| !m) && k.mask[end + 1..].iter().all(|&m| !m));
        // A long prompt is cut from its start to leave the separator room.
        let before = code.repeat(4);
        let (k, hole) = Known::completion(&tok, &before, None, (6, HoleEnd::Document), 24).unwrap();
        let end = hole.start + hole.positions;
        assert!(end < 24, "{end}");
        assert_eq!((k.tokens[end], k.mask[end]), (separator, true));
        assert!(k.mask[..hole.start].iter().all(|&m| m));
        // Open: nothing known after the hole.
        let (k, hole) = Known::completion(&tok, &before, None, (6, HoleEnd::Open), 24).unwrap();
        assert_eq!(hole.start + hole.positions, 24);
        assert!(k.mask[hole.range()].iter().all(|&m| !m));
    }
}
