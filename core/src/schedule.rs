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
    fn lr_warms_up_then_decays_to_the_floor() {
        let mut c = Config::preset("phase1").unwrap().train;
        c.steps = 1000;
        assert!((learning_rate(&c, 0) - c.lr as f64 / 20.0).abs() < 1e-9);
        assert!((learning_rate(&c, 19) - c.lr as f64).abs() < 1e-9);
        assert!((learning_rate(&c, 999) - c.lr as f64 * 0.1).abs() < 1e-5);
    }
}
