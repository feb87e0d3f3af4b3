//! Progress bars on stderr: one per file and a total, drawn only for a person at a terminal
//! (hidden with --json, --quiet, or when stderr is not a TTY).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one command.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    total: ProgressBar,
}

fn file_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Progress {
    /// Bars for `total_bytes`, drawn when `visible`.
    pub fn new(visible: bool, total_bytes: u64, label: &str) -> Self {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(total_bytes));
        total.set_style(
            ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("##-"),
        );
        total.set_message(label.to_owned());
        Progress { multi, total }
    }

    /// A bar for one file, above the total.
    pub fn file(&self, name: &str, bytes: u64) -> FileBar {
        let bar = self.multi.insert_before(&self.total, ProgressBar::new(bytes));
        bar.set_style(file_style());
        bar.set_message(name.to_owned());
        FileBar { bar, total: self.total.clone() }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub fn finish(&self) {
        self.total.finish();
        let _ = self.multi.clear();
    }
}

/// One file's bar; bytes counted here also count in the total.
#[derive(Clone)]
pub struct FileBar {
    bar: ProgressBar,
    total: ProgressBar,
}

impl FileBar {
    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
        self.total.inc(bytes);
    }

    /// Takes back bytes that have to be sent again (a part that failed).
    pub fn rewind(&self, bytes: u64) {
        self.bar.set_position(self.bar.position().saturating_sub(bytes));
        self.total.set_position(self.total.position().saturating_sub(bytes));
    }

    pub fn set_message(&self, message: &str) {
        self.bar.set_message(message.to_owned());
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
