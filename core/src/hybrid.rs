//! The CPU side of `diffusion.kind = "hybrid"` (CANDI-style): the noise
//! level of a corrupted position, the corruption of a training batch and
//! the sampler's time grid. The GPU side reuses the Gaussian kernels: a
//! corrupted position's input is `a·Ê[w] + s·eps` with (a, s) =
//! (1, sigma)/sqrt(1 + sigma²) per sequence (unit RMS at every sigma), a
//! clean one is `Ê[w]` itself — `q_sample_held_forward` with the clean
//! positions as the "known" ones.
//!
//! Time is continuous, t ∈ (0, 1], but carried as the integer timestep
//! k = t·T so the step embedding's table serves every kind: training draws
//! t on the grid k/T, sampling steps through k_i = round(T·(N − i)/N).

use crate::config::{DiffusionConfig, SigmaSchedule};
use crate::rng::Rng;

/// The smallest t a training batch draws (MDLM's t_min), so 1/t stays bounded.
pub const T_MIN: f64 = 1e-3;

/// Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation (relative
/// error below 1.2e-9, far inside f32's resolution of sigma).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const P_LOW: f64 = 0.02425;
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The noise std of a corrupted position at time t ∈ [0, 1] for embedding
/// rows of width `width` (increasing in t, capped at sigma_max).
pub fn sigma(diffusion: &DiffusionConfig, t: f64, width: usize) -> f64 {
    let max = diffusion.sigma_max as f64;
    match diffusion.sigma_schedule {
        SigmaSchedule::Linear => max * t.clamp(0.0, 1.0),
        SigmaSchedule::Sqrt => max * t.clamp(0.0, 1.0).sqrt(),
        SigmaSchedule::Rank => {
            // Unrelated unit-RMS rows are sqrt(2·width) apart, so the right
            // row loses to a given wrong one with probability Φ(−sqrt(width/2)/σ).
            let z = inverse_normal_cdf((1.0 - t / 2.0).clamp(0.5, 1.0 - 1e-12));
            if z > 0.0 {
                ((width as f64 / 2.0).sqrt() / z).min(max)
            } else {
                max
            }
        }
    }
}

/// (a, s) of a corrupted position's input `a·Ê[w] + s·eps` at noise std sigma.
pub fn input_coefficients(sigma: f64) -> (f64, f64) {
    let norm = (1.0 + sigma * sigma).sqrt();
    (1.0 / norm, sigma / norm)
}

/// Sequence coefficients (a, s, 0, 0) of a corrupted position's input at timestep k.
pub fn sequence_coef(diffusion: &DiffusionConfig, width: usize, k: u32) -> [f32; 4] {
    let t = k as f64 / diffusion.timesteps as f64;
    let (a, s) = input_coefficients(sigma(diffusion, t, width));
    [a as f32, s as f32, 0.0, 0.0]
}

/// What the CPU writes for one hybrid batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Corruption {
    /// (B) k = t·T per sequence.
    pub timesteps: Vec<u32>,
    /// (B, 4): a, s of the corrupted positions' input, then 0, 0.
    pub coef: Vec<f32>,
    /// (B·L) the loss weight: 1/t at a corrupted position (times the
    /// caller's weight, 0 for a prompt), else 0.
    pub weight: Vec<f32>,
    /// (B·L) 1 at a clean position (an anchor, or a known one), else 0.
    pub clean: Vec<f32>,
}

/// Training timesteps: MDLM's low-discrepancy draw t_b = t_min + (1 − t_min)·((u + b/B) mod 1),
/// rounded up to the grid k/T.
pub fn training_timesteps(timesteps: usize, batch: usize, rng: &mut Rng) -> Vec<u32> {
    let u = rng.uniform();
    (0..batch)
        .map(|b| {
            let t = T_MIN + (1.0 - T_MIN) * ((u + b as f64 / batch as f64) % 1.0);
            ((t * timesteps as f64).ceil() as usize).clamp(1, timesteps) as u32
        })
        .collect()
}

/// Corrupts each position of sequence b with probability t_b = k_b/T, except
/// the `known` ones (held clean and out of the loss). A row's draws are taken
/// in position order from `origins[b]` (0 where `origins` is shorter),
/// wrapping round: text that starts at its row's origin meets the same draws
/// wherever the origin is, in that row of any batch drawn from the same seed
/// and timesteps.
pub fn corrupt(
    diffusion: &DiffusionConfig,
    width: usize,
    timesteps: &[u32],
    (weight, known): (&[f32], &[f32]),
    origins: &[usize],
    rng: &mut Rng,
) -> Corruption {
    let seq = weight.len() / timesteps.len().max(1);
    let t_max = diffusion.timesteps as f64;
    let mut out = Corruption {
        timesteps: timesteps.to_vec(),
        coef: Vec::with_capacity(4 * timesteps.len()),
        weight: vec![0.0; weight.len()],
        clean: vec![1.0; weight.len()],
    };
    for (b, &k) in timesteps.iter().enumerate() {
        let t = k as f64 / t_max;
        out.coef.extend(sequence_coef(diffusion, width, k));
        let origin = origins.get(b).copied().unwrap_or(0);
        for draw in 0..seq {
            let r = b * seq + (origin + draw) % seq;
            // Drawn for every position, so a row's draw does not depend on
            // which positions are known.
            let hit = rng.uniform() < t;
            if hit && known[r] == 0.0 {
                out.clean[r] = 0.0;
                out.weight[r] = weight[r] / t as f32;
            }
        }
    }
    out
}

/// The sampler's N + 1 timesteps from T down to 0: k_i = round(T·(N − i)/N).
pub fn sampling_timesteps(timesteps: usize, steps: usize) -> Vec<usize> {
    let steps = steps.clamp(1, timesteps);
    (0..=steps)
        .map(|i| (timesteps as f64 * (steps - i) as f64 / steps as f64).round() as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn inverse_normal_cdf_matches_known_quantiles() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.999, 3.090_232_306_167_813),
            (0.01, -2.326_347_874_040_841),
            (1.0 - 1e-12, 7.034_486_910_047_836),
        ] {
            let got = inverse_normal_cdf(p);
            assert!(
                (got - z).abs() < 1e-8 * z.abs().max(1.0),
                "Φ⁻¹({p}) = {got}, want {z}"
            );
        }
    }

    #[test]
    fn rank_sigma_is_increasing_capped_and_matches_its_definition() {
        let mut c = Config::preset("tiny").unwrap().diffusion;
        c.sigma_max = 100.0;
        // t = 2(1 − Φ(sqrt(128)/σ)) at σ = 8: Φ(√2) = 0.921_350_396_474_857_5.
        let t = 2.0 * (1.0 - 0.921_350_396_474_857_5);
        assert!((sigma(&c, t, 256) - 8.0).abs() < 1e-6);
        assert_eq!(sigma(&c, 1.0, 256), 100.0);
        let grid: Vec<f64> = (1..=100)
            .map(|i| sigma(&c, i as f64 / 100.0, 256))
            .collect();
        assert!(grid.windows(2).all(|w| w[0] <= w[1]), "{grid:?}");
        // Φ⁻¹(1 − 5e-4) = 3.2905: still identifiable (t/2 of wrong tokens closer).
        assert!((sigma(&c, 1e-3, 256) - 128f64.sqrt() / 3.290_526_731_491_926).abs() < 1e-6);
    }

    #[test]
    fn linear_and_sqrt_sigma() {
        let mut c = Config::preset("tiny").unwrap().diffusion;
        c.sigma_max = 40.0;
        c.sigma_schedule = SigmaSchedule::Sqrt;
        assert!((sigma(&c, 0.25, 256) - 20.0).abs() < 1e-12);
        c.sigma_schedule = SigmaSchedule::Linear;
        assert!((sigma(&c, 0.25, 256) - 10.0).abs() < 1e-12);
        assert_eq!(sigma(&c, 1.5, 256), 40.0);
    }

    #[test]
    fn corruption_rate_weights_and_known_positions() {
        let c = Config::preset("tiny").unwrap().diffusion;
        let (batch, seq) = (4, 2000);
        let timesteps = [100u32, 400, 700, 1000].map(|k| k * c.timesteps as u32 / 1000);
        let mut known = vec![0.0f32; batch * seq];
        known[..10].fill(1.0);
        let weight = vec![1.0f32; batch * seq];
        let out = corrupt(&c, 64, &timesteps, (&weight, &known), &[], &mut Rng::new(7));
        for (b, &k) in timesteps.iter().enumerate() {
            let t = k as f64 / c.timesteps as f64;
            let rows = b * seq..(b + 1) * seq;
            let hits = rows.clone().filter(|&r| out.clean[r] == 0.0).count() as f64;
            let bound = 4.0 * (seq as f64 * t * (1.0 - t)).sqrt() + 10.0;
            assert!(
                (hits - t * seq as f64).abs() <= bound,
                "b {b}: {hits} hits at t {t}"
            );
            for r in rows {
                let want = if out.clean[r] == 0.0 {
                    1.0 / t as f32
                } else {
                    0.0
                };
                assert_eq!(out.weight[r], want);
            }
            let (a, s) = (out.coef[4 * b] as f64, out.coef[4 * b + 1] as f64);
            assert!((a * a + s * s - 1.0).abs() < 1e-6);
        }
        assert!(out.clean[..10].iter().all(|&x| x == 1.0));
    }

    /// The same draws (one seed) for two batches whose second row holds one
    /// text, the second batch three positions to the right with its origin
    /// there: the text meets the same draws in both. The first row, at
    /// origin 0 in both, draws as with no origins given.
    #[test]
    fn text_at_a_rows_origin_meets_the_same_draws() {
        let c = Config::preset("tiny").unwrap().diffusion;
        let (seq, shift) = (40, 3);
        let timesteps = [c.timesteps as u32 / 2; 2];
        let (weight, known) = (vec![1.0f32; 2 * seq], vec![0.0f32; 2 * seq]);
        let draw = |origins: &[usize]| {
            corrupt(
                &c,
                64,
                &timesteps,
                (&weight, &known),
                origins,
                &mut Rng::new(11),
            )
        };
        let (at_0, moved, plain) = (draw(&[0, 0]), draw(&[0, shift]), draw(&[]));
        for p in 0..seq - shift {
            assert_eq!(
                at_0.clean[seq + p],
                moved.clean[seq + p + shift],
                "position {p}"
            );
        }
        assert_eq!(at_0, plain);
        assert_eq!(moved.clean[..seq], plain.clean[..seq], "row 0 is not moved");
        assert_ne!(moved.clean[seq..], plain.clean[seq..], "row 1 is");
    }

    #[test]
    fn training_timesteps_cover_the_range_evenly() {
        let ks = training_timesteps(1000, 8, &mut Rng::new(3));
        let mut sorted = ks.clone();
        sorted.sort();
        // One draw per eighth of (0, 1].
        for (i, k) in sorted.iter().enumerate() {
            assert!(
                (*k as usize) > i * 125 && (*k as usize) <= (i + 1) * 125 + 1,
                "{ks:?}"
            );
        }
    }

    #[test]
    fn sampling_grid_runs_from_t_to_zero() {
        assert_eq!(sampling_timesteps(1000, 4), [1000, 750, 500, 250, 0]);
        assert_eq!(sampling_timesteps(10, 64).len(), 11);
    }
}
