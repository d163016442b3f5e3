//! String-level metrics: exact match, normalized match and label accuracy.
//!
//! # Normalization rules
//!
//! [`normalize`] applies, in this order:
//! 1. Unicode lowercasing (`str::to_lowercase`);
//! 2. every run of Unicode whitespace becomes one ASCII space, and leading/trailing whitespace is removed;
//! 3. trailing punctuation is removed: while the text ends with one of `. , ; : ! ?` (optionally followed by
//!    whitespace), that character and the whitespace are dropped. Punctuation elsewhere is kept, so
//!    `"3.5"` stays `"3.5"` and `"Paris."` becomes `"paris"`.

use std::collections::BTreeMap;

/// Characters removed from the end of a string by [`normalize`].
pub const TRAILING_PUNCTUATION: &[char] = &['.', ',', ';', ':', '!', '?'];

/// Errors from the text metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextMetricError {
    /// Predictions and references have different lengths.
    #[error("label accuracy: {predictions} predictions but {references} references; they must pair up one to one")]
    LengthMismatch {
        /// Number of predictions given.
        predictions: usize,
        /// Number of references given.
        references: usize,
    },
    /// Nothing to score.
    #[error("label accuracy: no examples given (accuracy of an empty set is undefined)")]
    Empty,
}

/// `true` when `prediction` and `reference` are byte-for-byte identical.
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    prediction == reference
}

/// Normalizes `text` by the rules in the [module documentation](self).
pub fn normalize(text: &str) -> String {
    let lowered = text.to_lowercase();
    let mut collapsed = lowered.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let trimmed = collapsed.trim_end_matches(TRAILING_PUNCTUATION).trim_end();
        if trimmed.len() == collapsed.len() {
            break;
        }
        collapsed.truncate(trimmed.len());
    }
    collapsed
}

/// `true` when `prediction` and `reference` are equal after [`normalize`].
pub fn normalized_match(prediction: &str, reference: &str) -> bool {
    normalize(prediction) == normalize(reference)
}

/// Counts for one gold label in [`LabelAccuracy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LabelCounts {
    /// Examples with this gold label predicted correctly.
    pub correct: usize,
    /// Examples with this gold label.
    pub total: usize,
}

/// Accuracy of predicted labels against gold labels, overall and per gold label.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelAccuracy {
    /// Correct predictions.
    pub correct: usize,
    /// All examples.
    pub total: usize,
    /// `correct / total`.
    pub accuracy: f64,
    /// Counts keyed by the normalized gold label.
    pub per_label: BTreeMap<String, LabelCounts>,
}

/// Label accuracy: a prediction is correct when it [`normalized_match`]es its gold label.
///
/// Errors when the two slices differ in length or are empty.
pub fn label_accuracy<P: AsRef<str>, R: AsRef<str>>(
    predictions: &[P],
    references: &[R],
) -> Result<LabelAccuracy, TextMetricError> {
    if predictions.len() != references.len() {
        return Err(TextMetricError::LengthMismatch {
            predictions: predictions.len(),
            references: references.len(),
        });
    }
    if predictions.is_empty() {
        return Err(TextMetricError::Empty);
    }
    let mut per_label: BTreeMap<String, LabelCounts> = BTreeMap::new();
    let mut correct = 0;
    for (prediction, reference) in predictions.iter().zip(references) {
        let gold = normalize(reference.as_ref());
        let hit = normalize(prediction.as_ref()) == gold;
        let counts = per_label.entry(gold).or_default();
        counts.total += 1;
        if hit {
            counts.correct += 1;
            correct += 1;
        }
    }
    Ok(LabelAccuracy {
        correct,
        total: predictions.len(),
        accuracy: correct as f64 / predictions.len() as f64,
        per_label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_rules() {
        assert_eq!(
            normalize("  The   Answer\tIS\n Paris. "),
            "the answer is paris"
        );
        assert_eq!(normalize("Yes!?!"), "yes");
        assert_eq!(normalize("3.5"), "3.5");
        assert_eq!(normalize("a . , ;"), "a");
        assert_eq!(normalize("...?"), "");
        assert_eq!(normalize("e.g. this"), "e.g. this");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn exact_versus_normalized() {
        assert!(exact_match("Paris", "Paris"));
        assert!(!exact_match("Paris.", "Paris"));
        assert!(normalized_match("Paris.", " paris"));
        assert!(!normalized_match("Paris, France", "Paris"));
    }

    #[test]
    fn label_accuracy_counts_per_label() {
        let acc = label_accuracy(
            &["Positive", "negative.", "neutral"],
            &["positive", "Negative", "negative"],
        )
        .unwrap();
        assert_eq!((acc.correct, acc.total), (2, 3));
        assert!((acc.accuracy - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(
            acc.per_label["negative"],
            LabelCounts {
                correct: 1,
                total: 2
            }
        );
        assert_eq!(
            acc.per_label["positive"],
            LabelCounts {
                correct: 1,
                total: 1
            }
        );
    }

    #[test]
    fn label_accuracy_rejects_bad_input() {
        let empty: [&str; 0] = [];
        assert_eq!(label_accuracy(&empty, &empty), Err(TextMetricError::Empty));
        let err = label_accuracy(&["a"], &["a", "b"]).unwrap_err();
        assert!(err.to_string().contains("1 predictions but 2 references"));
    }
}
