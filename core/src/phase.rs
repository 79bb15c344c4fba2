//! Starting a training phase from the previous phase's checkpoint
//! (`samnet train --init-from`): every weight is carried over by name and
//! must keep its shape, except the embedding table when the vocabulary
//! changes (character level → BPE between phases 1 and 2). Then each new
//! token's row is copied from the old token with the same text where there
//! is one, and drawn afresh (N(0, 1), as at initialisation) otherwise; the
//! report says how many of each, for the warning the caller must print.

use std::collections::HashMap;

use crate::checkpoint::NamedTensor;
use crate::config::Config;
use crate::model::params::param_specs;
use crate::rng::Rng;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

pub const EMBEDDING: &str = "embedding.weight";

/// What [`init_from`] did with the embedding and the checkpoint's tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitReport {
    /// The tokenizers differ (by any token's text or the vocabulary size).
    pub vocab_changed: bool,
    /// Embedding rows copied from a token of the same text.
    pub carried_rows: usize,
    /// Embedding rows initialised afresh.
    pub new_rows: usize,
    /// Checkpoint tensors the new model has no use for.
    pub unused: Vec<String>,
}

impl InitReport {
    /// The warning to print when the vocabulary changed; None otherwise.
    pub fn warning(&self, origin: &str) -> Option<String> {
        self.vocab_changed.then(|| {
            format!(
                "the tokenizer differs from {origin}'s: {EMBEDDING} re-initialised — {} of {} rows \
                 copied from tokens with the same text, {} drawn afresh; every other weight is kept",
                self.carried_rows,
                self.carried_rows + self.new_rows,
                self.new_rows
            )
        })
    }
}

/// The text each token id stands for, where that text identifies it.
fn token_texts(t: &Tokenizer) -> Vec<Option<&str>> {
    (0..t.vocab_size() as u32)
        .map(|id| Some(t.piece(id)).filter(|p| !p.is_empty() && !p.contains('\u{FFFD}')))
        .collect()
}

/// The initial tensors of a model with `config` (whose vocabulary is
/// `tokenizer`'s) from a checkpoint's `tensors` and `old_tokenizer`; `origin`
/// names the checkpoint in errors, `seed` draws new embedding rows.
pub fn init_from(
    config: &Config,
    tokenizer: &Tokenizer,
    tensors: &[NamedTensor],
    old_tokenizer: &Tokenizer,
    origin: &str,
    seed: u64,
) -> Result<(Vec<NamedTensor>, InitReport)> {
    let by_name: HashMap<&str, &NamedTensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let specs = param_specs(config);
    let (new_texts, old_texts) = (token_texts(tokenizer), token_texts(old_tokenizer));
    let vocab_changed = tokenizer.vocab_size() != old_tokenizer.vocab_size()
        || (0..tokenizer.vocab_size() as u32)
            .any(|id| tokenizer.piece(id) != old_tokenizer.piece(id));
    let mut report = InitReport {
        vocab_changed,
        carried_rows: 0,
        new_rows: 0,
        unused: Vec::new(),
    };
    let mut out = Vec::with_capacity(specs.len());
    for spec in &specs {
        let old = by_name.get(spec.name.as_str()).ok_or_else(|| {
            Error::file(
                origin,
                format!(
                    "has no '{}' (shape {:?}), which this configuration needs: the architectures differ",
                    spec.name, spec.shape
                ),
            )
        })?;
        let width = config.embed_dim();
        if spec.name == EMBEDDING && vocab_changed {
            if old.shape.len() != 2 || old.shape[1] != width {
                return Err(Error::file(
                    origin,
                    format!(
                        "'{EMBEDDING}' has shape {:?}; expected rows of {width}",
                        old.shape
                    ),
                ));
            }
            let old_rows: HashMap<&str, usize> = old_texts
                .iter()
                .enumerate()
                .filter_map(|(id, t)| t.map(|t| (t, id)))
                .filter(|&(_, id)| id < old.shape[0])
                .collect();
            let mut data = spec.initial_values(&mut Rng::new(seed ^ 0x0045_4D42_4544));
            for (id, text) in new_texts.iter().enumerate() {
                match text.and_then(|t| old_rows.get(t)) {
                    Some(&row) => {
                        data[id * width..(id + 1) * width]
                            .copy_from_slice(&old.data[row * width..(row + 1) * width]);
                        report.carried_rows += 1;
                    }
                    None => report.new_rows += 1,
                }
            }
            out.push(NamedTensor {
                name: spec.name.clone(),
                shape: spec.shape.clone(),
                data,
            });
            continue;
        }
        if old.shape != spec.shape {
            return Err(Error::file(
                origin,
                format!(
                    "'{}' has shape {:?} but this configuration needs {:?}: the architectures differ",
                    spec.name, old.shape, spec.shape
                ),
            ));
        }
        out.push((*old).clone());
    }
    let needed: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    report.unused = tensors
        .iter()
        .filter(|t| !needed.contains(&t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn tensors_of(config: &Config, seed: u64) -> Vec<NamedTensor> {
        let mut rng = Rng::new(seed);
        param_specs(config)
            .iter()
            .map(|s| NamedTensor {
                name: s.name.clone(),
                shape: s.shape.clone(),
                data: (0..s.len()).map(|_| rng.normal() as f32).collect(),
            })
            .collect()
    }

    fn tiny(vocab: usize) -> Config {
        let mut c = Config::preset("tiny").unwrap();
        c.model.vocab_size = vocab;
        c
    }

    #[test]
    fn same_tokenizer_carries_every_weight() {
        let tok = Tokenizer::char_level("abc de\n").unwrap();
        let cfg = tiny(tok.vocab_size());
        let old = tensors_of(&cfg, 1);
        let (new, report) = init_from(&cfg, &tok, &old, &tok, "ckpt", 0).unwrap();
        assert_eq!(new, old);
        assert!(!report.vocab_changed && report.unused.is_empty());
        assert_eq!(report.warning("ckpt"), None);
    }

    #[test]
    fn a_new_vocabulary_keeps_rows_of_tokens_with_the_same_text() {
        let old_tok = Tokenizer::char_level("abcxyz").unwrap();
        let new_tok =
            Tokenizer::train_bpe(&["abc abc abd the then them\n".repeat(4)], 270).unwrap();
        let old_cfg = tiny(old_tok.vocab_size());
        let new_cfg = tiny(new_tok.vocab_size());
        let old = tensors_of(&old_cfg, 2);
        let (new, report) = init_from(&new_cfg, &new_tok, &old, &old_tok, "ckpt", 0).unwrap();
        assert!(report.vocab_changed);
        // a, b, c exist in both (x, y, z too: the byte alphabet has every byte).
        assert_eq!(report.carried_rows, 6);
        assert_eq!(report.carried_rows + report.new_rows, new_tok.vocab_size());
        let d = new_cfg.model.d_model;
        let emb = |t: &[NamedTensor]| t.iter().find(|t| t.name == EMBEDDING).unwrap().data.clone();
        let (old_e, new_e) = (emb(&old), emb(&new));
        let id = |t: &Tokenizer, s: &str| {
            (0..t.vocab_size() as u32)
                .find(|&i| t.piece(i) == s)
                .unwrap() as usize
        };
        let (o, n) = (id(&old_tok, "b"), id(&new_tok, "b"));
        assert_eq!(new_e[n * d..(n + 1) * d], old_e[o * d..(o + 1) * d]);
        assert_eq!(new_e.len(), new_tok.vocab_size() * d);
        // Every other tensor is the checkpoint's.
        for (a, b) in new.iter().zip(&old).filter(|(a, _)| a.name != EMBEDDING) {
            assert_eq!(a, b);
        }
        let warning = report.warning("ckpt").unwrap();
        let total = format!("6 of {}", new_tok.vocab_size());
        assert!(
            warning.contains("re-initialised") && warning.contains(&total),
            "{warning}"
        );
    }

    #[test]
    fn a_different_architecture_is_an_error_naming_the_tensor() {
        let tok = Tokenizer::char_level("abc").unwrap();
        let cfg = tiny(tok.vocab_size());
        let mut wider = cfg.clone();
        wider.model.d_model = 48;
        wider.model.n_heads = 6;
        wider.model.head_mix[0].count = 3;
        wider.model.head_mix[1].count = 3;
        let old = tensors_of(&wider, 3);
        let err = init_from(&cfg, &tok, &old, &tok, "run/checkpoint", 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("run/checkpoint: 'embedding.weight' has shape [3, 48] but this configuration needs [3, 32]"),
            "{err}"
        );
        let mut missing = tensors_of(&cfg, 3);
        missing.retain(|t| t.name != "final.out.bias");
        let err = init_from(&cfg, &tok, &missing, &tok, "run/checkpoint", 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no 'final.out.bias'"), "{err}");
        let mut extra = tensors_of(&cfg, 3);
        extra.push(NamedTensor {
            name: "old.head".into(),
            shape: vec![1],
            data: vec![0.0],
        });
        let (_, report) = init_from(&cfg, &tok, &extra, &tok, "c", 0).unwrap();
        assert_eq!(report.unused, vec!["old.head".to_string()]);
    }
}
