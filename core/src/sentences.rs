//! The infilling benchmark on prose: sentences from the validation part of
//! each book (the last tenth of its tokens, never trained on), each with a
//! hole of N characters starting at a word near its middle, scored by how
//! many of the hidden whole words the model puts back exactly.

/// Sentences of `text` (split after `.`, `!` or `?` followed by white
/// space; white space collapsed) with 60–200 characters and at least 8 words.
pub fn candidates(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            if !current.is_empty() && !current.ends_with(' ') {
                current.push(' ');
            }
            continue;
        }
        current.push(c);
        let ends = matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace());
        if ends {
            let sentence = current.trim().to_string();
            let len = sentence.chars().count();
            if (60..=200).contains(&len) && sentence.split(' ').count() >= 8 {
                out.push(sentence);
            }
            current.clear();
        }
    }
    out
}

/// `count` of `sentences`, evenly spaced through them (all if fewer).
pub fn pick(sentences: &[String], count: usize) -> Vec<String> {
    let n = sentences.len();
    if n <= count {
        return sentences.to_vec();
    }
    (0..count)
        .map(|i| sentences[i * n / count].clone())
        .collect()
}

/// A sentence with `hidden` cut out.
#[derive(Clone, Debug, PartialEq)]
pub struct Hole {
    pub before: String,
    pub hidden: String,
    pub after: String,
}

impl Hole {
    /// `chars` characters from the start of the word nearest the middle of
    /// the sentence less the hole (the rest of the sentence if shorter).
    pub fn in_sentence(sentence: &str, chars: usize) -> Hole {
        let text: Vec<char> = sentence.chars().collect();
        let target = text.len().saturating_sub(chars) / 2;
        let starts = (0..text.len()).filter(|&i| i == 0 || text[i - 1] == ' ');
        let start = starts.min_by_key(|&i| i.abs_diff(target)).unwrap_or(0);
        let end = (start + chars).min(text.len());
        let s = |r: std::ops::Range<usize>| text[r].iter().collect::<String>();
        Hole {
            before: s(0..start),
            hidden: s(start..end),
            after: s(end..text.len()),
        }
    }

    /// The hidden words the hole holds whole (a word the hole's end cuts
    /// does not count), and how many of them `filled` has at the same place.
    pub fn words_recovered(&self, filled: &str) -> (usize, usize) {
        let mut hidden: Vec<&str> = self.hidden.split(' ').filter(|w| !w.is_empty()).collect();
        let cut = !self.hidden.ends_with(' ') && self.after.starts_with(|c: char| c != ' ');
        if cut {
            hidden.pop();
        }
        let filled: Vec<&str> = filled.split(' ').filter(|w| !w.is_empty()).collect();
        let right = hidden.iter().zip(&filled).filter(|(h, f)| h == f).count();
        (right, hidden.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cut_at_their_ends_and_filtered_by_length() {
        let text = "Short one. This sentence is long enough to count, having many words in it\nacross a line break! Another: Mr. Smith went to Washington again and again and again today? x";
        let got = candidates(text);
        assert_eq!(
            got,
            ["This sentence is long enough to count, having many words in it across a line break!"],
            "Mr. ends a too-short piece; the last is too short too"
        );
        let many: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(pick(&many, 3), ["0", "3", "6"]);
        assert_eq!(pick(&many[..2], 3), ["0", "1"]);
    }

    #[test]
    fn the_hole_starts_at_a_word_near_the_middle_and_scores_whole_words() {
        let sentence = "It was the best of times, it was the worst of times indeed.";
        let hole = Hole::in_sentence(sentence, 20);
        assert_eq!(
            format!("{}{}{}", hole.before, hole.hidden, hole.after),
            sentence
        );
        assert_eq!(hole.hidden.chars().count(), 20);
        assert!(hole.before.ends_with(' '), "{hole:?}");
        assert_eq!(hole.hidden, "times, it was the wo");
        // "wo" is cut: four whole words.
        assert_eq!(hole.words_recovered("times, it was the wo"), (4, 4));
        assert_eq!(hole.words_recovered("times, it is  the"), (3, 4));
        assert_eq!(hole.words_recovered(""), (0, 4));
    }
}
