//! An indicatif progress bar for downloads.

use indicatif::{ProgressBar, ProgressStyle};

/// Shows pull progress on stderr (hidden with `quiet`).
pub struct BarProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl BarProgress {
    /// A progress reporter; `quiet` prints nothing.
    pub fn new(quiet: bool) -> Self {
        Self { bar: None, quiet }
    }
}

impl tuneup_hub::PullProgress for BarProgress {
    fn message(&mut self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => eprintln!("{msg}"),
        }
    }

    fn bytes(&mut self, done: u64, total: u64) {
        if self.quiet {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
            self.bar = None;
        }
    }
}
