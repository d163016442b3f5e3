//! Building a [`Tokenizer`] from a Hugging Face model folder.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value as Json;

use crate::bytelevel;
use crate::error::{Error, Result};
use crate::hf_check::{check_tokenizer_json, parse_tokenizer};
use crate::spm;
use crate::tokenizer::{DecodeMode, EncodeMode, Tokenizer};
use crate::vocab::{self, SpecialIds, TokenInfo, TokenKind};

fn read_json(path: &Path) -> Result<Option<Json>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Json {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// A special-token entry of `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_content(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// An id or a list of ids (`generation_config.json`'s `eos_token_id`).
fn ids_of(v: Option<&Json>) -> Vec<u32> {
    match v {
        Some(Json::Number(n)) => n
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .into_iter()
            .collect(),
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect(),
        _ => Vec::new(),
    }
}

/// How to turn one token into bytes, derived from the `decoder` of `tokenizer.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceStyle {
    ByteLevel,
    Metaspace { byte_fallback: bool },
}

/// Recognises the byte-oriented decoders; `None` means "use the generic decoder".
fn piece_style(decoder: Option<&Json>) -> Option<(PieceStyle, bool)> {
    let decoder = decoder?;
    let ty = decoder.get("type")?.as_str()?;
    match ty {
        "ByteLevel" => Some((PieceStyle::ByteLevel, false)),
        "Metaspace" => {
            if decoder.get("replacement").and_then(Json::as_str) != Some("▁") {
                return None;
            }
            let strip = match decoder.get("prepend_scheme").and_then(Json::as_str) {
                Some(scheme) => scheme != "never",
                None => decoder
                    .get("add_prefix_space")
                    .and_then(Json::as_bool)
                    .unwrap_or(true),
            };
            Some((
                PieceStyle::Metaspace {
                    byte_fallback: false,
                },
                strip,
            ))
        }
        "Sequence" => {
            let steps = decoder.get("decoders")?.as_array()?;
            let (mut replace, mut byte_fallback, mut strip) = (false, false, false);
            for step in steps {
                match step.get("type")?.as_str()? {
                    "Replace" => {
                        let pattern = step.get("pattern")?.get("String")?.as_str()?;
                        let content = step.get("content")?.as_str()?;
                        if pattern != "▁" || content != " " || replace {
                            return None;
                        }
                        replace = true;
                    }
                    "ByteFallback" => byte_fallback = true,
                    "Fuse" => {}
                    "Strip" => {
                        let content = step.get("content")?.as_str()?;
                        let start = step.get("start")?.as_u64()?;
                        let stop = step.get("stop")?.as_u64()?;
                        if content != " " || start != 1 || stop != 0 || strip {
                            return None;
                        }
                        strip = true;
                    }
                    _ => return None,
                }
            }
            replace.then_some((PieceStyle::Metaspace { byte_fallback }, strip))
        }
        _ => None,
    }
}

impl Tokenizer {
    /// Builds a tokenizer from a Hugging Face model folder.
    ///
    /// Reads `tokenizer.json` (required), `tokenizer_config.json` (chat template,
    /// `bos_token`/`eos_token`, `add_bos_token`/`add_eos_token`), `chat_template.jinja`
    /// (takes precedence over the config's template, as in `transformers`) and
    /// `generation_config.json` (extra end-of-generation ids), each if present.
    ///
    /// Encoding follows `tokenizer.json` exactly (normalizer included); BOS/EOS come from
    /// `add_bos_token`/`add_eos_token` when the config sets them, otherwise from the
    /// post-processor.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let tok_path = dir.join("tokenizer.json");
        let text = fs_err::read_to_string(&tok_path)?;
        let tok_json = check_tokenizer_json(&text).map_err(|reason| Error::Json {
            path: tok_path.clone(),
            reason,
        })?;
        let inner = parse_tokenizer(&text)
            .map_err(|e| Error::tokenizers(format!("loading {}", tok_path.display()), e))?;
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
        let gen_config = read_json(&dir.join("generation_config.json"))?.unwrap_or(Json::Null);

        // Vocabulary, with added tokens.
        let vocab_map = inner.get_vocab(true);
        let size = vocab_map
            .values()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0)
            .max(inner.get_vocab_size(true));
        if size > 2 * vocab_map.len() + 1024 {
            return Err(Error::Json {
                path: tok_path,
                reason: format!(
                    "token ids are not dense: the largest id is {} for {} tokens",
                    size - 1,
                    vocab_map.len()
                ),
            });
        }
        let mut tokens = vec![String::new(); size];
        for (t, &id) in &vocab_map {
            tokens[id as usize] = t.clone();
        }
        let mut infos: Vec<TokenInfo> = (0..size)
            .map(|_| TokenInfo {
                kind: TokenKind::Normal,
                lstrip: false,
                rstrip: false,
            })
            .collect();
        for (id, added) in inner.get_added_tokens_decoder() {
            if let Some(info) = infos.get_mut(id as usize) {
                info.kind = if added.special {
                    TokenKind::Control
                } else {
                    TokenKind::UserDefined
                };
                info.lstrip = added.lstrip;
                info.rstrip = added.rstrip;
            }
        }
        for (i, t) in tokens.iter().enumerate() {
            if t.is_empty() {
                infos[i].kind = TokenKind::Unused;
            }
        }

        // Special tokens.
        let lookup = |v: Option<String>| v.and_then(|t| vocab_map.get(&t).copied());
        let gen_eos = ids_of(gen_config.get("eos_token_id"));
        let bos_id = lookup(token_content(config.get("bos_token")))
            .or_else(|| ids_of(gen_config.get("bos_token_id")).first().copied());
        let eos_id = lookup(token_content(config.get("eos_token"))).or(gen_eos.first().copied());

        let mut scratch = infos.clone();
        let mut ids = SpecialIds {
            eos: eos_id,
            ..Default::default()
        };
        let token_to_id: HashMap<String, u32> = vocab_map.into_iter().collect();
        let mut eog_ids =
            vocab::apply_llama_cpp_special_rules(&tokens, &token_to_id, &mut scratch, &mut ids, "");
        eog_ids.extend(gen_eos.iter().filter(|&&id| (id as usize) < size));
        eog_ids.sort_unstable();
        eog_ids.dedup();

        let (encode_mode, add_bos, add_eos) = match (
            config.get("add_bos_token").and_then(Json::as_bool),
            config.get("add_eos_token").and_then(Json::as_bool),
        ) {
            (None, None) => {
                let probe = inner
                    .encode_fast("", true)
                    .map_err(|e| Error::tokenizers("probing the post-processor", e))?;
                let ids = probe.get_ids();
                let add_bos = bos_id.is_some() && ids.first().copied() == bos_id;
                let add_eos = eos_id.is_some() && ids.last().copied() == eos_id;
                (EncodeMode::HfPostProcessor, add_bos, add_eos)
            }
            (b, e) => (
                EncodeMode::HfManual,
                b.unwrap_or(false) && bos_id.is_some(),
                e.unwrap_or(false) && eos_id.is_some(),
            ),
        };

        // Decoding.
        let (decode_mode, pieces) = match piece_style(tok_json.get("decoder")) {
            Some((style, strip)) => {
                let pieces = tokens
                    .iter()
                    .map(|t| match style {
                        PieceStyle::ByteLevel => bytelevel::decode_token(t),
                        PieceStyle::Metaspace { byte_fallback } => {
                            match byte_fallback.then(|| spm::parse_byte_token(t)).flatten() {
                                Some(b) => vec![b],
                                None => t.replace('▁', " ").into_bytes(),
                            }
                        }
                    })
                    .collect();
                (
                    DecodeMode::Bytes {
                        strip_leading_space: strip,
                    },
                    pieces,
                )
            }
            None => (DecodeMode::Generic, Vec::new()),
        };

        // Chat template.
        let mut chat_template = match config.get("chat_template") {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Array(list)) => {
                let named = |name: &str| {
                    list.iter()
                        .find(|e| e.get("name").and_then(Json::as_str) == Some(name))
                        .and_then(|e| e.get("template")?.as_str())
                };
                named("default")
                    .or_else(|| list.first().and_then(|e| e.get("template")?.as_str()))
                    .map(str::to_string)
            }
            _ => None,
        };
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            chat_template = Some(fs_err::read_to_string(&jinja)?);
        }

        Ok(Tokenizer {
            inner,
            inner_plain_specials: std::sync::OnceLock::new(),
            encode_mode,
            decode_mode,
            tokens,
            infos,
            pieces,
            token_to_id,
            special_order: Vec::new(),
            blocker_id: None,
            bos_id,
            eos_id,
            add_bos,
            add_eos,
            eog_ids,
            chat_template,
        })
    }
}
