//! Terminal output helpers.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// True when progress bars may be drawn: stderr is a terminal and we are not in CI.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// A progress bar over `total` items, drawn on stderr only when [`interactive`].
pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if interactive() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A spinner for work of unknown length, drawn on stderr only when [`interactive`].
pub fn spinner(message: &str) -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(
        None,
        if interactive() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}
