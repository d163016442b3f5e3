//! Answers cut off by the token limit: a wrong answer whose generation ended on `generation.max_tokens`
//! (`finish_reason = "length"`) gets the error type [`TRUNCATED`] instead of the metric's own (kept in the
//! message), and a run where many answers hit the limit gets a warning in its summary.

use crate::record::{ExampleRecord, Verdict};

/// The error type of a wrong answer that hit the token limit.
pub const TRUNCATED: &str = "truncated";

/// Share of answers hitting the limit above which the summary warns.
pub const WARN_SHARE: f64 = 0.05;

/// Whether `r`'s (last) generation ended on the token limit.
pub fn hit_limit(r: &ExampleRecord) -> bool {
    r.finish_reason.as_deref() == Some("length")
}

/// Relabels a wrong answer that hit the token limit: `error_type = "truncated"`, and the message becomes
/// `truncated (would be <metric's type>): <metric's message>`.
pub fn mark(r: &mut ExampleRecord) {
    if r.verdict != Verdict::Wrong || !hit_limit(r) {
        return;
    }
    let would_be = r.error_type.take().unwrap_or_else(|| "wrong".into());
    let mut message = format!("{TRUNCATED} (would be {would_be})");
    if let Some(m) = r.error_message.take() {
        message = format!("{message}: {m}");
    }
    r.error_type = Some(TRUNCATED.into());
    r.error_message = Some(message);
}

/// The summary warning when more than [`WARN_SHARE`] of the answers hit `max_tokens`.
pub fn warning(truncated: usize, total: usize, max_tokens: usize) -> Option<String> {
    (total > 0 && truncated as f64 > WARN_SHARE * total as f64).then(|| {
        format!("{truncated} of {total} answers hit max_tokens = {max_tokens}; raise generation.max_tokens")
    })
}

#[cfg(test)]
mod tests {
    use super::warning;

    #[test]
    fn warns_above_five_percent() {
        assert_eq!(warning(1, 20, 64), None);
        assert_eq!(
            warning(2, 20, 64).as_deref(),
            Some("2 of 20 answers hit max_tokens = 64; raise generation.max_tokens")
        );
        assert_eq!(warning(0, 0, 64), None);
    }
}
