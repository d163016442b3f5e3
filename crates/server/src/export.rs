//! `tuneup feedback export`: rated responses as a preference dataset
//! (chosen/rejected pairs for the same request) and a satisfaction summary.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::feedback::FeedbackRecord;

/// Whether a rating is positive (thumbs up, 4–5 stars), negative (thumbs
/// down, 1–2 stars) or neutral (3 stars, or a rating of 1 stored without its
/// scale, which may be either).
pub fn polarity(rating: i64, scale: Option<&str>) -> i8 {
    match (scale, rating) {
        (Some("thumbs"), 1) => 1,
        (Some("thumbs"), -1) | (None, -1) => -1,
        (Some("stars"), 1 | 2) | (None, 2) => -1,
        (Some("stars"), 4 | 5) | (None, 4 | 5) => 1,
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
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let (mut pos, mut neg) = (0usize, 0usize);
    for r in records {
        let scale = r.scale.as_deref().unwrap_or("unknown");
        *counts.entry(format!("{scale}:{}", r.rating)).or_default() += 1;
        let polarity = polarity(r.rating, r.scale.as_deref());
        match polarity {
            1 => pos += 1,
            -1 => neg += 1,
            _ => {}
        }
        // Answers are paired by prompt: without a captured request there is none.
        let prompt = prompt_of(&r.request);
        if prompt.is_null() {
            continue;
        }
        let entry = by_prompt.entry(prompt.to_string()).or_default();
        match polarity {
            1 => entry.0.push(r),
            -1 => entry.1.push(r),
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
        "ratings": counts.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "preference_pairs": pairs.len(),
    });
    (pairs, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, prompt: &str, rating: i64, scale: &str) -> FeedbackRecord {
        FeedbackRecord {
            id: 0,
            response_id: id.into(),
            rating,
            scale: Some(scale.into()),
            comment: None,
            created: 0,
            request: json!({"messages": [{"role": "user", "content": prompt}]}).to_string(),
            response: json!({"role": "assistant", "content": format!("answer {id}")}).to_string(),
        }
    }

    #[test]
    fn pairs_good_and_bad_answers_to_one_prompt() {
        let recs = [
            rec("a", "q1", 1, "thumbs"),
            rec("b", "q1", -1, "thumbs"),
            rec("c", "q2", 5, "stars"),
            rec("d", "q2", 3, "stars"),
            rec("e", "q3", 4, "stars"),
            rec("f", "q3", 1, "stars"),
        ];
        let (pairs, summary) = preferences(&recs);
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0]["chosen"]["content"], "answer a");
        assert_eq!(pairs[0]["rejected"]["content"], "answer b");
        // One star is negative.
        assert_eq!(pairs[1]["chosen"]["content"], "answer e");
        assert_eq!(pairs[1]["rejected"]["content"], "answer f");
        assert_eq!(summary["positive"], 3);
        assert_eq!(summary["negative"], 2);
        assert_eq!(summary["neutral"], 1);
        assert_eq!(summary["ratings"]["stars:1"], 1);
        assert_eq!(summary["satisfaction"], json!(3.0 / 5.0));
    }
}
