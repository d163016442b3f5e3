//! Pre-tokenizer regexes per GGUF `tokenizer.ggml.pre`, as in llama.cpp's `llama-vocab.cpp`.
//!
//! llama.cpp splits text with a list of regexes applied one after the other: each regex
//! splits every piece produced so far into matches and the text between matches. That is
//! exactly a `tokenizers` `Sequence` of `Split(regex, Isolated)` pre-tokenizers, followed
//! by a byte-level mapping without its own regex.

use crate::error::{Error, Result};

/// GPT-2's pattern. llama.cpp implements it by hand, including the trailing `\s+`
/// alternative that its regex string leaves out; it is spelled out here.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const SEED_CODER: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";

const BAILINGMOE: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

const PORO: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

const FALCON: &[&str] = &[
    r"[\p{P}\$\+<=>\^~\|`]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"[0-9][0-9][0-9]",
];

const DEEPSEEK_CODER: &[&str] = &[
    "[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    "[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];

const DEEPSEEK3: &[&str] = &[
    r"\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];

const CHAMELEON: &[&str] = &[
    r"<sentinel:[0-9]+>",
    r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    r"([\t\n]|    |  )",
    r"\p{N}",
    r"[\p{P}!-/:-@\[-`{-~]",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
];

const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"];

/// How llama.cpp pre-tokenizes and post-processes a byte-level BPE vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreTokenizerSpec {
    /// Regexes applied one after the other.
    pub regexes: Vec<&'static str>,
    /// Whether a whole pre-token that is itself in the vocabulary skips the merges.
    pub ignore_merges: bool,
    /// llama.cpp's default for `add_bos` before `tokenizer.ggml.add_bos_token` is read.
    pub add_bos: bool,
    /// Whether llama.cpp clears the default BOS id for this pre-tokenizer.
    pub no_bos: bool,
}

/// Names accepted for `tokenizer.ggml.pre`, for error messages.
pub(crate) const KNOWN: &[&str] = &[
    "default",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
    "deepseek-coder",
    "deepseek-v3",
    "falcon",
    "mpt",
    "starcoder",
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "jina-v2-es",
    "jina-v2-de",
    "a.x-4.0",
    "mellum",
    "modern-bert",
    "jina-v1-en",
    "jina-v2-code",
    "roberta-bpe",
    "refact",
    "command-r",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "megrez",
    "qwen35",
    "stablelm2",
    "olmo",
    "poro-chat",
    "glm4",
    "chatglm-bpe",
    "viking",
    "jais",
    "tekken",
    "smollm",
    "codeshell",
    "bloom",
    "gpt3-finnish",
    "exaone",
    "exaone4",
    "chameleon",
    "minerva-7b",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "minimax-m2",
    "trillion",
    "granite-docling",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan",
    "grok-2",
    "solar-open",
    "mellum2",
];

/// The pre-tokenizer for a `tokenizer.ggml.pre` value (`None`: the key is absent, which
/// llama.cpp treats as "default" with a loud warning).
pub(crate) fn spec_for(pre: Option<&str>) -> Result<PreTokenizerSpec> {
    let spec = |regexes: &[&'static str]| PreTokenizerSpec {
        regexes: regexes.to_vec(),
        ignore_merges: false,
        add_bos: false,
        no_bos: false,
    };
    let Some(pre) = pre else {
        tracing::warn!(
            "GGUF has no `tokenizer.ggml.pre`; using llama.cpp's 'default' pre-tokenizer \
             (generation quality may be degraded)"
        );
        return Ok(spec(DEFAULT));
    };
    let s = match pre {
        "default" => spec(DEFAULT),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreTokenizerSpec {
            ignore_merges: true,
            add_bos: true,
            ..spec(&[LLAMA3])
        },
        "dbrx" | "smaug-bpe" => spec(&[LLAMA3]),
        "deepseek-coder" => spec(DEEPSEEK_CODER),
        "deepseek-v3" => spec(DEEPSEEK3),
        "falcon" => spec(FALCON),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => spec(&[r"\p{N}", GPT2]),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe"
        | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" | "exaone4" => spec(&[GPT2]),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" | "grok-2" => spec(&[QWEN2]),
        "qwen35" => spec(&[QWEN35]),
        "poro-chat" | "bloom" | "gpt3-finnish" => spec(&[PORO]),
        "viking" => spec(&[PORO, r"\p{N}"]),
        "glm4" | "chatglm-bpe" => PreTokenizerSpec {
            no_bos: true,
            ..spec(&[LLAMA3])
        },
        "tekken" => PreTokenizerSpec {
            ignore_merges: true,
            add_bos: true,
            ..spec(&[TEKKEN])
        },
        "chameleon" => PreTokenizerSpec {
            add_bos: true,
            ..spec(CHAMELEON)
        },
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => spec(&[GPT4O]),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => spec(&[BAILINGMOE]),
        "seed-coder" => spec(&[SEED_CODER]),
        other => {
            return Err(Error::UnknownPreTokenizer {
                pre: other.to_string(),
                known: KNOWN.join(", "),
            })
        }
    };
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_resolves_and_compiles() {
        for name in KNOWN {
            let spec = spec_for(Some(name)).unwrap();
            for re in spec.regexes {
                tokenizers::pre_tokenizers::split::Split::new(
                    tokenizers::pre_tokenizers::split::SplitPattern::Regex(re.to_string()),
                    tokenizers::SplitDelimiterBehavior::Isolated,
                    false,
                )
                .unwrap_or_else(|e| panic!("regex for {name} does not compile: {e}"));
            }
        }
    }

    #[test]
    fn unknown_pre_is_a_clear_error() {
        let err = spec_for(Some("no-such-pre")).unwrap_err().to_string();
        assert!(err.contains("no-such-pre"), "{err}");
        assert!(err.contains("tokenizer.ggml.pre"), "{err}");
        assert!(err.contains("qwen2"), "{err}");
    }

    #[test]
    fn llama3_ignores_merges_and_adds_bos() {
        let s = spec_for(Some("llama-bpe")).unwrap();
        assert!(s.ignore_merges && s.add_bos);
        assert_eq!(spec_for(Some("smollm")).unwrap().regexes.len(), 2);
    }
}
