//! Exact and near-duplicate detection; the first occurrence is kept.
//!
//! * Exact: the whole conversation ([`ChatRecord::full_text`]: roles, contents, tool calls, tools), lower-cased
//!   with white space collapsed.
//! * Near: MinHash over word 5-shingles of the non-system turns ([`ChatRecord::turns_text`]; system prompts
//!   and tool lists are often shared templates), [`NUM_HASHES`] hashes in [`BANDS`] LSH bands; a candidate
//!   whose estimated Jaccard similarity is at or above the threshold is a duplicate. Records are only compared
//!   with records of the same scope (text-to-SQL: the database — the same question about another schema is
//!   another example).

use std::collections::HashMap;

use crate::hash::{hash64, mix};
use crate::read::Source;
use crate::record::{ChatRecord, RejectKind};

/// MinHash signature length.
pub const NUM_HASHES: usize = 64;
/// LSH bands (of `NUM_HASHES / BANDS` rows each): 16 × 4 finds pairs with Jaccard 0.9 with probability
/// > 0.999 and 0.7 with 0.98.
pub const BANDS: usize = 16;
/// Words per shingle.
pub const SHINGLE: usize = 5;

const ROWS: usize = NUM_HASHES / BANDS;

/// The text exact deduplication compares: lower-cased, white space collapsed to single spaces.
pub fn normalized(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The MinHash signature of the word 5-shingles of `text` (lower-cased); a text of fewer than 5 words is one
/// shingle. `None` for a text without words.
pub fn minhash(text: &str) -> Option<[u64; NUM_HASHES]> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return None;
    }
    let mut sig = [u64::MAX; NUM_HASHES];
    for shingle in words.windows(SHINGLE.min(words.len())) {
        let h = hash64(shingle.join(" ").as_bytes(), 0);
        for (i, slot) in sig.iter_mut().enumerate() {
            let v = mix(h ^ SEEDS[i]);
            if v < *slot {
                *slot = v;
            }
        }
    }
    Some(sig)
}

/// Per-hash seeds (SplitMix64 stream from 0).
const SEEDS: [u64; NUM_HASHES] = {
    let mut out = [0u64; NUM_HASHES];
    let mut state = 0u64;
    let mut i = 0;
    while i < NUM_HASHES {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out[i] = mix(state);
        i += 1;
    }
    out
};

/// The fraction of equal positions: an estimate of the Jaccard similarity of the two shingle sets.
pub fn similarity(a: &[u64; NUM_HASHES], b: &[u64; NUM_HASHES]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / NUM_HASHES as f64
}

/// Remembers the records kept so far and tells whether a new one duplicates one of them.
#[derive(Debug)]
pub struct Deduper {
    threshold: f64,
    exact: HashMap<String, Source>,
    signatures: Vec<([u64; NUM_HASHES], Source)>,
    buckets: HashMap<(usize, u64), Vec<usize>>,
}

impl Deduper {
    /// A deduper flagging near duplicates at estimated Jaccard similarity ≥ `threshold` (in (0, 1]).
    pub fn new(threshold: f64) -> Self {
        Self {
            threshold,
            exact: HashMap::new(),
            signatures: Vec::new(),
            buckets: HashMap::new(),
        }
    }

    /// `Some((kind, reason))` when `record` duplicates a record seen before (the reason names that record);
    /// otherwise remembers it as kept and returns `None`. Near duplicates are only looked for among records of
    /// the same `scope` (`None` is one scope too).
    pub fn check(
        &mut self,
        record: &ChatRecord,
        source: &Source,
        scope: Option<&str>,
    ) -> Option<(RejectKind, String)> {
        let key = normalized(&record.full_text());
        if let Some(first) = self.exact.get(&key) {
            return Some((
                RejectKind::ExactDuplicate,
                format!("exact duplicate of {first}"),
            ));
        }
        let sig = minhash(&record.turns_text());
        if let Some(sig) = &sig {
            let mut best: Option<(f64, usize)> = None;
            for (band, key) in band_keys(sig, scope) {
                for &i in self.buckets.get(&(band, key)).into_iter().flatten() {
                    let s = similarity(sig, &self.signatures[i].0);
                    if s >= self.threshold && best.is_none_or(|(b, _)| s > b) {
                        best = Some((s, i));
                    }
                }
            }
            if let Some((s, i)) = best {
                return Some((
                    RejectKind::NearDuplicate,
                    format!(
                        "near duplicate (similarity {s:.2}) of {}",
                        self.signatures[i].1
                    ),
                ));
            }
        }
        self.exact.insert(key, source.clone());
        if let Some(sig) = sig {
            let i = self.signatures.len();
            for bk in band_keys(&sig, scope) {
                self.buckets.entry(bk).or_default().push(i);
            }
            self.signatures.push((sig, source.clone()));
        }
        None
    }
}

/// The LSH bucket of each band: a hash of its rows and the scope.
fn band_keys<'a>(
    sig: &'a [u64; NUM_HASHES],
    scope: Option<&str>,
) -> impl Iterator<Item = (usize, u64)> + 'a {
    let scope = scope.map_or(0, |s| hash64(s.as_bytes(), 1) | 1);
    sig.chunks(ROWS).enumerate().map(move |(band, rows)| {
        let bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
        (band, hash64(&bytes, band as u64 ^ scope))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::Unit;
    use serde_json::json;

    fn chat(q: &str, a: &str) -> ChatRecord {
        ChatRecord::new(
            vec![
                json!({"role": "user", "content": q}),
                json!({"role": "assistant", "content": a}),
            ],
            None,
        )
        .unwrap()
    }

    fn at(line: usize) -> Source {
        Source {
            path: "d.jsonl".into(),
            line,
            unit: Unit::Line,
        }
    }

    fn long_text(change: Option<(usize, &str)>) -> String {
        let mut words: Vec<String> = (0..200).map(|i| format!("w{}", i * 7919 % 1000)).collect();
        if let Some((i, w)) = change {
            words[i] = w.into();
        }
        words.join(" ")
    }

    #[test]
    fn exact_ignores_case_and_white_space() {
        let mut d = Deduper::new(0.9);
        assert_eq!(d.check(&chat("Hello  World", "Hi"), &at(1), None), None);
        let (kind, reason) = d.check(&chat("hello\nworld ", "HI"), &at(2), None).unwrap();
        assert_eq!(kind, RejectKind::ExactDuplicate);
        assert_eq!(reason, "exact duplicate of d.jsonl:1");
        assert_eq!(d.check(&chat("hello world", "bye"), &at(3), None), None);
    }

    #[test]
    fn near_duplicates_differ_by_a_word() {
        let mut d = Deduper::new(0.9);
        assert_eq!(
            d.check(&chat(&long_text(None), "answer"), &at(1), None),
            None
        );
        let (kind, reason) = d
            .check(
                &chat(&long_text(Some((100, "changed"))), "answer"),
                &at(2),
                None,
            )
            .unwrap();
        assert_eq!(kind, RejectKind::NearDuplicate);
        assert!(reason.ends_with("of d.jsonl:1"), "{reason}");
        // Unrelated text of the same length is kept.
        let other: String = (0..200).map(|i| format!("v{i} ")).collect();
        assert_eq!(d.check(&chat(&other, "answer"), &at(3), None), None);
        // A threshold of 1 only catches identical shingle sets.
        let mut strict = Deduper::new(1.0);
        assert_eq!(
            strict.check(&chat(&long_text(None), "answer"), &at(1), None),
            None
        );
        assert_eq!(
            strict.check(
                &chat(&long_text(Some((100, "changed"))), "answer"),
                &at(2),
                None
            ),
            None
        );
        // Another scope (another database) is never a near duplicate.
        let mut scoped = Deduper::new(0.9);
        let near = chat(&long_text(Some((100, "changed"))), "answer");
        assert_eq!(
            scoped.check(&chat(&long_text(None), "answer"), &at(1), Some("db_a")),
            None
        );
        assert_eq!(scoped.check(&near, &at(2), Some("db_b")), None);
        let near_too = chat(&long_text(Some((150, "other"))), "answer");
        assert_eq!(
            scoped
                .check(&near_too, &at(3), Some("db_a"))
                .map(|(k, _)| k),
            Some(RejectKind::NearDuplicate)
        );
    }

    #[test]
    fn similarity_estimates_jaccard() {
        let a = minhash(&long_text(None)).unwrap();
        assert_eq!(similarity(&a, &a), 1.0);
        // One changed word changes 5 of 196 shingles: Jaccard 191/201 ≈ 0.95.
        let b = minhash(&long_text(Some((100, "x")))).unwrap();
        let s = similarity(&a, &b);
        assert!((0.85..1.0).contains(&s), "{s}");
        assert!(minhash("   ").is_none());
        assert_eq!(minhash("a b"), minhash("A  B"));
    }
}
