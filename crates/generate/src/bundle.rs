//! A model ready to chat: decoder, tokenizer and chat template loaded together.

use serde_json::Value;
use tuneup_models::{load, LoadOptions, LoadedModel, ModelFiles};
use tuneup_tokenize::{ChatTemplate, Tokenizer};

use crate::error::{Error, Result};

/// A decoder with the tokenizer and chat template that belong to it.
#[derive(Debug)]
pub struct ChatModel {
    /// The loaded network and its metadata.
    pub model: LoadedModel,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its chat template, when the checkpoint carries one.
    pub template: Option<ChatTemplate>,
}

impl ChatModel {
    /// Loads weights, tokenizer and template from a GGUF file or HF folder.
    pub fn load(files: &ModelFiles, opts: &LoadOptions) -> Result<Self> {
        let model = load(files, opts)?;
        let tokenizer = match (&model.gguf_metadata, files) {
            (Some(md), _) => Tokenizer::from_gguf(md)?,
            (None, ModelFiles::HfFolder(dir)) => Tokenizer::from_hf_dir(dir)?,
            (None, ModelFiles::Gguf(p)) => {
                return Err(Error::Model(tuneup_models::Error::Config {
                    source_desc: p.display().to_string(),
                    message: "GGUF metadata missing".into(),
                }))
            }
        };
        let template = match tokenizer.chat_template() {
            Some(src) => Some(ChatTemplate::new(
                src,
                tokenizer.bos_token().unwrap_or(""),
                tokenizer.eos_token().unwrap_or(""),
            )?),
            None => None,
        };
        Ok(Self {
            model,
            tokenizer,
            template,
        })
    }

    /// Whether the chat template shows the `tools` it is given (Qwen2.5's does; SmolLM2's ignores
    /// them, so callers add tool instructions themselves).
    pub fn template_renders_tools(&self, tools: &[Value]) -> Result<bool> {
        let probe = [serde_json::json!({"role": "user", "content": "?"})];
        let (with, _) = self.chat_prompt(&probe, Some(tools))?;
        let (without, _) = self.chat_prompt(&probe, None)?;
        Ok(with != without)
    }

    /// Renders `messages` (OpenAI-style JSON) with the model's template and
    /// tokenizes the result, ready for generation. Without a template the
    /// contents are joined with newlines.
    pub fn chat_prompt(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
    ) -> Result<(String, Vec<u32>)> {
        let text = match &self.template {
            Some(t) => t.render(messages, tools, true)?,
            None => messages
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        // As llama.cpp: add BOS when the vocabulary asks for it, unless the
        // template already wrote it.
        let has_bos = self
            .tokenizer
            .bos_token()
            .is_some_and(|b| !b.is_empty() && text.starts_with(b));
        let ids = self.tokenizer.encode(&text, !has_bos)?;
        Ok((text, ids))
    }
}
