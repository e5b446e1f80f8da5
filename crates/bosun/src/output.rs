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

/// How operator commands print what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Pretty JSON; lists are arrays of objects with snake_case keys.
    Json,
    Yaml,
}

/// Renders `value` as JSON or YAML, or with `table` for [`Format::Table`].
pub fn render<T: serde::Serialize + ?Sized>(
    format: Format,
    value: &T,
    table: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table => table(),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(value)?;
            text.push('\n');
            text
        }
        Format::Yaml => serde_yaml::to_string(value)?,
    })
}

/// Columns aligned with two spaces between them; the last column is not padded.
#[derive(Debug)]
pub struct Table {
    header: Option<Vec<String>>,
    width: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Table { header: Some(header.iter().map(|h| (*h).to_owned()).collect()), width: N, rows: Vec::new() }
    }

    /// Prints no header line (key/value listings).
    pub fn headless(mut self) -> Self {
        self.header = None;
        self
    }

    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        debug_assert_eq!(N, self.width, "a row has as many cells as the header");
        // Cells are single-line: a newline in a message would break the columns.
        self.rows.push(cells.into_iter().map(|c| c.replace(['\n', '\r'], " ")).collect());
    }

    pub fn render(&self) -> String {
        let lines: Vec<&Vec<String>> = self.header.iter().chain(self.rows.iter()).collect();
        let mut widths = vec![0; self.width];
        for line in &lines {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i + 1 == line.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 2));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}
