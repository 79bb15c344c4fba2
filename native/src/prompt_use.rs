//! Whether a model reads its prompt: reference answers (responses, function
//! bodies) scored by their negative log-likelihood bound in nats per token —
//! the ELBO's CE term at each validation timestep — given their own prompts
//! and given the next case's prompt, laid out by [`Windows::prompt_pairs`]
//! so that the prompt is the only difference. A model that answers what it
//! is asked scores its own prompts lower; one that writes the same text
//! whatever it is asked scores both alike.

use samnet_core::data::Windows;
use samnet_core::eval::scored_nats;
use samnet_core::gpu::Gpu;
use samnet_core::model::Model;
use samnet_core::tokenizer::Tokenizer;
use serde_json::json;

use crate::run::halving_to_fit;

/// `{own_prompt, another_tasks_prompt, by_t: [{t, own_prompt,
/// another_tasks_prompt}]}` for the references after their prompts (one
/// each, in order), in windows of `len` positions, `batch` at once; null
/// for fewer than two, which have no other prompt.
pub fn prompt_use(
    (gpu, model, tokenizer): (&Gpu, &Model, &Tokenizer),
    (prompts, references): (&[&str], &[&str]),
    (len, batch): (usize, Option<usize>),
) -> anyhow::Result<serde_json::Value> {
    if references.len() < 2 {
        return Ok(serde_json::Value::Null);
    }
    let [own, another] = Windows::prompt_pairs(tokenizer, (prompts, references), len)?;
    let (own, another) = (
        nll_per_token(gpu, model, &own, (len, batch))?,
        nll_per_token(gpu, model, &another, (len, batch))?,
    );
    let mean = |nll: &[(usize, f64)]| nll.iter().map(|x| x.1).sum::<f64>() / nll.len() as f64;
    let by_t: Vec<_> = own
        .iter()
        .zip(&another)
        .map(|(o, a)| json!({"t": o.0, "own_prompt": o.1, "another_tasks_prompt": a.1}))
        .collect();
    Ok(json!({
        "own_prompt": mean(&own),
        "another_tasks_prompt": mean(&another),
        "by_t": by_t,
    }))
}

/// The bound on each scored token's negative log-likelihood (nats), the
/// ELBO's CE term at each validation timestep, over the windows of `len`
/// positions, each row's corruption drawn from its reference's start on:
/// `batch` windows at once (`--batch`), or as many as the adapter's buffer
/// limits allow.
fn nll_per_token(
    gpu: &Gpu,
    model: &Model,
    windows: &Windows,
    (len, batch): (usize, Option<usize>),
) -> anyhow::Result<Vec<(usize, f64)>> {
    let starts = windows.scored_starts(len);
    let (rows, scored) = (
        windows.tokens.len() / len,
        windows.weight.iter().sum::<f32>(),
    );
    let sums = halving_to_fit(batch.unwrap_or(rows).min(rows), |batch| {
        let mut sums: Vec<(usize, f64)> = Vec::new();
        for start in (0..rows).step_by(batch) {
            let end = (start + batch).min(rows);
            let span = start * len..end * len;
            let part = Windows {
                tokens: windows.tokens[span.clone()].to_vec(),
                weight: windows.weight[span.clone()].to_vec(),
                known: windows.known[span.clone()].to_vec(),
            };
            let origins = &starts[start..end];
            let nats = pollster::block_on(scored_nats(gpu, model, &part, (len, origins)))?;
            sums.resize(nats.len(), (0, 0.0));
            for (sum, (t, nats)) in sums.iter_mut().zip(nats) {
                *sum = (t, sum.1 + nats);
            }
        }
        Ok(sums)
    })?;
    Ok(sums
        .into_iter()
        .map(|(t, sum)| (t, sum / scored.max(1.0) as f64))
        .collect())
}
