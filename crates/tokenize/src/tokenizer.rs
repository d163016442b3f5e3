//! The [`Tokenizer`]: encoding with llama.cpp's special-token handling, decoding to bytes.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::vocab::{TokenInfo, TokenKind};

/// How [`Tokenizer::encode`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncodeMode {
    /// llama.cpp: split out special tokens (longest first), encode each piece of text on
    /// its own, then add BOS/EOS according to `add_bos`/`add_eos`.
    LlamaCpp,
    /// Hugging Face: let `tokenizers` do everything, including its post-processor.
    HfPostProcessor,
    /// Hugging Face without post-processor; BOS/EOS added from `tokenizer_config.json`.
    HfManual,
}

/// How ids become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeMode {
    /// Concatenate per-token byte pieces, optionally drop one leading space, then
    /// convert lossily to UTF-8.
    Bytes {
        /// Drop one leading space of the whole output (SentencePiece's dummy prefix).
        strip_leading_space: bool,
    },
    /// Defer to `tokenizers`' decoder (for decoders that are not byte-oriented).
    Generic,
}

/// A text tokenizer built from GGUF metadata or a Hugging Face model folder.
///
/// Built from GGUF, it reproduces llama.cpp's tokenization (`llama_tokenize` with
/// `parse_special = true`): special and user-defined token texts are recognised anywhere
/// in the input, the rest is pre-tokenized with the regexes llama.cpp uses for the
/// vocabulary's `tokenizer.ggml.pre` and encoded with byte-level BPE, or, for
/// SentencePiece vocabularies, with an equivalent score-ranked BPE.
///
/// The underlying [`tokenizers::Tokenizer`] is available from [`Tokenizer::hf_tokenizer`].
#[derive(Clone)]
pub struct Tokenizer {
    pub(crate) inner: tokenizers::Tokenizer,
    /// `inner` with special added tokens treated as text (`parse_special = false`).
    pub(crate) inner_plain_specials: std::sync::OnceLock<tokenizers::Tokenizer>,
    pub(crate) encode_mode: EncodeMode,
    pub(crate) decode_mode: DecodeMode,
    /// Raw token text per id (empty for ids the vocabulary does not define).
    pub(crate) tokens: Vec<String>,
    pub(crate) infos: Vec<TokenInfo>,
    /// Decoded bytes per id, for [`DecodeMode::Bytes`].
    pub(crate) pieces: Vec<Vec<u8>>,
    pub(crate) token_to_id: HashMap<String, u32>,
    /// Ids matched in input text, longest text first ([`EncodeMode::LlamaCpp`]).
    pub(crate) special_order: Vec<u32>,
    /// Hidden id standing for characters missing from a byte-level vocabulary; it only
    /// blocks merges and is removed from encodings.
    pub(crate) blocker_id: Option<u32>,
    pub(crate) bos_id: Option<u32>,
    pub(crate) eos_id: Option<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    pub(crate) eog_ids: Vec<u32>,
    pub(crate) chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("encode_mode", &self.encode_mode)
            .field("decode_mode", &self.decode_mode)
            .field("bos", &self.bos_token())
            .field("eos", &self.eos_token())
            .field("add_bos", &self.add_bos)
            .field("eog_ids", &self.eog_ids)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

/// A piece of input text after special tokens have been split out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// C's `isspace` in the "C" locale, which llama.cpp uses for token lstrip/rstrip.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

impl Tokenizer {
    /// Encodes `text` to token ids.
    ///
    /// Special-token text in `text` (`<|im_start|>`, `<tool_call>`, ...) is always
    /// recognised and becomes that token (llama.cpp's `parse_special = true`).
    /// With `add_special`, BOS (and EOS) are added when the model asks for them
    /// (`tokenizer.ggml.add_bos_token` / `add_eos_token`, or the Hugging Face
    /// post-processor / `tokenizer_config.json`).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.encode_with_options(text, add_special, true)
    }

    /// Like [`Tokenizer::encode`], with llama.cpp's `parse_special` flag: when it is
    /// `false`, control tokens written in `text` are tokenized as plain text (user-defined
    /// tokens such as `<tool_call>` are still recognised, as in llama.cpp and Hugging Face).
    pub fn encode_with_options(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let inner = if parse_special {
            &self.inner
        } else {
            self.inner_plain_specials.get_or_init(|| {
                let mut t = self.inner.clone();
                t.set_encode_special_tokens(true);
                t
            })
        };
        match self.encode_mode {
            EncodeMode::HfPostProcessor => {
                let enc = inner
                    .encode_fast(text, add_special)
                    .map_err(|e| Error::tokenizers("encoding text", e))?;
                Ok(enc.get_ids().to_vec())
            }
            EncodeMode::HfManual => {
                let enc = inner
                    .encode_fast(text, false)
                    .map_err(|e| Error::tokenizers("encoding text", e))?;
                let mut out = Vec::with_capacity(enc.len() + 2);
                if add_special && self.add_bos {
                    out.extend(self.bos_id);
                }
                out.extend_from_slice(enc.get_ids());
                if add_special && self.add_eos {
                    out.extend(self.eos_id);
                }
                Ok(out)
            }
            EncodeMode::LlamaCpp => {
                let mut out = Vec::new();
                if add_special && self.add_bos {
                    out.extend(self.bos_id);
                }
                for fragment in self.partition(text, parse_special) {
                    match fragment {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => {
                            let enc = inner
                                .encode_fast(t, false)
                                .map_err(|e| Error::tokenizers("encoding text", e))?;
                            match self.blocker_id {
                                Some(b) => out.extend(enc.get_ids().iter().filter(|&&id| id != b)),
                                None => out.extend_from_slice(enc.get_ids()),
                            }
                        }
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.eos_id);
                }
                Ok(out)
            }
        }
    }

    /// Splits special tokens out of `text` exactly as llama.cpp's
    /// `tokenizer_st_partition` does: for each special token, longest text first, every
    /// occurrence in every remaining piece of text is cut out.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut fragments = vec![Fragment::Text(text)];
        for &id in &self.special_order {
            if !parse_special && self.infos[id as usize].kind != TokenKind::UserDefined {
                continue;
            }
            let needle = self.tokens[id as usize].as_str();
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let info = &self.infos[id as usize];
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(pos) = rest.find(needle) {
                    let mut left = &rest[..pos];
                    if info.lstrip {
                        left = left.trim_end_matches(|c: char| c.is_ascii() && c_isspace(c as u8));
                    }
                    if !left.is_empty() {
                        next.push(Fragment::Text(left));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[pos + needle.len()..];
                    if info.rstrip {
                        rest =
                            rest.trim_start_matches(|c: char| c.is_ascii() && c_isspace(c as u8));
                    }
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// Decodes ids to text.
    ///
    /// With `skip_special`, control tokens (BOS, EOS, `<|im_end|>`, ...) are left out;
    /// user-defined tokens such as `<tool_call>` are always kept. Invalid UTF-8 (for
    /// example a multibyte character cut in half) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        match self.decode_mode {
            DecodeMode::Bytes {
                strip_leading_space,
            } => {
                let mut out = Vec::new();
                for &id in ids {
                    out.extend_from_slice(self.piece_bytes(id, skip_special)?);
                }
                let start = usize::from(strip_leading_space && out.first() == Some(&b' '));
                Ok(String::from_utf8_lossy(&out[start..]).into_owned())
            }
            DecodeMode::Generic => {
                for &id in ids {
                    self.check_id(id)?;
                }
                self.inner
                    .decode(ids, skip_special)
                    .map_err(|e| Error::tokenizers("decoding ids", e))
            }
        }
    }

    pub(crate) fn check_id(&self, id: u32) -> Result<()> {
        if (id as usize) < self.tokens.len() {
            Ok(())
        } else {
            Err(Error::TokenOutOfRange {
                id,
                vocab_size: self.tokens.len(),
            })
        }
    }

    /// The bytes `id` decodes to (empty when skipped), for [`DecodeMode::Bytes`].
    pub(crate) fn piece_bytes(&self, id: u32, skip_special: bool) -> Result<&[u8]> {
        self.check_id(id)?;
        let i = id as usize;
        if skip_special && self.infos[i].kind.is_skippable() {
            return Ok(&[]);
        }
        Ok(self.pieces.get(i).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// The bytes token `id` stands for in generated text (special tokens give their
    /// text), e.g. for grammar-constrained decoding, which matches tokens byte by byte.
    /// `None` for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        self.check_id(id).ok()?;
        match self.decode_mode {
            DecodeMode::Bytes { .. } => self.pieces.get(id as usize).cloned(),
            DecodeMode::Generic => self.inner.decode(&[id], false).ok().map(String::into_bytes),
        }
    }

    /// Number of token ids (the embedding rows a model needs for this vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence id, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-sequence id, if the vocabulary has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Whether `encode(text, true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Text of the BOS token (e.g. `<s>`), for chat templates.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_id.and_then(|id| self.token_text(id))
    }

    /// Text of the EOS token (e.g. `</s>` or `<|im_end|>`), for chat templates.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_id.and_then(|id| self.token_text(id))
    }

    /// End-of-generation ids, sorted: EOS, end-of-turn tokens (`<|im_end|>`,
    /// `<|eot_id|>`, `<|end|>`, ...), end-of-message, and, as in llama.cpp, the FIM
    /// pad/repo/separator tokens.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog_ids
    }

    /// Whether generating `id` should end generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog_ids.binary_search(&id).is_ok()
    }

    /// The Jinja chat template shipped with the model, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The id of a token given its raw vocabulary text (e.g. `"<|im_end|>"`, `"Ġthe"`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }

    /// The raw vocabulary text of a token (e.g. `"Ġthe"` or `"▁the"`), not decoded.
    pub fn id_to_piece(&self, id: u32) -> Option<String> {
        self.token_text(id).map(str::to_string)
    }

    fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens
            .get(id as usize)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// What kind of token `id` is (`None` if out of range).
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.infos.get(id as usize).map(|i| i.kind)
    }

    /// Whether `id` is a control or unknown token, i.e. dropped by `decode(.., true)`.
    pub fn is_special(&self, id: u32) -> bool {
        self.token_kind(id).is_some_and(TokenKind::is_skippable)
    }

    /// The underlying `tokenizers` tokenizer (model, pre-tokenizer, decoder and added
    /// tokens). For GGUF vocabularies, encoding whole texts with it can differ from
    /// [`Tokenizer::encode`] where special tokens overlap, and it never adds BOS.
    pub fn hf_tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
