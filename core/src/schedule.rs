//! Noise schedules of the diffusion process and the learning-rate schedule.

use crate::config::{DiffusionConfig, ScheduleKind, TrainConfig};

/// ab(t) is kept inside [AB_MIN, AB_MAX]: never pure noise (so x0 stays
/// identifiable in principle) and never noise-free (so DDIM's s_t > 0).
pub const AB_MIN: f64 = 1e-5;
pub const AB_MAX: f64 = 1.0 - 1e-5;

/// ᾱ_t for t in 1..=T (index 0 is t = 0, ᾱ = AB_MAX).
#[derive(Clone, Debug)]
pub struct NoiseSchedule {
    alpha_bar: Vec<f64>,
}

impl NoiseSchedule {
    pub fn new(config: &DiffusionConfig) -> Self {
        let t_max = config.timesteps as f64;
        let alpha_bar = (0..=config.timesteps)
            .map(|t| {
                let u = t as f64 / t_max;
                let ab = match config.schedule {
                    ScheduleKind::Cosine => {
                        const S: f64 = 0.008;
                        let f = |u: f64| {
                            ((u + S) / (1.0 + S) * std::f64::consts::FRAC_PI_2)
                                .cos()
                                .powi(2)
                        };
                        f(u) / f(0.0)
                    }
                    ScheduleKind::Sqrt => 1.0 - (u + 1e-4).sqrt(),
                };
                ab.clamp(AB_MIN, AB_MAX)
            })
            .collect();
        NoiseSchedule { alpha_bar }
    }

    pub fn timesteps(&self) -> usize {
        self.alpha_bar.len() - 1
    }

    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alpha_bar[t]
    }

    /// (a_t, s_t) = (sqrt(ab_t), sqrt(1 − ab_t)): x_t = a_t · z0 + s_t · eps,
    /// where z0 = signal_scale · x0 is what the model predicts.
    pub fn coefficients(&self, t: usize) -> (f64, f64) {
        let ab = self.alpha_bar[t];
        (ab.sqrt(), (1.0 - ab).sqrt())
    }

    /// The update from timestep `t` to `next` (0: the clean end) with DDIM's
    /// stochasticity `eta` (Song et al. 2021, eq. 16): 0 is deterministic
    /// DDIM, 1 draws fresh noise as DDPM's ancestral step does.
    pub fn step(&self, t: usize, next: usize, eta: f64) -> DenoiseStep {
        let (ab, ab_next) = (
            self.alpha_bar[t],
            if next == 0 { 1.0 } else { self.alpha_bar[next] },
        );
        let sigma = eta
            * ((1.0 - ab_next) / (1.0 - ab) * (1.0 - ab / ab_next))
                .max(0.0)
                .sqrt();
        let noise_next = 1.0 - ab_next;
        DenoiseStep {
            a_t: ab.sqrt(),
            s_t: (1.0 - ab).sqrt(),
            a_next: ab_next.sqrt(),
            eps_next: (noise_next - sigma * sigma).max(0.0).sqrt(),
            sigma: sigma.min(noise_next.sqrt()),
        }
    }

    /// `steps` timesteps from T down to 1, evenly spaced (rounded), distinct.
    pub fn sampling_timesteps(&self, steps: usize) -> Vec<usize> {
        let t_max = self.timesteps();
        let steps = steps.clamp(1, t_max);
        if steps == 1 {
            return vec![t_max];
        }
        (0..steps)
            .map(|i| {
                let u = i as f64 / (steps - 1) as f64;
                (t_max as f64 - u * (t_max - 1) as f64).round() as usize
            })
            .collect()
    }
}

/// x_next = a_next·x0_hat + eps_next·eps_hat + sigma·z, with
/// eps_hat = (x_t − a_t·x0_hat)/s_t and z fresh standard noise; the noise
/// variance of x_next is eps_next² + sigma² = 1 − ᾱ_next whatever eta is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenoiseStep {
    pub a_t: f64,
    pub s_t: f64,
    pub a_next: f64,
    pub eps_next: f64,
    pub sigma: f64,
}

/// Linear warmup to `lr`, then cosine decay to `lr · min_lr_ratio` at the last step.
pub fn learning_rate(train: &TrainConfig, step: usize) -> f64 {
    let lr = train.lr as f64;
    let total = train.steps.max(1);
    let warmup = (train.warmup_ratio as f64 * total as f64).round() as usize;
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    let min_lr = lr * train.min_lr_ratio as f64;
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn cosine_schedule_is_decreasing_and_clamped() {
        let c = Config::preset("phase1").unwrap();
        let s = NoiseSchedule::new(&c.diffusion);
        assert_eq!(s.timesteps(), 1000);
        assert!((1..=1000).all(|t| s.alpha_bar(t) <= s.alpha_bar(t - 1)));
        assert_eq!(s.alpha_bar(1000), AB_MIN);
        assert!(s.alpha_bar(1) > 0.999);
        let (a, n) = s.coefficients(500);
        assert!((a * a + n * n - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sampling_timesteps_span_t_to_one() {
        let c = Config::preset("phase1").unwrap();
        let s = NoiseSchedule::new(&c.diffusion);
        let ts = s.sampling_timesteps(64);
        assert_eq!((ts.len(), ts[0], ts[63]), (64, 1000, 1));
        assert!(ts.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn eta_moves_noise_from_the_estimate_to_fresh_draws() {
        let c = Config::preset("phase1").unwrap();
        let s = NoiseSchedule::new(&c.diffusion);
        for (t, next) in [(1000, 984), (500, 484), (17, 1), (1, 0)] {
            let ab_next = if next == 0 { 1.0 } else { s.alpha_bar(next) };
            let ddim = s.step(t, next, 0.0);
            let (a_next, s_next) = if next == 0 {
                (1.0, 0.0)
            } else {
                s.coefficients(next)
            };
            assert_eq!(
                (ddim.sigma, ddim.a_next, ddim.eps_next),
                (0.0, a_next, s_next)
            );
            // eta 1: sigma² is DDPM's posterior variance β̃ = (1−ᾱ')/(1−ᾱ)·β.
            let ddpm = s.step(t, next, 1.0);
            let beta = 1.0 - s.alpha_bar(t) / ab_next;
            let posterior = (1.0 - ab_next) / (1.0 - s.alpha_bar(t)) * beta;
            assert!((ddpm.sigma.powi(2) - posterior).abs() < 1e-12, "t {t}");
            for eta in [0.3, 1.0] {
                let st = s.step(t, next, eta);
                let variance = st.eps_next.powi(2) + st.sigma.powi(2);
                assert!(
                    (variance - (1.0 - ab_next)).abs() < 1e-12,
                    "t {t} eta {eta}"
                );
            }
        }
        assert_eq!(s.step(1, 0, 1.0).sigma, 0.0);
    }

    #[test]
    fn lr_warms_up_then_decays_to_the_floor() {
        let mut c = Config::preset("phase1").unwrap().train;
        c.steps = 1000;
        assert!((learning_rate(&c, 0) - c.lr as f64 / 20.0).abs() < 1e-9);
        assert!((learning_rate(&c, 19) - c.lr as f64).abs() < 1e-9);
        assert!((learning_rate(&c, 999) - c.lr as f64 * 0.1).abs() < 1e-5);
    }
}
