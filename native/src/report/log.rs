//! `metrics.jsonl` as `samnet train` writes it: one JSON object per logged
//! step with its scalars (loss, mse, ce, grad_norm, lr, …) and, at
//! evaluations, an `eval` object (validation loss at each t, word metrics,
//! samples). Fields are read by name and any may be absent: logs of older
//! versions and of other diffusion kinds differ.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One logged step.
#[derive(Debug, Default)]
pub struct Record {
    pub step: f64,
    /// Every numeric field but `step`. A null (how serde writes a
    /// non-finite float) is left out, as is anything not a number.
    pub values: BTreeMap<String, f64>,
    pub eval: Option<Eval>,
}

/// The evaluation logged with a step.
#[derive(Debug, Default)]
pub struct Eval {
    /// Every numeric field (valid_word_rate, diversity, val_ce_mean, …).
    pub values: BTreeMap<String, f64>,
    /// The validation loss at each timestep.
    pub val: Vec<ValLoss>,
    pub samples: Vec<String>,
}

#[derive(Debug)]
pub struct ValLoss {
    pub t: u64,
    pub mse: Option<f64>,
    pub ce: Option<f64>,
}

/// The records of a log.
#[derive(Debug)]
pub struct Log {
    pub records: Vec<Record>,
    /// The last line lacked its newline and did not parse: a run still
    /// writing it, or one killed while it did. It is left out.
    pub torn_last_line: bool,
}

/// Parses the text of a log named `origin` (for errors: "origin:line: …").
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Log> {
    let mut records = Vec::new();
    let mut torn_last_line = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let at = || format!("{origin}:{}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => anyhow::bail!("{}: expected a JSON object", at()),
            Err(_) if !line.ends_with('\n') => {
                torn_last_line = true;
                continue;
            }
            Err(e) => anyhow::bail!("{}: not JSON ({e})", at()),
        };
        let step = object
            .get("step")
            .and_then(Value::as_f64)
            .ok_or_else(|| anyhow::anyhow!("{}: no numeric \"step\"", at()))?;
        records.push(Record {
            step,
            values: numbers(&object, &["step"]),
            eval: object.get("eval").and_then(Value::as_object).map(eval),
        });
    }
    Ok(Log {
        records,
        torn_last_line,
    })
}

/// The numeric fields of `object` but those in `except`.
fn numbers(object: &Map<String, Value>, except: &[&str]) -> BTreeMap<String, f64> {
    object
        .iter()
        .filter(|(key, _)| !except.contains(&key.as_str()))
        .filter_map(|(key, value)| Some((key.clone(), value.as_f64()?)))
        .collect()
}

fn eval(object: &Map<String, Value>) -> Eval {
    let val = object
        .get("val")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some(ValLoss {
                t: v.get("t")?.as_u64()?,
                mse: v.get("mse").and_then(Value::as_f64),
                ce: v.get("ce").and_then(Value::as_f64),
            })
        })
        .collect();
    let samples = object
        .get("samples")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| Some(s.as_str()?.to_string()))
        .collect();
    Eval {
        values: numbers(object, &[]),
        val,
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_evaluations_and_absent_fields() {
        let text = concat!(
            "{\"step\":1,\"loss\":2.5,\"mse\":null,\"skipped\":false}\n",
            "\n",
            "{\"step\":2,\"loss\":2.0,\"eval\":{\"diversity\":0.9,\"val\":[{\"t\":50,\"ce\":0.1},{\"ce\":1}],\"samples\":[\"a<b\"]}}\n",
        );
        let log = parse(text, "m.jsonl").unwrap();
        assert_eq!(log.records.len(), 2);
        assert!(!log.torn_last_line);
        let first = &log.records[0];
        assert_eq!(first.step, 1.0);
        assert_eq!(first.values.keys().collect::<Vec<_>>(), ["loss"]);
        assert!(first.eval.is_none());
        let eval = log.records[1].eval.as_ref().unwrap();
        assert_eq!(eval.values["diversity"], 0.9);
        assert_eq!(eval.val.len(), 1);
        assert_eq!(
            (eval.val[0].t, eval.val[0].ce, eval.val[0].mse),
            (50, Some(0.1), None)
        );
        assert_eq!(eval.samples, ["a<b"]);
    }

    #[test]
    fn a_torn_last_line_is_left_out_and_a_bad_line_named() {
        let log = parse("{\"step\":1}\n{\"step\":2,\"lo", "m.jsonl").unwrap();
        assert_eq!(log.records.len(), 1);
        assert!(log.torn_last_line);
        let error = |text: &str| parse(text, "m.jsonl").unwrap_err().to_string();
        assert!(error("{\"step\":1}\n{\"step\":2,\"lo\n").starts_with("m.jsonl:2: not JSON"));
        assert_eq!(
            error("{\"step\":1}\n[1]\n"),
            "m.jsonl:2: expected a JSON object"
        );
        assert_eq!(error("{\"loss\":1}\n"), "m.jsonl:1: no numeric \"step\"");
    }
}
