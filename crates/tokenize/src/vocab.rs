//! Token attributes and llama.cpp's rules for special and end-of-generation tokens.
//!
//! GGUF files carry a `tokenizer.ggml.token_type` per token; llama.cpp turns those into
//! attributes and then patches them by looking at token texts (`<|im_end|>` is an
//! end-of-turn token even when a converter forgot to mark it as control, and so on).
//! This module reproduces that logic so that special-token matching and the set of
//! end-of-generation ids are the same as llama.cpp's.

use std::collections::{BTreeSet, HashMap};

/// What kind of token an id is, as far as encoding and decoding are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An ordinary vocabulary entry produced by the model (BPE / SentencePiece piece).
    Normal,
    /// The unknown token (`<unk>`).
    Unknown,
    /// A control token such as `<|im_start|>`, BOS or EOS; hidden when decoding with
    /// `skip_special`.
    Control,
    /// A user-defined token such as `<tool_call>`: matched in text like control tokens,
    /// but always shown when decoding.
    UserDefined,
    /// A byte-fallback token such as `<0x0A>`, decoding to one raw byte.
    Byte,
    /// A reserved, unused slot; decodes to nothing.
    Unused,
}

impl TokenKind {
    /// Maps a GGUF `tokenizer.ggml.token_type` value to a kind (llama.cpp's `llama_token_type`).
    pub(crate) fn from_gguf_type(t: i64) -> TokenKind {
        match t {
            1 => TokenKind::Normal,
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            // 0 (undefined) and anything else: llama.cpp renders nothing for them.
            _ => TokenKind::Unused,
        }
    }

    /// Whether the token text is matched verbatim in input text before tokenization
    /// (llama.cpp's special-token cache: control, user-defined and unknown tokens).
    pub(crate) fn is_matched_in_text(self) -> bool {
        matches!(
            self,
            TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
        )
    }

    /// Whether decoding with `skip_special = true` drops the token.
    pub(crate) fn is_skippable(self) -> bool {
        matches!(self, TokenKind::Control | TokenKind::Unknown)
    }
}

/// Per-token data used by encoding and decoding.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub kind: TokenKind,
    /// Strip ASCII whitespace to the left of this token when it is matched in text.
    pub lstrip: bool,
    /// Strip ASCII whitespace to the right of this token when it is matched in text.
    pub rstrip: bool,
}

/// Token texts llama.cpp treats as end-of-turn when `tokenizer.ggml.eot_token_id` is unset.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

const EOM_TEXTS: &[&str] = &["<|eom_id|>"];

const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// Token texts that always end generation in llama.cpp.
pub(crate) const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Special ids read from GGUF metadata (`None` where the key is absent).
#[derive(Debug, Default, Clone)]
pub(crate) struct SpecialIds {
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Applies llama.cpp's text-based fix-ups to `infos` and returns the sorted
/// end-of-generation ids.
///
/// `tokens[i]` is the text of id `i`. Where llama.cpp iterates a hash map and takes the
/// first match, this takes the lowest id, which is deterministic.
pub(crate) fn apply_llama_cpp_special_rules(
    tokens: &[String],
    token_to_id: &HashMap<String, u32>,
    infos: &mut [TokenInfo],
    ids: &mut SpecialIds,
    model_name: &str,
) -> Vec<u32> {
    let find_first = |texts: &[&str]| -> Option<u32> {
        texts
            .iter()
            .filter_map(|t| token_to_id.get(*t).copied())
            .min()
    };
    let promote = |id: u32, infos: &mut [TokenInfo]| {
        if let Some(info) = infos.get_mut(id as usize) {
            if info.kind != TokenKind::Control {
                tracing::debug!(
                    "token {id} {:?} looks like a control token; treating it as control",
                    tokens.get(id as usize)
                );
                info.kind = TokenKind::Control;
            }
        }
    };

    for (slot, texts) in [
        (&mut ids.eot, EOT_TEXTS),
        (&mut ids.eom, EOM_TEXTS),
        (&mut ids.fim_pre, FIM_PRE_TEXTS),
        (&mut ids.fim_suf, FIM_SUF_TEXTS),
        (&mut ids.fim_mid, FIM_MID_TEXTS),
        (&mut ids.fim_pad, FIM_PAD_TEXTS),
        (&mut ids.fim_rep, FIM_REP_TEXTS),
        (&mut ids.fim_sep, FIM_SEP_TEXTS),
    ] {
        if slot.is_none() {
            if let Some(id) = find_first(texts) {
                *slot = Some(id);
                promote(id, infos);
            }
        }
    }

    let mut eog: BTreeSet<u32> = BTreeSet::new();
    for id in [ids.fim_pad, ids.fim_rep, ids.fim_sep]
        .into_iter()
        .flatten()
    {
        eog.insert(id);
    }
    for text in EOG_TEXTS {
        if let Some(&id) = token_to_id.get(*text) {
            eog.insert(id);
            promote(id, infos);
        }
    }

    // gpt-oss: these are rendered as ordinary user-defined tokens.
    for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(&id) = token_to_id.get(text) {
            infos[id as usize].kind = TokenKind::UserDefined;
        }
    }

    for id in [ids.eos, ids.eot, ids.eom].into_iter().flatten() {
        eog.insert(id);
    }

    // o200k_harmony / solar-open: `<|end|>` does not end generation there.
    let text_of = |id: u32| tokens.get(id as usize).map(String::as_str).unwrap_or("");
    let has = |eog: &BTreeSet<u32>, t: &str| eog.iter().any(|&id| text_of(id) == t);
    if let Some(&end_id) = token_to_id.get("<|end|>") {
        let has_call = has(&eog, "<|call|>") || has(&eog, "<|calls|>");
        if eog.contains(&end_id) && has_call && (has(&eog, "<|return|>") || has(&eog, "<|flush|>"))
        {
            eog.remove(&end_id);
            infos[end_id as usize].kind = TokenKind::UserDefined;
        }
    }
    // gemma4 / paddleocr: `</s>` is not an end-of-generation token there.
    if let Some(&s_id) = token_to_id.get("</s>") {
        if eog.contains(&s_id) && has(&eog, "<|tool_response>") {
            eog.remove(&s_id);
            infos[s_id as usize].kind = TokenKind::Normal;
        }
    }

    // Per-model strip attributes (llama.cpp sets them by model name).
    let name = model_name.to_lowercase();
    if name.contains("phi-3") || name.contains("phi3") {
        for info in infos.iter_mut() {
            if info.kind.is_matched_in_text() {
                info.rstrip = true;
            }
        }
        if let Some(&id) = token_to_id.get("</s>") {
            infos[id as usize].rstrip = true;
        }
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(&id) = token_to_id.get(t) {
                infos[id as usize].rstrip = false;
            }
        }
    }

    eog.into_iter().collect()
}

/// The ids whose text is matched in input text, longest text first (llama.cpp's
/// special-token cache order).
pub(crate) fn special_match_order(tokens: &[String], infos: &[TokenInfo]) -> Vec<u32> {
    let mut ids: Vec<u32> = infos
        .iter()
        .enumerate()
        .filter(|(i, info)| info.kind.is_matched_in_text() && !tokens[*i].is_empty())
        .map(|(i, _)| i as u32)
        .collect();
    ids.sort_by(|&a, &b| {
        tokens[b as usize]
            .len()
            .cmp(&tokens[a as usize].len())
            .then(a.cmp(&b))
    });
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(
        tokens: &[&str],
        kinds: &[TokenKind],
    ) -> (Vec<String>, HashMap<String, u32>, Vec<TokenInfo>) {
        let tokens: Vec<String> = tokens.iter().map(|s| s.to_string()).collect();
        let map = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let infos = kinds
            .iter()
            .map(|&kind| TokenInfo {
                kind,
                lstrip: false,
                rstrip: false,
            })
            .collect();
        (tokens, map, infos)
    }

    #[test]
    fn eog_includes_eos_eot_and_fim_like_llama_cpp() {
        use TokenKind::*;
        let (tokens, map, mut infos) = setup(
            &[
                "a",
                "<|endoftext|>",
                "<|im_end|>",
                "<|fim_pad|>",
                "<|repo_name|>",
                "<|file_sep|>",
                "<|im_start|>",
            ],
            &[Normal, Control, Normal, Control, Control, Control, Control],
        );
        let mut ids = SpecialIds {
            eos: Some(2),
            ..Default::default()
        };
        let eog = apply_llama_cpp_special_rules(&tokens, &map, &mut infos, &mut ids, "");
        assert_eq!(eog, vec![1, 2, 3, 4, 5]);
        // `<|im_end|>` was promoted to control.
        assert_eq!(infos[2].kind, Control);
        assert_eq!(ids.eot, Some(1));
    }

    #[test]
    fn match_order_is_longest_first() {
        use TokenKind::*;
        let (tokens, _, infos) = setup(
            &["<a>", "<abc>", "x", "<ab>"],
            &[Control, UserDefined, Normal, Unknown],
        );
        assert_eq!(special_match_order(&tokens, &infos), vec![1, 3, 0]);
    }
}
