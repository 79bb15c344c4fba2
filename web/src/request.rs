//! The options of `SamNet.sample`, checked and turned into known positions.

use samnet_core::conditioning::{
    CursorHole, DEFAULT_HOLE, HoleEnd, Known, MAX_SAMPLE_LEN, enclosing_definition, parse_template,
};
use samnet_core::config::{Config, RevealOrder};
use samnet_core::sample::{SampleOptions, SampleOverrides};
use samnet_core::tokenizer::Tokenizer;
use samnet_core::{Error, Result};
use serde::Deserialize;

/// `sample()` options, all optional:
/// - `length`: positions (default 256, or the infill template's length);
/// - `steps`: denoising steps (default: the checkpoint's);
/// - `seed`: an integer (default 0); the same seed gives `samnet sample`'s text;
/// - `prompt`: text held known from position 0;
/// - `mask`: with `prompt`, which of the prompt's positions are held (1/true);
/// - `infill`: a template with holes, `[___]`, `[___:N]` or `▢` per position;
/// - `cursor`: `{before, after, hole, ends}`, code completion as `samnet complete`
///   does it: a hole of `hole` positions between the text before and after
///   the cursor, as much of each kept as fits in `length` (default: the
///   model's max_seq_len); the result's `filled` is the hole's text; with
///   `ends` (as `complete --ends`), the text ends with the hole: the
///   tokenizer's separator is known right after it, so the hole is filled
///   with a body that ends rather than one cut where the hole stops (only
///   where nothing but whitespace follows the cursor);
/// - `clamp`: snap each estimate to the nearest embedding (default: the checkpoint's);
/// - `soft_x0`: move each step with the expected embedding under the logits
///   instead (default: the checkpoint's);
/// - `temperature`: 0 decodes each position's most likely token, above 0 draws
///   from softmax(logits / temperature) (default: the checkpoint's);
/// - `top_p`: with a temperature above 0, draws only from the smallest set of
///   likeliest tokens holding this much probability (default 1: every token);
/// - `eta`: stochasticity of the denoising steps, 0 (DDIM) to 1 (DDPM-like)
///   (default: the checkpoint's);
/// - `order`: masked and hybrid checkpoints, which positions each step freezes:
///   "random", "confident" (most confident first), "left" (left to right) or
///   "blocks" (most confident first within blocks of 32 positions counted
///   from the first hidden one, the blocks left to right; default: the
///   checkpoint's);
/// - `guidance`: masked and hybrid checkpoints, classifier-free guidance w ≥ 0:
///   each step also runs the model with the known text hidden and decodes
///   (1 + w)·logits − w·those logits, so the text leans on what is known
///   (default 0: one pass per step).
///
/// `clamp`, `soft_x0` and `eta` apply to gaussian checkpoints, `order` and
/// `guidance` to masked and hybrid ones.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    pub length: Option<usize>,
    pub steps: Option<usize>,
    pub seed: Option<u64>,
    pub prompt: Option<String>,
    pub mask: Option<Vec<Held>>,
    pub infill: Option<String>,
    pub cursor: Option<Cursor>,
    pub clamp: Option<bool>,
    pub soft_x0: Option<bool>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub eta: Option<f32>,
    pub order: Option<RevealOrder>,
    pub guidance: Option<f32>,
}

/// Where `cursor` puts the hole: the text on either side and its size;
/// `ends`: the text ends with the hole (the separator known after it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub before: String,
    #[serde(default)]
    pub after: String,
    pub hole: usize,
    #[serde(default)]
    pub ends: bool,
}

/// One entry of `mask`: `true`/`false` or `1`/`0`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(untagged)]
pub enum Held {
    Flag(bool),
    Number(u8),
}

impl Held {
    fn is_held(self) -> bool {
        match self {
            Held::Flag(b) => b,
            Held::Number(n) => n != 0,
        }
    }
}

/// A checked request.
#[derive(Debug)]
pub struct Plan {
    pub options: SampleOptions,
    pub known: Known,
    /// `cursor` requests: where the hole is.
    pub hole: Option<CursorHole>,
}

impl SampleRequest {
    pub fn plan(&self, config: &Config, tokenizer: &Tokenizer) -> Result<Plan> {
        let invalid = |m: String| Err(Error::Invalid(m));
        if let Some(len) = self.length
            && (len == 0 || len > MAX_SAMPLE_LEN)
        {
            return invalid(format!("length must be 1..={MAX_SAMPLE_LEN}, got {len}"));
        }
        let options = SampleOverrides {
            steps: self.steps,
            seed: self.seed,
            clamp: self.clamp,
            soft_x0: self.soft_x0,
            temperature: self.temperature,
            top_p: self.top_p,
            eta: self.eta,
            order: self.order,
            guidance: self.guidance,
        }
        .resolve(&config.diffusion)
        .map_err(|e| Error::Invalid(format!("{} {}", e.option, e.reason)))?;
        let mut hole = None;
        let known = match (&self.prompt, &self.infill, &self.cursor) {
            (None, None, Some(cursor)) => {
                if self.mask.is_some() {
                    return invalid("mask goes with prompt; cursor marks its own hole".into());
                }
                let len = self.length.unwrap_or(config.model.max_seq_len);
                let pinned = enclosing_definition(&cursor.before, &cursor.after);
                let (known, at) = if cursor.ends {
                    if !cursor.after.trim().is_empty() {
                        return invalid(
                            "ends completes at the end of the text, and text follows the cursor"
                                .into(),
                        );
                    }
                    let end = (cursor.hole, HoleEnd::Document);
                    Known::completion(tokenizer, &cursor.before, pinned, end, len)?
                } else {
                    Known::around_cursor(
                        tokenizer,
                        (&cursor.before, &cursor.after),
                        pinned,
                        cursor.hole,
                        len,
                    )?
                };
                hole = Some(at);
                known
            }
            (None, Some(template), None) => {
                if self.mask.is_some() {
                    return invalid("mask goes with prompt; infill marks its own holes".into());
                }
                let segments = parse_template(template, DEFAULT_HOLE)?;
                Known::infill(tokenizer, &segments, self.length)?
            }
            (Some(prompt), None, None) => {
                let len = self.length.unwrap_or(256);
                let mut known =
                    Known::prompt_within(tokenizer, prompt, len, config.model.max_seq_len)?;
                if let Some(mask) = &self.mask {
                    let held = known.mask.iter().filter(|&&m| m).count();
                    if mask.len() > held {
                        return invalid(format!(
                            "mask has {} entries but the prompt is {held} tokens",
                            mask.len()
                        ));
                    }
                    for (m, &keep) in known.mask.iter_mut().zip(mask) {
                        *m = keep.is_held();
                    }
                }
                known
            }
            (None, None, None) => {
                if self.mask.is_some() {
                    return invalid("mask needs a prompt: the text of the held positions".into());
                }
                Known::none(self.length.unwrap_or(256))
            }
            _ => return invalid("give one of prompt, infill and cursor, not several".into()),
        };
        if known.tokens.len() > MAX_SAMPLE_LEN {
            return invalid(format!(
                "the template takes {} positions, more than {MAX_SAMPLE_LEN}",
                known.tokens.len()
            ));
        }
        Ok(Plan {
            options,
            known,
            hole,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Config, Tokenizer) {
        let config = Config::preset("tiny").unwrap();
        (config, Tokenizer::char_level("abcdefgh ").unwrap())
    }

    #[test]
    fn requests_become_known_positions() {
        let (config, tok) = setup();
        let plan = SampleRequest::default().plan(&config, &tok).unwrap();
        assert_eq!(plan.known.tokens.len(), 256);
        assert!(!plan.known.mask.iter().any(|&m| m));
        assert_eq!(plan.options.steps, config.diffusion.sample_steps);

        let req = SampleRequest {
            prompt: Some("abc".into()),
            mask: Some(vec![Held::Number(1), Held::Flag(false), Held::Flag(true)]),
            length: Some(6),
            ..Default::default()
        };
        let plan = req.plan(&config, &tok).unwrap();
        assert_eq!(plan.known.mask, [true, false, true, false, false, false]);

        let req = SampleRequest {
            infill: Some("ab▢▢c".into()),
            ..Default::default()
        };
        let plan = req.plan(&config, &tok).unwrap();
        assert_eq!(plan.known.mask, [true, true, false, false, true]);
        assert_eq!(plan.hole, None);

        let req = SampleRequest {
            cursor: Some(Cursor {
                before: "abc".into(),
                after: "de".into(),
                hole: 2,
                ends: false,
            }),
            length: Some(8),
            ..Default::default()
        };
        let plan = req.plan(&config, &tok).unwrap();
        assert_eq!(
            plan.known.mask,
            [true, true, true, false, false, true, true, false]
        );
        assert_eq!(plan.hole.map(|h| h.range()), Some(3..5));
        let whole_window = SampleRequest {
            length: None,
            ..req
        };
        let plan = whole_window.plan(&config, &tok).unwrap();
        assert_eq!(plan.known.tokens.len(), config.model.max_seq_len);
    }

    /// As `samnet complete`: where the code before the cursor is cut, the
    /// function around it still opens the window.
    #[test]
    fn a_cut_cursor_window_opens_with_its_definition() {
        let config = Config::preset("tiny").unwrap();
        let before = format!("def f(ab):\n{}    ", "    a = b\n".repeat(6));
        let tok = Tokenizer::char_level(&before).unwrap();
        let req = SampleRequest {
            cursor: Some(Cursor {
                before,
                after: "\n".into(),
                hole: 4,
                ends: false,
            }),
            length: Some(40),
            ..Default::default()
        };
        let plan = req.plan(&config, &tok).unwrap();
        let start = plan.hole.unwrap().start;
        let window = tok.decode(&plan.known.tokens[..start]).unwrap();
        assert!(window.starts_with("def f(ab):\n    a = b"), "{window:?}");
    }

    /// As `samnet complete --ends`: the text ends with the hole, the
    /// tokenizer's separator known right after it; text after the cursor
    /// is refused, whitespace is not.
    #[test]
    fn an_ending_cursor_holds_the_separator_after_its_hole() {
        let config = Config::preset("tiny").unwrap();
        let code = "def f(x):\n    return x\n\ndef g(y):\n    return y\n";
        let tok = Tokenizer::train_bpe(&[code.repeat(20)], 300).unwrap();
        let separator = tok.separator_token().unwrap();
        let before = "def f(x):\n    ";
        let request = |after: &str, ends| SampleRequest {
            cursor: Some(Cursor {
                before: before.into(),
                after: after.into(),
                hole: 6,
                ends,
            }),
            length: Some(24),
            ..Default::default()
        };
        let plan = request(" \n\n", true).plan(&config, &tok).unwrap();
        let hole = plan.hole.unwrap();
        // The cursor line's whitespace joins the hole, with positions of its own.
        let start = tok.encode(before.trim_end()).unwrap().len();
        let whitespace = tok.encode("\n    ").unwrap().len();
        assert_eq!(hole.range(), start..start + whitespace + 6);
        let end = hole.range().end;
        assert_eq!(
            (plan.known.tokens[end], plan.known.mask[end]),
            (separator, true)
        );
        assert!(plan.known.mask[..start].iter().all(|&m| m));
        assert!(plan.known.mask[hole.range()].iter().all(|&m| !m));
        assert!(plan.known.mask[end + 1..].iter().all(|&m| !m));
        // Without ends, nothing is known after the hole.
        let plan = request("", false).plan(&config, &tok).unwrap();
        assert!(
            plan.known.mask[plan.hole.unwrap().range().end..]
                .iter()
                .all(|&m| !m)
        );
        let message = request("\n    return x\n", true)
            .plan(&config, &tok)
            .unwrap_err()
            .to_string();
        assert!(message.contains("text follows the cursor"), "{message}");
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let (config, tok) = setup();
        let err = |r: SampleRequest| r.plan(&config, &tok).unwrap_err().to_string();
        assert!(
            err(SampleRequest {
                steps: Some(0),
                ..Default::default()
            })
            .contains("steps must be")
        );
        assert!(
            err(SampleRequest {
                length: Some(MAX_SAMPLE_LEN + 1),
                ..Default::default()
            })
            .contains("length must be")
        );
        assert!(
            err(SampleRequest {
                prompt: Some("a".into()),
                infill: Some("▢".into()),
                ..Default::default()
            })
            .contains("not several")
        );
        let cursor = |hole| {
            Some(Cursor {
                before: "ab".into(),
                after: String::new(),
                hole,
                ends: false,
            })
        };
        assert!(
            err(SampleRequest {
                cursor: cursor(2),
                infill: Some("▢".into()),
                ..Default::default()
            })
            .contains("not several")
        );
        assert!(
            err(SampleRequest {
                cursor: cursor(0),
                ..Default::default()
            })
            .contains("the hole must be")
        );
        assert!(
            err(SampleRequest {
                prompt: Some("ab".into()),
                mask: Some(vec![Held::Number(1); 3]),
                ..Default::default()
            })
            .contains("mask has 3")
        );
        assert!(
            err(SampleRequest {
                temperature: Some(-0.5),
                ..Default::default()
            })
            .contains("temperature must be")
        );
        assert!(
            err(SampleRequest {
                top_p: Some(1.5),
                ..Default::default()
            })
            .contains("top_p must be in (0, 1]")
        );
        assert!(
            err(SampleRequest {
                temperature: Some(0.0),
                top_p: Some(0.9),
                ..Default::default()
            })
            .contains("temperature 0 takes the most likely one")
        );
        assert!(
            err(SampleRequest {
                eta: Some(1.5),
                ..Default::default()
            })
            .contains("eta must be in [0, 1], got 1.5")
        );
        assert!(
            err(SampleRequest {
                guidance: Some(-1.0),
                ..Default::default()
            })
            .contains("guidance must be a number ≥ 0, got -1")
        );
        assert!(
            err(SampleRequest {
                prompt: Some("xyz".into()),
                ..Default::default()
            })
            .contains("not in the tokenizer")
        );
        assert!(
            err(SampleRequest {
                order: Some(RevealOrder::Confident),
                ..Default::default()
            })
            .contains("order does not apply to this checkpoint (diffusion.kind \"gaussian\")")
        );
        let mut hybrid = config.clone();
        (hybrid.diffusion.kind, hybrid.diffusion.clamp) =
            (samnet_core::config::DiffusionKind::Hybrid, false);
        let eta = SampleRequest {
            eta: Some(0.5),
            ..Default::default()
        };
        let message = eta.plan(&hybrid, &tok).unwrap_err().to_string();
        assert!(message.contains("eta does not apply"), "{message}");
        let order = SampleRequest {
            order: Some(RevealOrder::Confident),
            ..Default::default()
        };
        assert_eq!(
            order.plan(&hybrid, &tok).unwrap().options.order,
            RevealOrder::Confident
        );
    }
}
