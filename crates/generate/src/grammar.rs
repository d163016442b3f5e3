//! Grammar-constrained decoding with [llguidance]: JSON schemas and Lark
//! grammars enforced token by token, so the output always parses.
//!
//! A [`GrammarCompiler`] is built once per tokenizer (it indexes every token's
//! bytes in a trie); [`GrammarCompiler::compile`] then gives a fresh
//! [`GrammarConstraint`] per generation, which masks the logits before each
//! draw and advances with the chosen token.

use std::fmt;
use std::sync::Arc;

use llguidance::api::{GrammarWithLexer, TopLevelGrammar};
use llguidance::toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;
use tuneup_tokenize::Tokenizer;

use crate::error::{Error, Result};

/// What the output must match.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// One JSON value conforming to this JSON schema (`{}` or `{"type": "object"}` for any
    /// value / any object).
    JsonSchema(Value),
    /// A grammar in llguidance's Lark dialect. Rules may reference the JSON schemas in
    /// `schemas` as `@name`.
    Lark {
        /// The Lark text; its `start` rule is the whole output.
        grammar: String,
        /// Named JSON schemas the grammar references with `@name`.
        schemas: Vec<(String, Value)>,
    },
}

impl Grammar {
    fn to_llguidance(&self) -> TopLevelGrammar {
        match self {
            Grammar::JsonSchema(schema) => {
                TopLevelGrammar::from_json_schema(compact_json(schema.clone()))
            }
            Grammar::Lark { grammar, schemas } => {
                let mut grammars = vec![GrammarWithLexer::from_lark(grammar.clone())];
                grammars.extend(schemas.iter().map(|(name, schema)| GrammarWithLexer {
                    name: Some(name.clone()),
                    json_schema: Some(compact_json(schema.clone())),
                    ..GrammarWithLexer::default()
                }));
                TopLevelGrammar {
                    grammars,
                    max_tokens: None,
                }
            }
        }
    }
}

/// JSON written as Python's `json.dumps` writes it (`", "` and `": "`, no other
/// whitespace): what chat models were trained on, and it keeps a small model from
/// wandering into endless whitespace. A schema's own `x-guidance` options win.
fn compact_json(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.entry("x-guidance").or_insert_with(|| {
            serde_json::json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
            })
        });
    } else if schema == Value::Bool(true) {
        return compact_json(serde_json::json!({}));
    }
    schema
}

/// Compiles grammars for one tokenizer. Cheap to clone (shared state).
#[derive(Clone)]
pub struct GrammarCompiler {
    factory: Arc<ParserFactory>,
    /// End-of-generation tokens: allowed whenever the grammar is complete.
    eog: Arc<Vec<u32>>,
    vocab: usize,
}

impl fmt::Debug for GrammarCompiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrammarCompiler")
            .field("vocab", &self.vocab)
            .finish_non_exhaustive()
    }
}

impl GrammarCompiler {
    /// Indexes `tokenizer`'s vocabulary (about 0.1–0.5 s for 150k tokens).
    pub fn new(tokenizer: &Tokenizer) -> Result<Self> {
        let vocab = tokenizer.vocab_size();
        let eog: Vec<u32> = tokenizer.eog_ids().to_vec();
        let eos = tokenizer
            .eos_id()
            .or_else(|| eog.first().copied())
            .ok_or_else(|| Error::Grammar("the vocabulary has no end-of-sequence token".into()))?;
        let words: Vec<Vec<u8>> = (0..vocab as u32)
            .map(|id| {
                let bytes = tokenizer.token_bytes(id).unwrap_or_default();
                if tokenizer.is_special(id) && !bytes.is_empty() {
                    // llguidance's marker for tokens that only match as themselves.
                    let mut marked = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    marked.extend_from_slice(&bytes);
                    marked
                } else {
                    bytes
                }
            })
            .collect();
        let info = TokRxInfo {
            vocab_size: vocab as u32,
            tok_eos: eos,
            tok_bos: tokenizer.bos_id(),
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: None,
        };
        let env = TokenizerBytes {
            trie: TokTrie::from(&info, &words),
            tokenizer: tokenizer.clone(),
        };
        let env: llguidance::toktrie::TokEnv = Arc::new(env);
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| Error::Grammar(e.to_string()))?;
        factory.quiet();
        Ok(Self {
            factory: Arc::new(factory),
            eog: Arc::new(eog),
            vocab,
        })
    }

    /// A constraint that enforces `grammar` from the first generated token on.
    pub fn compile(&self, grammar: &Grammar) -> Result<GrammarConstraint> {
        let parser = self
            .factory
            .create_parser(grammar.to_llguidance())
            .map_err(|e| Error::Grammar(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::Grammar(e));
        }
        Ok(GrammarConstraint {
            matcher,
            eog: self.eog.clone(),
            vocab: self.vocab,
            finished: false,
        })
    }
}

/// The state of one constrained generation.
pub struct GrammarConstraint {
    matcher: Matcher,
    eog: Arc<Vec<u32>>,
    vocab: usize,
    finished: bool,
}

impl fmt::Debug for GrammarConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrammarConstraint")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl GrammarConstraint {
    /// Sets the logits of every token the grammar forbids next to `-inf`. End-of-generation
    /// tokens are allowed exactly when the output so far is complete.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let allowed = self
            .matcher
            .compute_mask()
            .map_err(|e| Error::Constraint(e.to_string()))?;
        let accepting = self
            .matcher
            .is_accepting()
            .map_err(|e| Error::Constraint(e.to_string()))?;
        for (id, l) in logits.iter_mut().enumerate() {
            let ok = id < self.vocab && allowed.is_allowed(id as TokenId);
            if !ok {
                *l = f32::NEG_INFINITY;
            }
        }
        for &e in self.eog.iter() {
            if let Some(l) = logits.get_mut(e as usize) {
                if !accepting {
                    *l = f32::NEG_INFINITY;
                } else if *l == f32::NEG_INFINITY {
                    // The grammar allows its one EOS id; the model may end with any of its EOG ids.
                    *l = -1e30;
                }
            }
        }
        if logits.iter().all(|l| *l == f32::NEG_INFINITY) {
            return Err(Error::Constraint(
                "no token can continue the output within the grammar".into(),
            ));
        }
        Ok(())
    }

    /// Advances past `token` (the one drawn from the masked logits).
    pub fn accept(&mut self, token: u32) -> Result<()> {
        if self.eog.contains(&token) {
            self.finished = true;
            return Ok(());
        }
        self.matcher
            .consume_token(token)
            .map_err(|e| Error::Constraint(e.to_string()))?;
        if self.matcher.is_stopped() {
            self.finished = true;
        }
        Ok(())
    }

    /// Whether the grammar is complete and allows nothing more (generation should stop).
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// llguidance's view of the tokenizer: every token's bytes, and our encoder for the
/// text it wants tokenized.
struct TokenizerBytes {
    trie: TokTrie,
    tokenizer: Tokenizer,
}

impl TokenizerEnv for TokenizerBytes {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) => self
                .tokenizer
                .encode(text, false)
                .unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}
