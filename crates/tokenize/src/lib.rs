//! Tokenization for tuneup: tokenizers built from GGUF metadata or Hugging Face
//! `tokenizer.json`, a streaming detokenizer, and chat templates.
//!
//! * [`Tokenizer::from_gguf`] reproduces llama.cpp's tokenizer exactly: byte-level BPE
//!   (`tokenizer.ggml.model = "gpt2"`) with the pre-tokenizer regexes llama.cpp uses for
//!   each `tokenizer.ggml.pre` (qwen2, llama3, smollm, gpt-2, deepseek, starcoder, ...),
//!   or SentencePiece (`"llama"`) converted to an equivalent score-ranked BPE with byte
//!   fallback. Control and user-defined tokens are recognised in input text, BOS is
//!   added as `tokenizer.ggml.add_bos_token` says, and the end-of-generation ids follow
//!   llama.cpp's rules.
//! * [`Tokenizer::from_hf_dir`] loads `tokenizer.json` plus the config files next to it.
//! * [`StreamDecoder`] turns ids into text deltas that never split a UTF-8 character.
//! * [`ChatTemplate`] renders Jinja chat templates the way `transformers`'
//!   `apply_chat_template` does, byte for byte.
//!
//! ```no_run
//! use tuneup_tokenize::{ChatTemplate, Tokenizer};
//! # fn main() -> tuneup_tokenize::Result<()> {
//! # let metadata = std::collections::HashMap::new();
//! let tok = Tokenizer::from_gguf(&metadata)?;
//! let template = ChatTemplate::new(
//!     tok.chat_template().unwrap_or_default(),
//!     tok.bos_token().unwrap_or_default(),
//!     tok.eos_token().unwrap_or_default(),
//! )?;
//! let prompt = template.render(
//!     &[serde_json::json!({"role": "user", "content": "Hi!"})],
//!     None,
//!     true,
//! )?;
//! let ids = tok.encode(&prompt, true)?;
//! assert_eq!(tok.decode(&ids, false)?, prompt);
//! # Ok(()) }
//! ```

mod bytelevel;
mod chat;
mod error;
mod gguf;
mod gguf_meta;
mod hf;
mod hf_check;
mod pipeline;
mod pretokenize;
mod spm;
mod stream;
mod tokenizer;
mod vocab;

pub use chat::ChatTemplate;
pub use error::{Error, Result};
pub use stream::StreamDecoder;
pub use tokenizer::Tokenizer;
pub use vocab::TokenKind;
