//! Progress on stderr for the commands that denoise, which take minutes on a
//! CPU adapter. indicatif draws nothing when stderr is not a terminal, so
//! piped output and logs get only the line naming the adapter.

use std::fmt::Write;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar over `steps` denoising steps: step k/N, steps/s and time left,
/// after the bar's prefix (none unless set).
pub fn denoising_bar(steps: usize) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix}{bar:30} step {pos}/{len}  {rate}  {eta} left")
            .expect("template")
            .with_key("rate", |state: &ProgressState, out: &mut dyn Write| {
                let _ = write!(out, "{:.1} steps/s", state.per_sec());
            });
    ProgressBar::new(steps as u64).with_style(style)
}

/// A spinner with `message` and the time so far, for work that reports no
/// steps while it runs.
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"))
        .with_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
