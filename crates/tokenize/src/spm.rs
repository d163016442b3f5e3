//! SentencePiece ("llama") vocabularies as BPE, the way Hugging Face's `LlamaConverter` does it.
//!
//! llama.cpp tokenizes SentencePiece vocabularies by repeatedly merging the adjacent pair
//! of symbols whose concatenation is the vocabulary entry with the highest score. A BPE
//! model whose merges are "every way to split each vocabulary entry into two vocabulary
//! entries", ranked by the entry's score, performs the same merges in the same order.

use std::collections::HashMap;

/// Derives BPE merges from a SentencePiece vocabulary and its scores.
///
/// For every token `t` and every split `t = l + r` (at a char boundary) where `l` and `r`
/// are both tokens, emits the merge `(l, r)`. Merges are ordered by the score of `t`,
/// highest first; ties keep the order of token ids, then of split position.
/// `eligible(id)` filters which tokens may be merge results (byte tokens like `<0x0A>`
/// are not).
pub(crate) fn merges_from_scores(
    tokens: &[String],
    scores: &[f32],
    token_to_id: &HashMap<String, u32>,
    eligible: impl Fn(usize) -> bool,
) -> Vec<(String, String)> {
    let mut merges: Vec<(f32, u32, usize, &str, &str)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if !eligible(id) || piece.chars().nth(1).is_none() {
            continue;
        }
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (split, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(split);
            if token_to_id.contains_key(l) && token_to_id.contains_key(r) {
                merges.push((score, id as u32, split, l, r));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    merges
        .into_iter()
        .map(|(_, _, _, l, r)| (l.to_string(), r.to_string()))
        .collect()
}

/// Parses a byte-fallback token text `<0xAB>` into its byte.
pub(crate) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_scores() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scores = [0.0, 0.0, 0.0, -2.0, -1.0, -0.5];
        let map = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = merges_from_scores(&tokens, &scores, &map, |_| true);
        let m: Vec<(&str, &str)> = merges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(m, vec![("a", "bc"), ("ab", "c"), ("b", "c"), ("a", "b")]);
    }

    #[test]
    fn byte_tokens() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xff>"), Some(255));
        assert_eq!(parse_byte_token("<0x0>"), None);
        assert_eq!(parse_byte_token("hello"), None);
    }
}
