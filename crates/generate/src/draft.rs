//! A small draft model for speculative decoding: it proposes a few tokens
//! greedily, the target model checks them all in one pass.

use tuneup_models::{Decoder, DecoderState, LogitsFor};

use crate::error::{Error, Result};
use crate::sampling::argmax;

/// A draft model with its own cache, kept in step with the target's context.
#[derive(Debug)]
pub struct DraftModel {
    decoder: Decoder,
    state: DecoderState,
    cached: Vec<u32>,
    max_draft: usize,
}

impl DraftModel {
    /// Wraps `decoder` (it must share the target's tokenizer) proposing up
    /// to `max_draft` tokens at a time.
    pub fn new(decoder: Decoder, target_vocab: usize, max_draft: usize) -> Result<Self> {
        let own = decoder.embedding().rows();
        // Vocabularies may differ in padding rows; real ids must agree.
        if own.abs_diff(target_vocab) > 1024 {
            return Err(Error::DraftMismatch {
                draft_vocab: own,
                target_vocab,
            });
        }
        let state = decoder.new_state();
        Ok(Self {
            decoder,
            state,
            cached: Vec::new(),
            max_draft: max_draft.max(1),
        })
    }

    /// Most tokens proposed at once.
    pub fn max_draft(&self) -> usize {
        self.max_draft
    }

    /// Up to `max` (and at most [`Self::max_draft`]) greedy proposals
    /// continuing `context`.
    pub fn propose(&mut self, context: &[u32], max: usize) -> Result<Vec<u32>> {
        let n = max.min(self.max_draft);
        if n == 0 || context.len() + n >= self.decoder.context_length() {
            return Ok(Vec::new());
        }
        let common = self
            .cached
            .iter()
            .zip(context)
            .take_while(|(a, b)| a == b)
            .count()
            .min(context.len() - 1);
        self.state.truncate(common);
        self.cached.truncate(common);
        let vocab = self.decoder.embedding().rows() as u32;
        let mut logits = self
            .decoder
            .forward(&context[common..], &mut self.state, LogitsFor::Last)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        self.cached.extend_from_slice(&context[common..]);
        let mut draft = Vec::with_capacity(n);
        for i in 0..n {
            let t = argmax(&logits);
            if t >= vocab {
                break;
            }
            draft.push(t);
            if i + 1 == n {
                break;
            }
            logits = self
                .decoder
                .forward(&[t], &mut self.state, LogitsFor::Last)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            self.cached.push(t);
        }
        Ok(draft)
    }

    /// Tells the draft which tokens the target kept, so its cache can roll back.
    pub fn accepted(&mut self, target_context: &[u32]) -> Result<()> {
        let common = self
            .cached
            .iter()
            .zip(target_context)
            .take_while(|(a, b)| a == b)
            .count();
        self.state.truncate(common);
        self.cached.truncate(common);
        Ok(())
    }
}
