//! The sample-quality figures of the SPEC, computed on decoded samples:
//! valid-word rate, diversity and novelty; and ROUGE-L, phase 4's score of a
//! response against a reference.

use std::collections::HashSet;

/// Every maximal run of ASCII letters (`[A-Za-z]+`) in `text`.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
}

/// The words of a training text, for [`valid_word_rate`].
pub fn vocabulary(text: &str) -> HashSet<String> {
    words(text).map(str::to_string).collect()
}

/// Share of the samples' words that occur (case-sensitively) in `vocabulary`;
/// 0 when the samples hold no word at all. (The SPEC's metric.)
pub fn valid_word_rate(samples: &[String], vocabulary: &HashSet<String>) -> f64 {
    valid_rate_of_words_from(samples, vocabulary, 1)
}

/// [`valid_word_rate`] over the words of at least [`LONG_WORD`] letters: the
/// SPEC's rate counts runs of single letters ("o", "e", "t" occur in the
/// training text) as words, so gibberish made of them scores well; this one
/// does not.
pub fn valid_long_word_rate(samples: &[String], vocabulary: &HashSet<String>) -> f64 {
    valid_rate_of_words_from(samples, vocabulary, LONG_WORD)
}

pub const LONG_WORD: usize = 3;

fn valid_rate_of_words_from(
    samples: &[String],
    vocabulary: &HashSet<String>,
    min_len: usize,
) -> f64 {
    let (mut valid, mut total) = (0usize, 0usize);
    for w in samples
        .iter()
        .flat_map(|s| words(s))
        .filter(|w| w.len() >= min_len)
    {
        total += 1;
        valid += vocabulary.contains(w) as usize;
    }
    if total == 0 {
        0.0
    } else {
        valid as f64 / total as f64
    }
}

fn char_windows(s: &str, n: usize, stride: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < n {
        return Vec::new();
    }
    (0..=chars.len() - n)
        .step_by(stride)
        .map(|i| chars[i..i + n].iter().collect())
        .collect()
}

/// Distinct character 8-grams / all 8-grams over the samples (1 = nothing repeated).
pub fn diversity(samples: &[String]) -> f64 {
    let grams: Vec<String> = samples.iter().flat_map(|s| char_windows(s, 8, 1)).collect();
    if grams.is_empty() {
        return 0.0;
    }
    grams.iter().collect::<HashSet<_>>().len() as f64 / grams.len() as f64
}

/// Share of the samples' 32-character windows (stride 16) that do not occur
/// verbatim in `train` (memorised text is not generation).
pub fn novelty(samples: &[String], train: &str) -> f64 {
    let windows: Vec<String> = samples
        .iter()
        .flat_map(|s| char_windows(s, 32, 16))
        .collect();
    if windows.is_empty() {
        return 0.0;
    }
    windows
        .iter()
        .filter(|w| !train.contains(w.as_str()))
        .count() as f64
        / windows.len() as f64
}

/// ROUGE-L F1 of `candidate` against `reference`: the longest common
/// subsequence of their words (lowercase runs of letters and digits), as
/// precision and recall combined harmonically; 0 when either has no words.
/// Symmetric: swapping the two swaps precision and recall.
pub fn rouge_l(candidate: &str, reference: &str) -> f64 {
    rouge_l_of_words(&rouge_words(candidate), &rouge_words(reference))
}

/// The words ROUGE-L compares: lowercase runs of letters and digits.
fn rouge_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn rouge_l_of_words(c: &[String], r: &[String]) -> f64 {
    if c.is_empty() || r.is_empty() {
        return 0.0;
    }
    // One row of the LCS table at a time.
    let mut row = vec![0usize; r.len() + 1];
    for x in c {
        let mut diagonal = 0;
        for (j, y) in r.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    let lcs = row[r.len()] as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (lcs / c.len() as f64, lcs / r.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

/// Minimum-Bayes-risk selection: the index of the candidate with the highest
/// summed ROUGE-L F1 against the others, the answer most like the rest, found
/// without a reference; the first on a tie. Each candidate is split into
/// words once and, ROUGE-L F1 being symmetric, each pair is scored once.
pub fn most_agreed(candidates: &[&str]) -> usize {
    let words: Vec<Vec<String>> = candidates.iter().map(|c| rouge_words(c)).collect();
    let mut scores = vec![0.0; words.len()];
    for i in 0..words.len() {
        for j in i + 1..words.len() {
            let f1 = rouge_l_of_words(&words[i], &words[j]);
            scores[i] += f1;
            scores[j] += f1;
        }
    }
    (0..scores.len()).fold(0, |best, i| if scores[i] > scores[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_agreed_candidate_is_the_one_most_like_the_others() {
        let candidates = ["a b c", "z y w v", "a b c d", "a b x", "q"];
        assert_eq!(most_agreed(&candidates), 0);
        // Order does not decide it, only a tie does.
        let reversed: Vec<&str> = candidates.iter().rev().copied().collect();
        assert_eq!(reversed[most_agreed(&reversed)], "a b c");
        assert_eq!(most_agreed(&["one", "two", "three"]), 0);
        assert_eq!(most_agreed(&["alone"]), 0);
    }

    #[test]
    fn rouge_l_is_symmetric_so_most_agreed_scores_each_pair_once() {
        let texts = [
            "The cat sat on the mat.",
            "a cat, on a mat",
            "mat cat",
            "",
            "dog",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(rouge_l(a, b), rouge_l(b, a), "{a:?} / {b:?}");
            }
        }
    }

    #[test]
    fn valid_word_rate_on_fixed_strings() {
        let vocab = vocabulary("To be, or not to be: that is the question.\nWhether 'tis nobler");
        let samples = vec![
            "to be or nto be, qqq".to_string(),
            "The question: tis 42 nobler!".to_string(),
        ];
        // Words: to be or nto be qqq | The question tis nobler → valid: to be or be | question tis nobler; "The" ≠ "the".
        assert_eq!(
            words(&samples[1]).collect::<Vec<_>>(),
            ["The", "question", "tis", "nobler"]
        );
        assert!((valid_word_rate(&samples, &vocab) - 7.0 / 10.0).abs() < 1e-12);
        assert_eq!(valid_word_rate(&["123 ...".to_string()], &vocab), 0.0);
        // Of at least 3 letters: nto qqq The question tis nobler → question tis nobler.
        assert!((valid_long_word_rate(&samples, &vocab) - 3.0 / 6.0).abs() < 1e-12);
        let letters = ["o e t o be".to_string()];
        let vocab = vocabulary("o e t be");
        assert_eq!(valid_word_rate(&letters, &vocab), 1.0);
        assert_eq!(valid_long_word_rate(&letters, &vocab), 0.0);
    }

    #[test]
    fn diversity_counts_repeated_eight_grams() {
        assert_eq!(diversity(&["abcdefghij".to_string()]), 1.0);
        // "aaaaaaaaaa" has 3 identical 8-grams.
        assert!((diversity(&["aaaaaaaaaa".to_string()]) - 1.0 / 3.0).abs() < 1e-12);
        // The same sample twice: half the 8-grams are repeats.
        let s = "abcdefghijklmnop".to_string();
        assert!((diversity(&[s.clone(), s]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn novelty_finds_memorised_windows() {
        let train = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
        let copied = train[..48].to_string();
        assert_eq!(novelty(&[copied], train), 0.0);
        let fresh = "zyxwvutsrqponmlkjihgfedcba9876543210ZYXWVUTSRQPO".to_string();
        assert_eq!(novelty(&[fresh], train), 1.0);
    }

    #[test]
    fn rouge_l_is_the_f1_of_the_longest_common_subsequence() {
        assert_eq!(rouge_l("the cat sat", "the cat sat"), 1.0);
        // LCS "the cat" (2 of 3 and 2 of 4 words): F1 = 2·(2/3)(1/2)/(2/3 + 1/2).
        let want = 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5);
        assert!((rouge_l("The cat ran", "the big cat, sat") - want).abs() < 1e-12);
        assert_eq!(rouge_l("", "words"), 0.0);
        assert_eq!(rouge_l("nothing shared", "at all"), 0.0);
        // Order matters: a subsequence, not a bag of words.
        assert!(rouge_l("c b a", "a b c") < rouge_l("a b c", "a b c"));
    }
}
