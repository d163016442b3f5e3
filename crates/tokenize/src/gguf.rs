//! Building a [`Tokenizer`] from GGUF metadata, following llama.cpp's `llama_vocab::load`.

use std::collections::{HashMap, HashSet};

use candle_core::quantized::gguf_file::Value;
use tokenizers::AddedToken;

use crate::bytelevel;
use crate::error::{Error, Result};
use crate::gguf_meta::Meta;
use crate::pipeline;
use crate::pretokenize;
use crate::spm;
use crate::tokenizer::{DecodeMode, EncodeMode, Tokenizer};
use crate::vocab::{self, SpecialIds, TokenInfo, TokenKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelKind {
    /// `tokenizer.ggml.model = "gpt2"`: byte-level BPE with merges.
    Bpe,
    /// `tokenizer.ggml.model = "llama"`: SentencePiece with scores.
    Spm,
}

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";

fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::InvalidMetadata {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl Tokenizer {
    /// Builds a tokenizer from GGUF metadata, reproducing llama.cpp's tokenizer.
    ///
    /// Reads `tokenizer.ggml.model` (`"gpt2"` byte-level BPE or `"llama"` SentencePiece),
    /// `tokens`, `merges`, `scores`, `token_type`, the `bos`/`eos`/`eot`/`eom`/`padding`
    /// token ids, `add_bos_token`/`add_eos_token`, `add_space_prefix`,
    /// `tokenizer.ggml.pre` and `tokenizer.chat_template`.
    ///
    /// Errors name the missing or malformed key; an unknown `tokenizer.ggml.pre` is an
    /// error ([`Error::UnknownPreTokenizer`]) rather than a silent fallback.
    pub fn from_gguf(metadata: &HashMap<String, Value>) -> Result<Self> {
        let meta = Meta(metadata);
        let model_name = meta.str(KEY_MODEL)?.ok_or(Error::MissingKey {
            key: KEY_MODEL.into(),
            what: "it names the tokenizer model",
        })?;
        let kind = match model_name {
            "gpt2" => ModelKind::Bpe,
            "llama" => ModelKind::Spm,
            other => {
                return Err(Error::UnsupportedModel {
                    model: other.to_string(),
                })
            }
        };
        let pre = match kind {
            ModelKind::Bpe => Some(pretokenize::spec_for(meta.str("tokenizer.ggml.pre")?)?),
            ModelKind::Spm => None,
        };

        // Vocabulary.
        let raw_tokens = meta.str_array(KEY_TOKENS)?.ok_or(Error::MissingKey {
            key: KEY_TOKENS.into(),
            what: "it holds the vocabulary",
        })?;
        if raw_tokens.is_empty() {
            return Err(invalid(KEY_TOKENS, "the vocabulary is empty"));
        }
        let n = raw_tokens.len();
        if u32::try_from(n).is_err() {
            return Err(invalid(
                KEY_TOKENS,
                format!("{n} tokens do not fit in u32 ids"),
            ));
        }
        let tokens: Vec<String> = raw_tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.is_empty() {
                    format!("[EMPTY_{i}]")
                } else {
                    t.to_string()
                }
            })
            .collect();
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            if let Some(prev) = token_to_id.insert(t.clone(), i as u32) {
                return Err(invalid(
                    KEY_TOKENS,
                    format!("duplicate token {t:?} has ids {prev} and {i}"),
                ));
            }
        }
        let scores = meta.f32_array(KEY_SCORES)?;
        if let Some(s) = &scores {
            if s.len() < n {
                return Err(invalid(
                    KEY_SCORES,
                    format!("{} scores for {n} tokens", s.len()),
                ));
            }
        }
        let types = meta.int_array(KEY_TYPES)?;
        if let Some(t) = &types {
            if t.len() < n {
                return Err(invalid(
                    KEY_TYPES,
                    format!("{} token types for {n} tokens", t.len()),
                ));
            }
        }
        let mut infos: Vec<TokenInfo> = (0..n)
            .map(|i| TokenInfo {
                kind: types
                    .as_ref()
                    .map_or(TokenKind::Normal, |t| TokenKind::from_gguf_type(t[i])),
                lstrip: false,
                rstrip: false,
            })
            .collect();

        // Special ids: llama.cpp's defaults per model, then the metadata.
        let (mut bos, mut eos, mut unk) = match kind {
            ModelKind::Spm => (Some(1u32), Some(2u32), Some(0u32)),
            ModelKind::Bpe => (Some(11), Some(11), None),
        };
        if pre.as_ref().is_some_and(|p| p.no_bos) {
            bos = None;
        }
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        bos = in_range(bos);
        eos = in_range(eos);
        unk = in_range(unk);
        let read_id = |key: &str, default: Option<u32>| -> Result<Option<u32>> {
            let full = format!("tokenizer.ggml.{key}");
            Ok(match meta.uint(&full)? {
                Some(v) if v < n as u64 => Some(v as u32),
                Some(v) => {
                    tracing::warn!("GGUF `{full}` = {v} is out of range ({n} tokens); ignoring it");
                    default
                }
                None => default,
            })
        };
        bos = read_id("bos_token_id", bos)?;
        eos = read_id("eos_token_id", eos)?;
        unk = read_id("unknown_token_id", unk)?;
        let mut ids = SpecialIds {
            eos,
            eot: read_id("eot_token_id", None)?,
            eom: read_id("eom_token_id", None)?,
            fim_pre: read_id("fim_pre_token_id", read_id("prefix_token_id", None)?)?,
            fim_suf: read_id("fim_suf_token_id", read_id("suffix_token_id", None)?)?,
            fim_mid: read_id("fim_mid_token_id", read_id("middle_token_id", None)?)?,
            fim_pad: read_id("fim_pad_token_id", None)?,
            fim_rep: read_id("fim_rep_token_id", None)?,
            fim_sep: read_id("fim_sep_token_id", None)?,
        };

        let add_bos = meta
            .bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(match &pre {
                Some(p) => p.add_bos,
                None => true,
            });
        let add_eos = meta.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(invalid(
                "tokenizer.ggml.add_bos_token",
                "it is true, but tokenizer.ggml.bos_token_id is not set",
            ));
        }
        if add_eos && eos.is_none() {
            return Err(invalid(
                "tokenizer.ggml.add_eos_token",
                "it is true, but tokenizer.ggml.eos_token_id is not set",
            ));
        }
        let add_space_prefix = kind == ModelKind::Spm
            && meta
                .bool("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(true);

        let general_name = meta.str("general.name").ok().flatten().unwrap_or("");
        let eog_ids = vocab::apply_llama_cpp_special_rules(
            &tokens,
            &token_to_id,
            &mut infos,
            &mut ids,
            general_name,
        );
        let special_order = vocab::special_match_order(&tokens, &infos);

        // The `tokenizers` pipeline.
        let (mut inner, blocker_id) = match kind {
            ModelKind::Bpe => {
                let merges = parse_merges(&meta, &token_to_id)?;
                let Some(spec) = pre.as_ref() else {
                    return Err(invalid(
                        "tokenizer.ggml.pre",
                        "no pre-tokenizer for a BPE vocabulary",
                    ));
                };
                pipeline::byte_level_bpe(&token_to_id, merges, spec)?
            }
            ModelKind::Spm => {
                let zeros;
                let scores: &[f32] = match &scores {
                    Some(s) => s,
                    None => {
                        zeros = vec![0.0; n];
                        &zeros
                    }
                };
                let merges = spm::merges_from_scores(&tokens, scores, &token_to_id, |_| true);
                let unk_text = unk.map(|u| tokens[u as usize].clone());
                let t =
                    pipeline::sentencepiece_bpe(&token_to_id, merges, unk_text, add_space_prefix)?;
                (t, None)
            }
        };
        let (special, user): (Vec<AddedToken>, Vec<AddedToken>) = special_order
            .iter()
            .map(|&id| {
                let info = &infos[id as usize];
                AddedToken::from(tokens[id as usize].clone(), info.kind.is_skippable())
                    .normalized(false)
                    .lstrip(info.lstrip)
                    .rstrip(info.rstrip)
            })
            .partition(|t| t.special);
        inner.add_special_tokens(&special);
        inner.add_tokens(&user);

        let pieces = tokens
            .iter()
            .zip(&infos)
            .map(|(text, info)| match info.kind {
                TokenKind::Control | TokenKind::Unknown | TokenKind::UserDefined => {
                    text.as_bytes().to_vec()
                }
                TokenKind::Byte => spm::parse_byte_token(text)
                    .map(|b| vec![b])
                    .unwrap_or_default(),
                TokenKind::Normal => match kind {
                    ModelKind::Bpe => bytelevel::decode_token(text),
                    ModelKind::Spm => text.replace('▁', " ").into_bytes(),
                },
                TokenKind::Unused => Vec::new(),
            })
            .collect();

        let chat_template = meta.str("tokenizer.chat_template")?.map(str::to_string);

        Ok(Tokenizer {
            inner,
            inner_plain_specials: std::sync::OnceLock::new(),
            encode_mode: EncodeMode::LlamaCpp,
            decode_mode: DecodeMode::Bytes {
                strip_leading_space: add_space_prefix,
            },
            tokens,
            infos,
            pieces,
            token_to_id,
            special_order,
            blocker_id,
            bos_id: bos,
            eos_id: eos,
            add_bos,
            add_eos,
            eog_ids,
            chat_template,
        })
    }
}

/// Reads `tokenizer.ggml.merges` like llama.cpp (split at the first space after the
/// first byte; the first occurrence of a pair wins), keeping only merges whose parts and
/// result are in the vocabulary (others can never produce a token).
fn parse_merges(
    meta: &Meta<'_>,
    token_to_id: &HashMap<String, u32>,
) -> Result<Vec<(String, String)>> {
    let raw = meta.str_array(KEY_MERGES)?.ok_or(Error::MissingKey {
        key: KEY_MERGES.into(),
        what: "BPE (`gpt2`) vocabularies need their merges",
    })?;
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(raw.len());
    let mut merges = Vec::with_capacity(raw.len());
    let mut skipped = 0usize;
    for word in raw {
        let Some(pos) = word
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == ' ')
            .map(|(i, _)| i)
        else {
            skipped += 1;
            continue;
        };
        let (a, b) = (&word[..pos], &word[pos + 1..]);
        if !seen.insert((a, b)) {
            continue;
        }
        if token_to_id.contains_key(a)
            && token_to_id.contains_key(b)
            && token_to_id.contains_key(&format!("{a}{b}"))
        {
            merges.push((a.to_string(), b.to_string()));
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        tracing::debug!("skipped {skipped} GGUF merges that cannot produce a vocabulary token");
    }
    Ok(merges)
}
