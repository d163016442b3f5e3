//! `tuneup feedback export`: rated responses as a preference dataset
//! (chosen/rejected pairs for the same request) and a satisfaction summary.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::feedback::FeedbackRecord;

/// Whether a rating is positive (thumbs up, 4–5 stars), negative (thumbs
/// down, 1–2 stars) or neutral (3 stars).
pub fn polarity(rating: i64) -> i8 {
    match rating {
        -1 => -1,
        1 => 1,
        2 => -1,
        3 => 0,
        4 | 5 => 1,
        _ => 0,
    }
}

/// The prompt of a stored request: its `messages` (chat) or `prompt` (text).
fn prompt_of(request: &str) -> Value {
    let v: Value = serde_json::from_str(request).unwrap_or(Value::Null);
    v.get("messages")
        .or_else(|| v.get("prompt"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The answer text of a stored response (chat messages are stored as JSON).
fn answer_of(response: &str) -> Value {
    match serde_json::from_str::<Value>(response) {
        Ok(v) if v.get("role").is_some() => v,
        _ => Value::String(response.to_string()),
    }
}

/// Pairs a positive and a negative answer to the same prompt as
/// `{"prompt", "chosen", "rejected"}` lines (each answer used once), and
/// returns them with a summary.
pub fn preferences(records: &[FeedbackRecord]) -> (Vec<Value>, Value) {
    let mut by_prompt: BTreeMap<String, (Vec<&FeedbackRecord>, Vec<&FeedbackRecord>)> =
        BTreeMap::new();
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    let (mut pos, mut neg) = (0usize, 0usize);
    for r in records {
        *counts.entry(r.rating).or_default() += 1;
        let key = prompt_of(&r.request).to_string();
        let entry = by_prompt.entry(key).or_default();
        match polarity(r.rating) {
            1 => {
                pos += 1;
                entry.0.push(r)
            }
            -1 => {
                neg += 1;
                entry.1.push(r)
            }
            _ => {}
        }
    }
    let mut pairs = Vec::new();
    for (good, bad) in by_prompt.values() {
        for (g, b) in good.iter().zip(bad) {
            pairs.push(json!({
                "prompt": prompt_of(&g.request),
                "chosen": answer_of(&g.response),
                "rejected": answer_of(&b.response),
                "chosen_id": g.response_id,
                "rejected_id": b.response_id,
            }));
        }
    }
    let rated = pos + neg;
    let summary = json!({
        "feedback": records.len(),
        "positive": pos,
        "negative": neg,
        "neutral": records.len() - rated,
        "satisfaction": if rated > 0 { json!(pos as f64 / rated as f64) } else { Value::Null },
        "ratings": counts.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "preference_pairs": pairs.len(),
    });
    (pairs, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, prompt: &str, rating: i64) -> FeedbackRecord {
        FeedbackRecord {
            id: 0,
            response_id: id.into(),
            rating,
            comment: None,
            created: 0,
            request: json!({"messages": [{"role": "user", "content": prompt}]}).to_string(),
            response: json!({"role": "assistant", "content": format!("answer {id}")}).to_string(),
        }
    }

    #[test]
    fn pairs_good_and_bad_answers_to_one_prompt() {
        let recs = [
            rec("a", "q1", 1),
            rec("b", "q1", -1),
            rec("c", "q2", 5),
            rec("d", "q2", 3),
        ];
        let (pairs, summary) = preferences(&recs);
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0]["chosen"]["content"], "answer a");
        assert_eq!(pairs[0]["rejected"]["content"], "answer b");
        assert_eq!(summary["positive"], 2);
        assert_eq!(summary["neutral"], 1);
        assert_eq!(summary["satisfaction"], json!(2.0 / 3.0));
    }
}
