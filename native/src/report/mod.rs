//! A training run as one self-contained HTML page: its configuration and
//! state, a chart per logged series (inline SVG), and the samples of each
//! evaluation beside its step. No script, nothing fetched.

mod chart;
mod html;
pub mod log;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use chart::{Chart, Series, figure, format_value};
use html::escape;
use log::{Eval, Record};

/// What the page shows.
pub struct Run<'a> {
    /// The run directory as the user named it.
    pub name: &'a str,
    pub records: &'a [Record],
    /// config.json and state.json, if the run has them.
    pub config: Option<&'a Value>,
    pub state: Option<&'a Value>,
}

/// The per-step series of a training log, in the order charted, with their
/// titles; other numeric fields follow under their own names.
const TRAINING_SERIES: [(&str, &str); 9] = [
    ("loss", "loss"),
    ("mse", "MSE term"),
    ("ce", "CE term"),
    ("grad_norm", "gradient norm"),
    ("lr", "learning rate"),
    ("tokens_per_s", "tokens/s (since the run started)"),
    ("loss_scale", "loss scale"),
    ("skipped_steps", "skipped steps (in all)"),
    ("gpu_memory_bytes", "GPU memory allocated (bytes)"),
];
/// Fields that are not charted: the x axis, and the time (the summary's).
const NOT_CHARTED: [&str; 1] = ["elapsed_s"];
/// The evaluations' word metrics, charted together on [0, 1].
const QUALITY_SERIES: [(&str, &str); 4] = [
    ("valid_word_rate", "valid words"),
    ("valid_long_word_rate", "valid words of ≥ 3 letters"),
    ("diversity", "diversity"),
    ("novelty", "novelty"),
];
/// Evaluation fields shown elsewhere: in the validation charts and the
/// samples' heading.
const EVAL_SHOWN_ELSEWHERE: [&str; 4] =
    ["val_ce_mean", "val_mse_mean", "sample_len", "sample_steps"];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:1em}\
figure{margin:0}figcaption{font-weight:600}.last{font-weight:400;color:#666}\
svg{width:100%;height:auto}svg text{font-size:11px;fill:#555}.grid line{stroke:#e6e6e6}\
.legend span{margin-right:1em;white-space:nowrap}.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em}\
table{border-collapse:collapse;margin:.3em 1.5em .8em 0;vertical-align:top;display:inline-table}\
td,th{padding:.1em .6em;text-align:left;border-bottom:1px solid #eee}\
.eval{display:grid;grid-template-columns:16em 1fr;gap:1em;border-top:1px solid #ddd;padding:.6em 0}\
.samples{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:.5em}\
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;margin:0;padding:.4em;font-size:12px}";

/// The whole page.
pub fn page(run: &Run) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>samnet run {}</title><style>{STYLE}</style></head><body>\n<h1>samnet run <code>{}</code></h1>\n",
        escape(run.name),
        escape(run.name)
    );
    out.push_str(&summary(run));
    // masked and hybrid runs have no MSE term.
    let discrete = run
        .config
        .and_then(|c| c.pointer("/diffusion/kind"))
        .is_some_and(|kind| kind != "gaussian");
    section(
        &mut out,
        "Training",
        &training_charts(run.records, discrete),
    );
    section(&mut out, "Evaluations", &eval_charts(run.records, discrete));
    out.push_str(&samples(run.records));
    out.push_str("</body></html>\n");
    out
}

/// A heading and a grid of the charts that have points (none: nothing).
fn section(out: &mut String, heading: &str, charts: &[Chart]) {
    let figures: Vec<String> = charts.iter().filter_map(figure).collect();
    if figures.is_empty() {
        return;
    }
    let _ = write!(out, "<h2>{heading}</h2>\n<div class=\"charts\">\n");
    out.extend(figures);
    out.push_str("</div>\n");
}

/// An HTML id from a field name.
fn chart_id(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("chart-{slug}")
}

/// One series per chart for each per-step field: the known ones first, then
/// any other numeric field. Hybrid runs log an MSE of 0 (their loss is the
/// CE alone): it is left out, as are skipped steps while there are none.
fn training_charts(records: &[Record], discrete: bool) -> Vec<Chart> {
    let known: Vec<&str> = TRAINING_SERIES
        .iter()
        .map(|(key, _)| *key)
        .chain(NOT_CHARTED)
        .collect();
    let others = other_fields(records.iter().map(|r| &r.values), &known);
    let keys = TRAINING_SERIES
        .into_iter()
        .chain(others.into_iter().map(|k| (k, k)));
    keys.filter_map(|(key, title)| {
        let points: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| Some((r.step, *r.values.get(key)?)))
            .collect();
        let uninformative = match key {
            "mse" => discrete,
            "skipped_steps" => points.iter().all(|&(_, skipped)| skipped == 0.0),
            _ => false,
        };
        (!uninformative).then(|| single(chart_id(key), title, points))
    })
    .collect()
}

/// The fields of `maps` not in `known`, in name order.
fn other_fields<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, f64>>,
    known: &[&str],
) -> BTreeSet<&'a str> {
    maps.flat_map(|m| m.keys().map(String::as_str))
        .filter(|key| !known.contains(key))
        .collect()
}

fn single(id: String, title: &str, points: Vec<(f64, f64)>) -> Chart {
    Chart {
        id,
        title: title.to_string(),
        series: vec![Series {
            name: title.to_string(),
            points,
        }],
        range: None,
    }
}

/// The validation CE (and, but for masked and hybrid runs, MSE) with a line per
/// timestep and their mean; the word metrics together; any other numeric
/// evaluation field on its own.
fn eval_charts(records: &[Record], discrete: bool) -> Vec<Chart> {
    let evals: Vec<(f64, &Eval)> = records
        .iter()
        .filter_map(|r| Some((r.step, r.eval.as_ref()?)))
        .collect();
    let field = |key: &str| -> Vec<(f64, f64)> {
        evals
            .iter()
            .filter_map(|(step, e)| Some((*step, *e.values.get(key)?)))
            .collect()
    };
    let mut charts = vec![validation_chart(
        &evals,
        "ce",
        "validation CE at each t",
        field("val_ce_mean"),
    )];
    if !discrete {
        charts.push(validation_chart(
            &evals,
            "mse",
            "validation MSE at each t",
            field("val_mse_mean"),
        ));
    }
    charts.push(Chart {
        id: "chart-sample-quality".into(),
        title: "sample quality".into(),
        series: QUALITY_SERIES
            .iter()
            .map(|(key, name)| Series {
                name: name.to_string(),
                points: field(key),
            })
            .filter(|s| !s.points.is_empty())
            .collect(),
        range: Some((0.0, 1.0)),
    });
    let known: Vec<&str> = QUALITY_SERIES
        .iter()
        .map(|(key, _)| *key)
        .chain(EVAL_SHOWN_ELSEWHERE)
        .collect();
    let others = other_fields(evals.iter().map(|(_, e)| &e.values), &known);
    charts.extend(
        others
            .into_iter()
            .map(|k| single(chart_id(&format!("eval-{k}")), k, field(k))),
    );
    charts
}

/// The validation `term` ("ce" or "mse") over steps, a series per t, and
/// `mean` (the logged mean over the t) last.
fn validation_chart(
    evals: &[(f64, &Eval)],
    term: &str,
    title: &str,
    mean: Vec<(f64, f64)>,
) -> Chart {
    let mut by_t: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for (step, eval) in evals {
        for v in &eval.val {
            let value = if term == "ce" { v.ce } else { v.mse };
            if let Some(value) = value {
                by_t.entry(v.t).or_default().push((*step, value));
            }
        }
    }
    let mut series: Vec<Series> = by_t
        .into_iter()
        .map(|(t, points)| Series {
            name: format!("t = {t}"),
            points,
        })
        .collect();
    if !mean.is_empty() {
        series.push(Series {
            name: "mean".into(),
            points: mean,
        });
    }
    Chart {
        id: format!("chart-val-{term}"),
        title: title.into(),
        series,
        range: None,
    }
}

/// The run at a glance, then state.json and each section of config.json as
/// a table.
fn summary(run: &Run) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let records = run.records;
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        rows.push((
            "logged steps".into(),
            format!(
                "{} lines, steps {} to {}",
                records.len(),
                first.step,
                last.step
            ),
        ));
        let latest = |key: &str| {
            records
                .iter()
                .rev()
                .find_map(|r| r.values.get(key).copied())
        };
        if let Some(loss) = latest("loss") {
            rows.push(("last loss".into(), format_value(loss)));
        }
        if let Some(elapsed) = latest("elapsed_s") {
            rows.push((
                "time (since the last start)".into(),
                format!("{elapsed:.0} s"),
            ));
        }
        let peak = records
            .iter()
            .filter_map(|r| r.values.get("gpu_memory_bytes").copied())
            .reduce(f64::max);
        if let Some(peak) = peak {
            rows.push((
                "peak GPU memory".into(),
                format!("{:.2} GiB", peak / (1u64 << 30) as f64),
            ));
        }
    }
    let evaluations = records.iter().filter(|r| r.eval.is_some()).count();
    rows.push(("evaluations".into(), evaluations.to_string()));
    let mut out = String::from("<h2>Run</h2>\n");
    out.push_str(&table("log", &rows));
    if let Some(state) = run.state {
        out.push_str(&table("state.json", &fields(state)));
    }
    if let Some(Value::Object(config)) = run.config {
        for (section, value) in config {
            out.push_str(&table(&format!("config: {section}"), &fields(value)));
        }
    }
    out.push('\n');
    out
}

/// The fields of a JSON object as (name, value) rows; strings bare, the
/// rest as compact JSON.
fn fields(value: &Value) -> Vec<(String, String)> {
    let Value::Object(object) = value else {
        return vec![(String::new(), value.to_string())];
    };
    object
        .iter()
        .map(|(k, v)| {
            let shown = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), shown)
        })
        .collect()
}

fn table(caption: &str, rows: &[(String, String)]) -> String {
    let mut out = String::from("<table>");
    if !caption.is_empty() {
        let _ = write!(out, "<caption>{}</caption>", escape(caption));
    }
    for (name, value) in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    out.push_str("</table>");
    out
}

/// Each evaluation's samples beside its step and figures.
fn samples(records: &[Record]) -> String {
    let mut out = String::new();
    for record in records {
        let Some(eval) = &record.eval else { continue };
        if eval.samples.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<section class=\"eval\" id=\"samples-step-{}\"><div><h3>step {}</h3>",
            record.step, record.step
        );
        let (len, steps) = (
            eval.values.get("sample_len"),
            eval.values.get("sample_steps"),
        );
        let mut shape = format!("{} samples", eval.samples.len());
        if let Some(len) = len {
            let _ = write!(shape, " of {len} positions");
        }
        if let Some(steps) = steps {
            let _ = write!(shape, " in {steps} steps");
        }
        let _ = write!(out, "<p>{}</p>", escape(&shape));
        let figures: Vec<(String, String)> = QUALITY_SERIES
            .iter()
            .filter_map(|(key, name)| {
                Some((name.to_string(), format!("{:.3}", eval.values.get(*key)?)))
            })
            .collect();
        out.push_str(&table("", &figures));
        out.push_str("</div><div class=\"samples\">");
        for sample in &eval.samples {
            let _ = write!(out, "<pre>{}</pre>", escape(sample));
        }
        out.push_str("</div></section>\n");
    }
    if out.is_empty() {
        return out;
    }
    format!("<h2>Samples</h2>\n{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: f64, values: &[(&str, f64)], eval: Option<Eval>) -> Record {
        Record {
            step,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            eval,
        }
    }

    fn run_page(records: &[Record], config: Option<&Value>) -> String {
        page(&Run {
            name: "runs/<x>",
            records,
            config,
            state: None,
        })
    }

    #[test]
    fn a_chart_per_logged_series_and_the_samples_escaped() {
        let eval = Eval {
            values: [
                ("diversity".to_string(), 0.5),
                ("val_ce_mean".to_string(), 2.0),
            ]
            .into(),
            val: vec![log::ValLoss {
                t: 50,
                mse: Some(0.1),
                ce: Some(1.0),
            }],
            samples: vec!["ROMEO: <b>&".into()],
        };
        let records = [
            record(
                1.0,
                &[
                    ("loss", 3.0),
                    ("mse", 0.5),
                    ("elapsed_s", 1.0),
                    ("skipped_steps", 0.0),
                ],
                None,
            ),
            record(
                2.0,
                &[("loss", 2.0), ("mse", 0.4), ("extra", 7.0)],
                Some(eval),
            ),
        ];
        let html = run_page(&records, None);
        for id in [
            "chart-loss",
            "chart-mse",
            "chart-extra",
            "chart-val-ce",
            "chart-val-mse",
            "chart-sample-quality",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
        }
        assert_eq!(html.matches("<svg").count(), 6);
        assert!(!html.contains("chart-elapsed_s") && !html.contains("chart-skipped_steps"));
        assert!(html.contains("<pre>ROMEO: &lt;b&gt;&amp;</pre>"));
        assert!(html.contains("samnet run <code>runs/&lt;x&gt;</code>"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn a_hybrid_run_has_no_mse_charts() {
        let eval = Eval {
            val: vec![log::ValLoss {
                t: 50,
                mse: Some(0.0),
                ce: Some(1.0),
            }],
            ..Eval::default()
        };
        let records = [record(
            5.0,
            &[("loss", 2.0), ("mse", 0.0), ("ce", 2.0)],
            Some(eval),
        )];
        let config = serde_json::json!({"diffusion": {"kind": "hybrid"}});
        let html = run_page(&records, Some(&config));
        assert!(html.contains("id=\"chart-ce\"") && html.contains("id=\"chart-val-ce\""));
        assert!(!html.contains("chart-mse") && !html.contains("chart-val-mse"));
        assert!(
            html.contains("<caption>config: diffusion</caption><tr><th>kind</th><td>hybrid</td>")
        );
    }
}
