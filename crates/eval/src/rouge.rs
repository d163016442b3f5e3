//! ROUGE-1, ROUGE-2 and ROUGE-L, equal to Google's `rouge-score` package
//! (`rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=False)`).
//!
//! Tokenization is rouge-score's default tokenizer: lowercase the text, replace every run of characters other
//! than `[a-z0-9]` by a space, split, and drop empty tokens. Non-ASCII letters therefore vanish (`"café"` gives
//! `"caf"`), exactly as in the Python package.
//!
//! **No stemming.** rouge-score's `use_stemmer=True` uses NLTK's `PorterStemmer` (NLTK_EXTENSIONS mode); the
//! `rust-stemmers` crate implements Snowball English (Porter2), which stems differently (`"this"` → `"thi"` in
//! NLTK but `"this"` in Snowball; 10 of 467 distinct words in `fixtures/eval/rouge.json` differ), so stemmed
//! scores would not match the reference and are not offered.

use std::collections::HashMap;

/// Precision, recall and F1 of one ROUGE variant (each in 0–1).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct RougeValue {
    /// Matches divided by the prediction's size.
    pub precision: f64,
    /// Matches divided by the target's size.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fmeasure: f64,
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: RougeValue,
    /// Bigram overlap.
    pub rouge2: RougeValue,
    /// Longest common subsequence.
    pub rouge_l: RougeValue,
}

/// Errors from the ROUGE functions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RougeError {
    /// `score_multi` was given no target.
    #[error("ROUGE: no target texts given for the prediction")]
    NoTargets,
}

/// rouge-score's default tokenizer (without stemming).
pub fn tokenize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], u64> {
    let mut counts = HashMap::new();
    for window in tokens.windows(n) {
        *counts.entry(window).or_insert(0) += 1;
    }
    counts
}

fn score_ngrams(target: &[String], prediction: &[String], n: usize) -> RougeValue {
    let target_counts = ngram_counts(target, n);
    let prediction_counts = ngram_counts(prediction, n);
    let overlap: u64 = target_counts
        .iter()
        .map(|(ngram, &count)| count.min(prediction_counts.get(ngram).copied().unwrap_or(0)))
        .sum();
    let target_total: u64 = target_counts.values().sum();
    let prediction_total: u64 = prediction_counts.values().sum();
    let precision = overlap as f64 / prediction_total.max(1) as f64;
    let recall = overlap as f64 / target_total.max(1) as f64;
    RougeValue {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

fn lcs_length(a: &[String], b: &[String]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                previous[j + 1].max(current[j])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

fn score_lcs(target: &[String], prediction: &[String]) -> RougeValue {
    if target.is_empty() || prediction.is_empty() {
        return RougeValue::default();
    }
    let lcs = lcs_length(target, prediction) as f64;
    let precision = lcs / prediction.len() as f64;
    let recall = lcs / target.len() as f64;
    RougeValue {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// `RougeScorer.score(target, prediction)`.
pub fn score(target: &str, prediction: &str) -> RougeScores {
    let target = tokenize(target);
    let prediction = tokenize(prediction);
    RougeScores {
        rouge1: score_ngrams(&target, &prediction, 1),
        rouge2: score_ngrams(&target, &prediction, 2),
        rouge_l: score_lcs(&target, &prediction),
    }
}

/// `RougeScorer.score_multi(targets, prediction)`: for each variant separately, the score against the target
/// with the highest F1 (the first such target on ties, like `numpy.argmax`).
pub fn score_multi<T: AsRef<str>>(
    targets: &[T],
    prediction: &str,
) -> Result<RougeScores, RougeError> {
    if targets.is_empty() {
        return Err(RougeError::NoTargets);
    }
    let all: Vec<RougeScores> = targets
        .iter()
        .map(|t| score(t.as_ref(), prediction))
        .collect();
    let best = |pick: fn(&RougeScores) -> RougeValue| -> RougeValue {
        let mut best = pick(&all[0]);
        for candidate in all[1..].iter().map(pick) {
            if candidate.fmeasure > best.fmeasure {
                best = candidate;
            }
        }
        best
    };
    Ok(RougeScores {
        rouge1: best(|s| s.rouge1),
        rouge2: best(|s| s.rouge2),
        rouge_l: best(|s| s.rouge_l),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_keeps_ascii_alphanumerics_only() {
        assert_eq!(
            tokenize("The café's 2nd-best!"),
            ["the", "caf", "s", "2nd", "best"]
        );
        assert!(tokenize("—…").is_empty());
    }

    #[test]
    fn lcs_and_empty_inputs() {
        let s = score("a b c d", "a c x d");
        assert_eq!(s.rouge_l.precision, 0.75);
        assert_eq!(score("", "a").rouge1, RougeValue::default());
        let none: [&str; 0] = [];
        assert_eq!(score_multi(&none, "a"), Err(RougeError::NoTargets));
    }
}
