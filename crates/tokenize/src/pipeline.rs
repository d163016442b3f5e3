//! The `tokenizers` pipelines equivalent to llama.cpp's tokenizers.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{
    NormalizerWrapper, Prepend, Replace, Sequence as NormalizerSequence,
};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::bytelevel;
use crate::error::{Error, Result};
use crate::pretokenize::PreTokenizerSpec;

fn vocab_of(token_to_id: &HashMap<String, u32>) -> Vocab {
    token_to_id.iter().map(|(k, &v)| (k.clone(), v)).collect()
}

/// Byte-level BPE ("gpt2" GGUF vocabularies): llama.cpp's regexes as `Split`s, then the
/// byte-to-character mapping, then BPE with the GGUF merges.
///
/// Also returns the id of the hidden "missing byte" token, if one was needed.
pub(crate) fn byte_level_bpe(
    token_to_id: &HashMap<String, u32>,
    merges: Vec<(String, String)>,
    spec: &PreTokenizerSpec,
) -> Result<(tokenizers::Tokenizer, Option<u32>)> {
    let mut vocab = vocab_of(token_to_id);
    let mut builder = BPE::builder();
    let mut blocker_id = None;
    if !bytelevel::all_bytes_in(token_to_id) {
        // llama.cpp keeps characters missing from the vocabulary as symbols that block
        // merges and drops them at the end; `tokenizers` would drop them first and merge
        // their neighbours. A hidden "unknown" token reproduces llama.cpp; `encode`
        // filters it out.
        let id = u32::try_from(token_to_id.len()).map_err(|_| {
            Error::tokenizers(
                "building the BPE model from GGUF metadata",
                "too many tokens",
            )
        })?;
        vocab.insert(bytelevel::BLOCKER_TOKEN.to_string(), id);
        builder = builder.unk_token(bytelevel::BLOCKER_TOKEN.to_string());
        blocker_id = Some(id);
    }
    let bpe = builder
        .vocab_and_merges(vocab, merges)
        .ignore_merges(spec.ignore_merges)
        .build()
        .map_err(|e| Error::tokenizers("building the BPE model from GGUF metadata", e))?;
    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    for re in &spec.regexes {
        let split = Split::new(
            SplitPattern::Regex((*re).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| Error::tokenizers(format!("compiling pre-tokenizer regex {re:?}"), e))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    let mut t = tokenizers::Tokenizer::new(bpe);
    t.with_pre_tokenizer(Some(PreSequence::new(steps)));
    t.with_decoder(Some(ByteLevel::default()));
    Ok((t, blocker_id))
}

/// SentencePiece ("llama" GGUF vocabularies) as BPE, like Hugging Face's
/// `LlamaConverter`: optional `▁` prefix and spaces as `▁`, score-ranked merges with
/// byte fallback, and the matching decoder.
pub(crate) fn sentencepiece_bpe(
    token_to_id: &HashMap<String, u32>,
    merges: Vec<(String, String)>,
    unk_token: Option<String>,
    add_space_prefix: bool,
) -> Result<tokenizers::Tokenizer> {
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab_of(token_to_id), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk_token {
        builder = builder.unk_token(unk);
    }
    let bpe = builder
        .build()
        .map_err(|e| Error::tokenizers("building the SentencePiece-equivalent BPE model", e))?;
    let replace = |from: &str, to: &str| -> Result<Replace> {
        Replace::new(from, to)
            .map_err(|e| Error::tokenizers("building the SentencePiece normalizer", e))
    };
    let mut norm: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        norm.push(Prepend::new("▁".into()).into());
    }
    norm.push(replace(" ", "▁")?.into());
    let mut dec: Vec<DecoderWrapper> = vec![
        DecoderWrapper::Replace(replace("▁", " ")?),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        dec.push(Strip::new(' ', 1, 0).into());
    }
    let mut t = tokenizers::Tokenizer::new(bpe);
    t.with_normalizer(Some(NormalizerSequence::new(norm)));
    t.with_decoder(Some(DecoderSequence::new(dec)));
    Ok(t)
}
