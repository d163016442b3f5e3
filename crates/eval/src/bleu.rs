//! BLEU as computed by sacreBLEU 2.x (`corpus_bleu` and `sentence_bleu` with their defaults).
//!
//! * Tokenization: sacreBLEU's `13a` tokenizer (mteval-v13a), case-sensitive; see [`tokenize_13a`].
//! * N-grams up to order [`MAX_NGRAM_ORDER`] (4); n-gram counts are clipped by the maximum count in any reference.
//! * Brevity penalty against the reference length closest to the hypothesis length (the shorter on ties).
//! * Smoothing `exp` (NIST "method 3"): the k-th order with no match gets precision `100 / (2^k * total)`.
//! * [`corpus_bleu`] uses all four orders (`effective_order=False`); [`sentence_bleu`] uses sacreBLEU's
//!   sentence default `use_effective_order=True` (orders with no hypothesis n-grams are left out of the mean).
//!
//! Whitespace is Python's `str.split()` whitespace: Unicode whitespace plus the separators U+001C..U+001F.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

/// Highest n-gram order.
pub const MAX_NGRAM_ORDER: usize = 4;

/// Errors from the BLEU functions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BleuError {
    /// The number of hypotheses and reference lists differ.
    #[error("corpus BLEU: {hypotheses} hypotheses but {references} reference lists; give one list per hypothesis")]
    LengthMismatch {
        /// Number of hypotheses.
        hypotheses: usize,
        /// Number of reference lists.
        references: usize,
    },
    /// A hypothesis came with no reference.
    #[error("BLEU: hypothesis {index} has no reference")]
    NoReference {
        /// Index of the hypothesis.
        index: usize,
    },
    /// Nothing to score.
    #[error("corpus BLEU: no hypotheses given")]
    Empty,
}

/// A BLEU result with the same fields as sacreBLEU's `BLEUScore`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BleuScore {
    /// BLEU on a 0–100 scale.
    pub score: f64,
    /// Clipped matching n-gram counts, orders 1..=4.
    pub counts: [u64; MAX_NGRAM_ORDER],
    /// Hypothesis n-gram counts, orders 1..=4.
    pub totals: [u64; MAX_NGRAM_ORDER],
    /// Smoothed precisions (0–100), orders 1..=4.
    pub precisions: [f64; MAX_NGRAM_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis length in tokens.
    pub sys_len: u64,
    /// Effective reference length in tokens.
    pub ref_len: u64,
}

/// Python's `str.isspace()`: Rust's Unicode whitespace plus the information separators U+001C..U+001F.
pub(crate) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument.
pub(crate) fn python_split(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_python_space).filter(|s| !s.is_empty())
}

static PERIOD_COMMA_AFTER_NON_DIGIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([^0-9])([\.,])").expect("valid regex"));
static PERIOD_COMMA_BEFORE_NON_DIGIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([\.,])([^0-9])").expect("valid regex"));
static DASH_AFTER_DIGIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([0-9])(-)").expect("valid regex"));

/// Symbols that 13a always splits off: `{|}~ [\]^_` space!"#$%& ()*+ :;<=>?@ /`.
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// sacreBLEU's `13a` tokenizer applied to one (already right-stripped) segment; tokens joined by single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut spaced = String::with_capacity(line.len() * 2 + 2);
    spaced.push(' ');
    for c in line.chars() {
        if is_13a_symbol(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    spaced.push(' ');
    let step = PERIOD_COMMA_AFTER_NON_DIGIT.replace_all(&spaced, "$1 $2 ");
    let step = PERIOD_COMMA_BEFORE_NON_DIGIT.replace_all(&step, " $1 $2");
    let step = DASH_AFTER_DIGIT.replace_all(&step, "$1 $2 ");
    python_split(&step).collect::<Vec<_>>().join(" ")
}

fn preprocess(segment: &str) -> String {
    tokenize_13a(segment.trim_end_matches(is_python_space))
}

type NgramCounts<'a> = HashMap<&'a [&'a str], u64>;

fn ngram_counts<'a>(tokens: &'a [&'a str]) -> NgramCounts<'a> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_NGRAM_ORDER {
        for window in tokens.windows(n) {
            *counts.entry(window).or_insert(0) += 1;
        }
    }
    counts
}

/// Sufficient statistics of one segment: `[sys_len, ref_len, counts.., totals..]`.
#[derive(Debug, Clone, Copy, Default)]
struct SegmentStats {
    sys_len: u64,
    ref_len: u64,
    counts: [u64; MAX_NGRAM_ORDER],
    totals: [u64; MAX_NGRAM_ORDER],
}

impl SegmentStats {
    fn add(&mut self, other: &SegmentStats) {
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
        for n in 0..MAX_NGRAM_ORDER {
            self.counts[n] += other.counts[n];
            self.totals[n] += other.totals[n];
        }
    }
}

fn closest_ref_len(hyp_len: u64, ref_lens: &[u64]) -> u64 {
    let mut best: Option<(u64, u64)> = None; // (diff, len)
    for &len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            None => Some((diff, len)),
            Some((d, l)) if diff < d || (diff == d && len < l) => Some((diff, len)),
            keep => keep,
        };
    }
    best.map_or(0, |(_, len)| len)
}

fn segment_stats<S: AsRef<str>>(hypothesis: &str, references: &[S]) -> SegmentStats {
    let hyp = preprocess(hypothesis);
    let refs: Vec<String> = references.iter().map(|r| preprocess(r.as_ref())).collect();
    let hyp_tokens: Vec<&str> = python_split(&hyp).collect();
    let ref_tokens: Vec<Vec<&str>> = refs.iter().map(|r| python_split(r).collect()).collect();
    let mut ref_max: NgramCounts = HashMap::new();
    for tokens in &ref_tokens {
        for (ngram, count) in ngram_counts(tokens) {
            let entry = ref_max.entry(ngram).or_insert(0);
            *entry = (*entry).max(count);
        }
    }
    let ref_lens: Vec<u64> = ref_tokens.iter().map(|t| t.len() as u64).collect();
    let mut stats = SegmentStats {
        sys_len: hyp_tokens.len() as u64,
        ref_len: closest_ref_len(hyp_tokens.len() as u64, &ref_lens),
        ..Default::default()
    };
    for (ngram, count) in ngram_counts(&hyp_tokens) {
        let n = ngram.len() - 1;
        stats.totals[n] += count;
        stats.counts[n] += count.min(ref_max.get(ngram).copied().unwrap_or(0));
    }
    stats
}

/// sacreBLEU's `my_log`: `log(x)`, with `log(0)` floored to -9999999999.
fn floored_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// sacreBLEU's `BLEU.compute_bleu` with `smooth_method='exp'`.
fn compute_bleu(stats: &SegmentStats, effective_order: bool) -> BleuScore {
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut score = BleuScore {
        score: 0.0,
        counts: stats.counts,
        totals: stats.totals,
        precisions: [0.0; MAX_NGRAM_ORDER],
        bp,
        sys_len,
        ref_len,
    };
    if stats.counts.iter().all(|&c| c == 0) {
        return score;
    }
    let mut smooth_mteval = 1.0_f64;
    let mut eff_order = MAX_NGRAM_ORDER;
    for n in 0..MAX_NGRAM_ORDER {
        if stats.totals[n] == 0 {
            break;
        }
        if effective_order {
            eff_order = n + 1;
        }
        score.precisions[n] = if stats.counts[n] == 0 {
            smooth_mteval *= 2.0;
            100.0 / (smooth_mteval * stats.totals[n] as f64)
        } else {
            100.0 * stats.counts[n] as f64 / stats.totals[n] as f64
        };
    }
    // Python's `sum()` adds left to right, as does this fold.
    let log_sum: f64 = score.precisions[..eff_order]
        .iter()
        .map(|&p| floored_log(p))
        .sum();
    score.score = bp * (log_sum / eff_order as f64).exp();
    score
}

/// Corpus BLEU, equal to `sacrebleu.corpus_bleu(hypotheses, reference_streams)` with default arguments.
///
/// `references[i]` holds all references of `hypotheses[i]` (at least one; the number may vary per segment,
/// like sacreBLEU's `None` entries in its reference streams).
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[Vec<R>],
) -> Result<BleuScore, BleuError> {
    if hypotheses.len() != references.len() {
        return Err(BleuError::LengthMismatch {
            hypotheses: hypotheses.len(),
            references: references.len(),
        });
    }
    if hypotheses.is_empty() {
        return Err(BleuError::Empty);
    }
    let mut total = SegmentStats::default();
    for (index, (hypothesis, refs)) in hypotheses.iter().zip(references).enumerate() {
        if refs.is_empty() {
            return Err(BleuError::NoReference { index });
        }
        total.add(&segment_stats(hypothesis.as_ref(), refs));
    }
    Ok(compute_bleu(&total, false))
}

/// Sentence BLEU, equal to `sacrebleu.sentence_bleu(hypothesis, references)` with default arguments
/// (exp smoothing, effective order).
pub fn sentence_bleu<R: AsRef<str>>(
    hypothesis: &str,
    references: &[R],
) -> Result<BleuScore, BleuError> {
    if references.is_empty() {
        return Err(BleuError::NoReference { index: 0 });
    }
    Ok(compute_bleu(&segment_stats(hypothesis, references), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_splits_like_13a() {
        assert_eq!(
            tokenize_13a("Hello, world. 3.5 and 1,000-2"),
            "Hello , world . 3.5 and 1,000 - 2"
        );
        assert_eq!(tokenize_13a("a &amp; b"), "a & b");
    }

    #[test]
    fn identical_is_100_and_bad_input_errors() {
        let s = sentence_bleu("the cat sat on the mat", &["the cat sat on the mat"]).unwrap();
        assert!((s.score - 100.0).abs() < 1e-12);
        let none: [&str; 0] = [];
        assert_eq!(
            sentence_bleu("x", &none),
            Err(BleuError::NoReference { index: 0 })
        );
        assert!(matches!(
            corpus_bleu(&["a"], &[vec!["a"], vec!["b"]]),
            Err(BleuError::LengthMismatch { .. })
        ));
        let hyps: [&str; 0] = [];
        assert_eq!(corpus_bleu::<_, &str>(&hyps, &[]), Err(BleuError::Empty));
    }
}
