//! The whole SamNet forward in f64, composed from the per-op references:
//! the ground truth for the whole-model gradient check (central differences
//! of this loss against the GPU backward).

use std::collections::HashMap;

use super::attention::HeadLayout;
use super::{
    activation, adaln, attention_linear, attention_softmax, attention_topk, diffusion, embedding,
    linear, loss, matmul, norm, random, rope, timestep,
};
use crate::config::{Config, DiffusionKind, HeadKind, NormKind};
use crate::hybrid;
use crate::model::params::MASK_EMBEDDING;
use crate::schedule::NoiseSchedule;

/// One batch: tokens (B·L), timesteps (B), eps (B·L·e), weights (B·L),
/// known positions (B·L; held clean when the config says so; masked and
/// hybrid: the clean positions), and the dropout of training mode (None: evaluation mode).
pub struct Batch<'a> {
    pub tokens: &'a [u32],
    pub timesteps: &'a [u32],
    pub eps: &'a [f64],
    pub weight: &'a [f64],
    pub known: &'a [f64],
    pub dropout: Option<Dropout>,
}

/// Dropout as the graph draws it: rate `p` on both residual branches of
/// every block, masks from the counter hash keyed by `key` (seed, step).
#[derive(Clone, Copy)]
pub struct Dropout {
    pub key: [u32; 2],
    pub p: f64,
}

/// (loss, mse, ce) of the model with parameters `p` (by name) on `batch`.
pub fn loss(cfg: &Config, p: &HashMap<String, Vec<f64>>, batch: &Batch) -> (f64, f64, f64) {
    let m = &cfg.model;
    let (d, vocab, hidden) = (m.d_model, m.vocab_size, cfg.ffn_hidden());
    let e = cfg.embed_dim();
    let (b, rows) = (batch.timesteps.len(), batch.tokens.len());
    let seq = rows / b;
    let eps_n = m.norm_eps as f64;
    let normalise = |x: &[f64]| match m.norm {
        NormKind::Rms => norm::rmsnorm(x, d, eps_n).0,
        NormKind::Layer => norm::layernorm(x, d, eps_n).0,
    };
    let lin = |x: &[f64], name: &str, n: usize, d_in: usize, d_out: usize| {
        linear::forward(
            x,
            &p[&format!("{name}.weight")],
            &p[&format!("{name}.bias")],
            n,
            d_in,
            d_out,
        )
    };
    let kind = cfg.diffusion.kind;
    let is_hybrid = kind == DiffusionKind::Hybrid;
    let signal = if kind.is_discrete() {
        1.0
    } else {
        cfg.diffusion.signal_scale as f64
    };
    let drop = |x: Vec<f64>, layer: usize, site: usize| match batch.dropout {
        None => x,
        Some(Dropout { key, p }) => {
            let stream = crate::model::graph::dropout_stream(layer, site);
            let factors = random::dropout_factors(x.len(), key, stream, p);
            x.iter().zip(factors).map(|(v, f)| v * f).collect()
        }
    };

    let e_hat = norm::rmsnorm(&p["embedding.weight"], e, eps_n).0;
    let z0 = embedding::forward(batch.tokens, &e_hat, e, signal);
    let schedule = NoiseSchedule::new(&cfg.diffusion);
    let hold_known = cfg.diffusion.holds_known_clean();
    let noised = |i: usize| {
        if hold_known && batch.known[i / e] != 0.0 {
            return z0[i];
        }
        let k = batch.timesteps[i / e / seq];
        let (a, s) = if is_hybrid {
            let t = k as f64 / cfg.diffusion.timesteps as f64;
            hybrid::input_coefficients(hybrid::sigma(&cfg.diffusion, t, e))
        } else {
            schedule.coefficients(k as usize)
        };
        a * z0[i] + s * batch.eps[i]
    };
    let x_t: Vec<f64> = if kind == DiffusionKind::Masked {
        let mask = norm::rmsnorm(&p[MASK_EMBEDDING], e, eps_n).0;
        diffusion::mask_input(&z0, &mask, batch.known, e)
    } else {
        (0..rows * e).map(noised).collect()
    };
    let temb: Vec<f64> = batch
        .timesteps
        .iter()
        .flat_map(|&t| timestep::sinusoid(t as f64, m.time_embed_dim, 10_000.0))
        .collect();
    let c = lin(
        &activation::silu(&lin(&temb, "time.fc1", b, m.time_embed_dim, d)),
        "time.fc2",
        b,
        d,
        d,
    );
    let cs = activation::silu(&c);
    let mut h = lin(&x_t, "input", rows, e, d);
    let layout = HeadLayout {
        seq,
        d,
        head_dim: cfg.head_dim(),
    };
    for l in 0..m.n_layers {
        let n = |s: &str| format!("blocks.{l}.{s}");
        let modulation = lin(&cs, &n("adaln"), b, d, 6 * d);
        let m1 = adaln::modulate(&modulation, &normalise(&h), seq, d, 6 * d, 0, d);
        let mut qkv = lin(&m1, &n("attn.qkv"), rows, d, 3 * d);
        let mut att = vec![0.0; rows * d];
        let mut start = 0;
        for g in &m.head_mix {
            let heads = start..start + g.count;
            if m.rope && g.kind.uses_rope() {
                qkv = rope::rotate(&qkv, b, layout, heads.clone(), m.rope_base as f64, 1.0);
            }
            let part = match g.kind {
                HeadKind::Linear => {
                    attention_linear::forward(&qkv, b, layout, heads, m.linear_attn_eps as f64)
                }
                HeadKind::Topk => attention_topk::forward(&qkv, b, layout, heads, m.topk).0,
                HeadKind::Window => {
                    attention_softmax::forward(&qkv, b, layout, heads, Some(m.window / 2))
                }
                HeadKind::Full => attention_softmax::forward(&qkv, b, layout, heads, None),
            };
            att.iter_mut().zip(part).for_each(|(a, x)| *a += x);
            start += g.count;
        }
        let o = drop(lin(&att, &n("attn.out"), rows, d, d), l, 0);
        h = adaln::gate(&modulation, &o, &h, seq, d, 6 * d, 2 * d);
        let m2 = adaln::modulate(&modulation, &normalise(&h), seq, d, 6 * d, 3 * d, 4 * d);
        let f = lin(
            &activation::swiglu(&lin(&m2, &n("ffn.w13"), rows, d, 2 * hidden), hidden),
            &n("ffn.w2"),
            rows,
            hidden,
            d,
        );
        let f = drop(f, l, 1);
        h = adaln::gate(&modulation, &f, &h, seq, d, 6 * d, 5 * d);
    }
    let final_mod = lin(&cs, "final.adaln", b, d, 2 * d);
    let z0_pred = lin(
        &adaln::modulate(&final_mod, &normalise(&h), seq, d, 2 * d, 0, d),
        "final.out",
        rows,
        d,
        e,
    );
    let alpha = cfg.diffusion.logit_scale as f64 / signal;
    let mut logits: Vec<f64> = matmul::matmul(&z0_pred, &e_hat, rows, vocab, e, false, true)
        .iter()
        .map(|x| alpha * x)
        .collect();
    let w = cfg.diffusion.output_prior as f64;
    if kind == DiffusionKind::Gaussian && w > 0.0 {
        // Plaid's output prior, exactly: w · log N(x_t; a·S·Ê_v, s²I) up to
        // a term equal for every v.
        let evidence = matmul::matmul(&x_t, &e_hat, rows, vocab, e, false, true);
        for (i, logit) in logits.iter_mut().enumerate() {
            let (row, v) = (i / vocab, i % vocab);
            let (a, s) = schedule.coefficients(batch.timesteps[row / seq] as usize);
            let norm2: f64 = e_hat[v * e..(v + 1) * e].iter().map(|x| x * x).sum();
            let var = s * s;
            *logit +=
                w * (a * signal / var * evidence[i] - (a * signal).powi(2) * norm2 / (2.0 * var));
        }
    }
    let ce = loss::ce(&logits, batch.tokens, batch.weight, vocab);
    if kind.is_discrete() {
        // Normalised per position, not per weight.
        let ce = ce * batch.weight.iter().sum::<f64>() / rows as f64;
        return (cfg.diffusion.ce_weight as f64 * ce, 0.0, ce);
    }
    let mse = loss::mse(&z0_pred, &z0, batch.weight, e);
    (
        cfg.diffusion.mse_weight as f64 * mse + cfg.diffusion.ce_weight as f64 * ce,
        mse,
        ce,
    )
}
