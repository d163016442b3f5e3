//! Length limits: token counts come from a caller's closure (the model's tokenizer and chat template), or from
//! a whitespace estimate when there is no model.

use crate::read::{Rejected, SourcedRecord};
use crate::record::{ChatRecord, RejectKind};

/// What [`approx_tokens`] does, for reports.
pub const APPROX_TOKENS: &str = "estimate: whitespace words × 1.3 (no --model)";

/// A model-free token estimate: whitespace-separated words of [`ChatRecord::full_text`] (contents, tool calls,
/// tools) times 1.3, rounded up, plus 4 per message for the template's role markers.
pub fn approx_tokens(record: &ChatRecord) -> usize {
    let words = record.full_text().split_whitespace().count();
    (words as f64 * 1.3).ceil() as usize + 4 * record.messages.len()
}

/// Counts the tokens of each record with `count` and splits off those over `max_tokens` (`0` = no limit) as
/// [`RejectKind::TooLong`]. Returns the kept records with their counts, and the rejected ones.
pub fn drop_long(
    records: Vec<SourcedRecord>,
    max_tokens: usize,
    count: &dyn Fn(&ChatRecord) -> usize,
) -> (Vec<(SourcedRecord, usize)>, Vec<Rejected>) {
    let mut kept = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for r in records {
        let n = count(&r.record);
        if max_tokens > 0 && n > max_tokens {
            rejected.push(Rejected {
                source: r.source,
                kind: RejectKind::TooLong,
                reason: format!("{n} tokens > max {max_tokens}"),
            });
        } else {
            kept.push((r, n));
        }
    }
    (kept, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{Source, Unit};
    use serde_json::json;

    fn sourced(line: usize, answer: &str) -> SourcedRecord {
        SourcedRecord {
            source: Source {
                path: "x.jsonl".into(),
                line,
                unit: Unit::Line,
            },
            record: ChatRecord::new(
                vec![
                    json!({"role": "user", "content": "one two three"}),
                    json!({"role": "assistant", "content": answer}),
                ],
                None,
            )
            .unwrap(),
            db_id: None,
        }
    }

    #[test]
    fn estimate_counts_words() {
        // "user:" + 3 words + "assistant:" + 2 words = 7 words → 9.1 → 10, plus 2 × 4 markers.
        assert_eq!(approx_tokens(&sourced(1, "four five").record), 18);
    }

    #[test]
    fn drops_records_over_the_limit() {
        let words = |r: &ChatRecord| r.full_text().split_whitespace().count();
        let (kept, rejected) = drop_long(
            vec![sourced(1, "a"), sourced(2, "a b c d e f"), sourced(3, "b")],
            7,
            &words,
        );
        assert_eq!(
            kept.iter()
                .map(|(r, n)| (r.source.line, *n))
                .collect::<Vec<_>>(),
            [(1, 6), (3, 6)]
        );
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].to_string(), "x.jsonl:2: 11 tokens > max 7");
        assert_eq!(rejected[0].kind, RejectKind::TooLong);
        let (kept, _) = drop_long(vec![sourced(2, "a b c d e f")], 0, &words);
        assert_eq!(kept.len(), 1);
    }
}
