//! Weight averaging of checkpoints that share one architecture: a model soup
//! (Wortsman et al. 2022) or, with two, a parent and a model fine-tuned from
//! it, WiSE-FT's interpolation. Models fine-tuned from one parent usually
//! sit in one basin of the loss, so their average keeps much of what each
//! learnt where either alone keeps one skill.

use crate::checkpoint::NamedTensor;
use crate::model::params::{match_tensors, param_specs};
use crate::tokenizer::Tokenizer;
use crate::train::Snapshot;
use crate::{Error, Result};

/// One checkpoint of an average, as loaded, and its share.
#[derive(Clone, Copy)]
pub struct Ingredient<'a> {
    /// Where it was read from, for errors.
    pub origin: &'a str,
    pub snapshot: &'a Snapshot,
    pub tokenizer: &'a Tokenizer,
    pub weight: f64,
}

/// The weighted mean of every parameter (weights scaled to sum to 1), with
/// the first checkpoint's config, state and tokenizer and no optimizer state.
/// Every checkpoint must have the first's model section, objective and
/// tokenizer: an average of different architectures or vocabularies is not
/// a model.
pub fn average(ingredients: &[Ingredient]) -> Result<Snapshot> {
    let [first, rest @ ..] = ingredients else {
        return Err(Error::Invalid("averaging needs checkpoints".into()));
    };
    if rest.is_empty() {
        return Err(Error::Invalid(format!(
            "averaging needs at least two checkpoints, got one ({})",
            first.origin
        )));
    }
    let total = checked_total(ingredients)?;
    for other in rest {
        same_model(first, other)?;
    }
    let specs = param_specs(&first.snapshot.config);
    let mut sums: Vec<Vec<f64>> = specs.iter().map(|s| vec![0.0; s.len()]).collect();
    for ingredient in ingredients {
        let values = match_tensors(
            &specs,
            ingredient.snapshot.model.clone(),
            &format!("{}/model.safetensors", ingredient.origin),
        )?;
        let share = ingredient.weight / total;
        for (sum, tensor) in sums.iter_mut().zip(&values) {
            for (s, &x) in sum.iter_mut().zip(tensor) {
                *s += share * f64::from(x);
            }
        }
    }
    let model = specs
        .iter()
        .zip(sums)
        .map(|(spec, sum)| NamedTensor {
            name: spec.name.clone(),
            shape: spec.shape.clone(),
            data: sum.into_iter().map(|x| x as f32).collect(),
        })
        .collect();
    Ok(Snapshot {
        config: first.snapshot.config.clone(),
        model,
        optimizer: None,
        state: first.snapshot.state.clone(),
    })
}

/// The sum of the weights, each finite and ≥ 0, the sum > 0.
fn checked_total(ingredients: &[Ingredient]) -> Result<f64> {
    for i in ingredients {
        if !(i.weight.is_finite() && i.weight >= 0.0) {
            return Err(Error::Invalid(format!(
                "{}: its weight must be a finite number ≥ 0, got {}",
                i.origin, i.weight
            )));
        }
    }
    let total: f64 = ingredients.iter().map(|i| i.weight).sum();
    if total <= 0.0 {
        return Err(Error::Invalid(
            "the weights sum to 0; at least one must be above 0".into(),
        ));
    }
    Ok(total)
}

/// `other` has `first`'s model section, objective and tokenizer.
fn same_model(first: &Ingredient, other: &Ingredient) -> Result<()> {
    let (a, b) = (&first.snapshot.config, &other.snapshot.config);
    let as_json = |m| serde_json::to_value(m).expect("a config serialises");
    let (ma, mb) = (as_json(&a.model), as_json(&b.model));
    if let (Some(ma), Some(mb)) = (ma.as_object(), mb.as_object())
        && let Some((key, value)) = mb.iter().find(|(k, v)| ma.get(*k) != Some(*v))
    {
        let theirs = ma.get(key).map_or("nothing".into(), |v| v.to_string());
        return Err(Error::file(
            format!("{}/config.json", other.origin),
            format!(
                "model.{key} is {value} where {} has {theirs}; averaged checkpoints must share one architecture",
                first.origin
            ),
        ));
    }
    if a.diffusion.kind != b.diffusion.kind {
        return Err(Error::file(
            format!("{}/config.json", other.origin),
            format!(
                "diffusion.kind is {:?} where {} has {:?}; averaged checkpoints must share one objective",
                b.diffusion.kind, first.origin, a.diffusion.kind
            ),
        ));
    }
    if other.tokenizer.to_json()? != first.tokenizer.to_json()? {
        return Err(Error::file(
            format!("{}/tokenizer.json", other.origin),
            format!(
                "differs from {}'s tokenizer; averaged embeddings must index one vocabulary",
                first.origin
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DiffusionKind};
    use crate::rng::Rng;
    use crate::train::TrainState;

    fn snapshot(config: &Config, seed: u64) -> Snapshot {
        let mut rng = Rng::new(seed);
        let model = param_specs(config)
            .iter()
            .map(|s| NamedTensor {
                name: s.name.clone(),
                shape: s.shape.clone(),
                // Zero-initialised AdaLN matrices would make most of the
                // mean trivially 0: every value is drawn.
                data: (0..s.len()).map(|_| rng.normal() as f32).collect(),
            })
            .collect();
        Snapshot {
            config: config.clone(),
            model,
            optimizer: None,
            state: TrainState {
                step: seed as usize,
                ..TrainState::default()
            },
        }
    }

    fn tokenizer(config: &Config) -> Tokenizer {
        let text: String = (0..config.model.vocab_size as u32)
            .filter_map(|i| char::from_u32(0x100 + i))
            .collect();
        Tokenizer::char_level(&text).unwrap()
    }

    fn tiny() -> Config {
        let mut config = Config::preset("tiny").unwrap();
        config.model.vocab_size = 40;
        config
    }

    fn of<'a>(origin: &'a str, s: &'a Snapshot, t: &'a Tokenizer, weight: f64) -> Ingredient<'a> {
        Ingredient {
            origin,
            snapshot: s,
            tokenizer: t,
            weight,
        }
    }

    #[test]
    fn every_parameter_is_the_weighted_mean_and_the_first_gives_the_rest() {
        let config = tiny();
        let (a, b, c) = (
            snapshot(&config, 1),
            snapshot(&config, 2),
            snapshot(&config, 3),
        );
        let t = tokenizer(&config);
        // Weights 1, 2, 1 are shares 0.25, 0.5, 0.25.
        let mean = average(&[
            of("a", &a, &t, 1.0),
            of("b", &b, &t, 2.0),
            of("c", &c, &t, 1.0),
        ])
        .unwrap();
        assert_eq!(mean.config, a.config);
        assert_eq!(mean.state, a.state);
        assert!(mean.optimizer.is_none());
        assert_eq!(mean.model.len(), a.model.len());
        for (i, m) in mean.model.iter().enumerate() {
            assert_eq!((&m.name, &m.shape), (&a.model[i].name, &a.model[i].shape));
            for (j, &x) in m.data.iter().enumerate() {
                let want = 0.25 * f64::from(a.model[i].data[j])
                    + 0.5 * f64::from(b.model[i].data[j])
                    + 0.25 * f64::from(c.model[i].data[j]);
                assert!((f64::from(x) - want).abs() < 1e-6, "{}[{j}]", m.name);
            }
        }
        let alone = average(&[of("a", &a, &t, 1.0), of("b", &b, &t, 0.0)]).unwrap();
        assert_eq!(alone.model, a.model);
    }

    #[test]
    fn checkpoints_that_are_not_one_model_are_named() {
        let config = tiny();
        let a = snapshot(&config, 1);
        let t = tokenizer(&config);
        let fails = |others: &[Ingredient], needles: &[&str]| {
            let mut all = vec![of("a", &a, &t, 1.0)];
            all.extend_from_slice(others);
            let e = average(&all).err().expect("an error").to_string();
            for n in needles {
                assert!(e.contains(n), "{e:?} lacks {n:?}");
            }
        };
        fails(&[], &["at least two", "(a)"]);
        let b = snapshot(&config, 2);
        fails(&[of("b", &b, &t, -1.0)], &["b:", "≥ 0", "-1"]);
        fails(&[of("b", &b, &t, f64::NAN)], &["b:", "NaN"]);
        let zeros = [of("a", &a, &t, 0.0), of("b", &b, &t, 0.0)];
        let e = average(&zeros).err().expect("an error").to_string();
        assert!(e.contains("sum to 0"), "{e}");

        // Same tensor shapes, another head count.
        let mut heads = config.clone();
        heads.model.n_heads *= 2;
        let b = snapshot(&heads, 2);
        fails(
            &[of("b", &b, &t, 1.0)],
            &["b/config.json", "model.n_heads", "where a has"],
        );

        let mut masked = config.clone();
        masked.diffusion.kind = DiffusionKind::Masked;
        let b = snapshot(&masked, 2);
        fails(
            &[of("b", &b, &t, 1.0)],
            &["b/config.json", "diffusion.kind", "objective"],
        );

        let b = snapshot(&config, 2);
        let text: String = (0..config.model.vocab_size as u32)
            .filter_map(|i| char::from_u32(0x200 + i))
            .collect();
        let other = Tokenizer::char_level(&text).unwrap();
        fails(
            &[of("b", &b, &other, 1.0)],
            &["b/tokenizer.json", "vocabulary"],
        );

        let mut b = snapshot(&config, 2);
        b.model[0].shape.push(1);
        fails(
            &[of("b", &b, &t, 1.0)],
            &["b/model.safetensors", &a.model[0].name],
        );
    }
}
