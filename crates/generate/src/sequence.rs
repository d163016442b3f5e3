//! One generation driven step by step from outside, for continuous batching:
//! the caller runs one model step for many sequences at once
//! ([`tuneup_models::Decoder::forward_rows`]) and hands each [`Sequence`] its
//! row of logits. Sampling, stop rules, grammar constraints and streaming are
//! exactly [`crate::Generator`]'s (speculation is not used).

use std::time::{Duration, Instant};

use tuneup_models::{Decoder, DecoderState};
use tuneup_tokenize::Tokenizer;

use crate::emit::{Emitted, Emitter};
use crate::error::Result;
use crate::generator::{
    check_prompt, prefill, FinishReason, GenerateParams, GenerationOutput, GenerationStats,
    TokenSink,
};
use crate::sampling::Sampler;

/// A generation in progress, with its own KV cache.
#[derive(Debug)]
pub struct Sequence<'t> {
    tokenizer: &'t Tokenizer,
    params: GenerateParams,
    sampler: Sampler,
    history: Vec<u32>,
    emitter: Emitter<'t>,
    state: DecoderState,
    stats: GenerationStats,
    budget: usize,
    start: Instant,
    first_token_at: Option<Duration>,
    next: Option<u32>,
}

impl<'t> Sequence<'t> {
    /// Prefills `prompt` into `state` (whose cache holds `cached`: a matching prefix
    /// is reused) and draws the first token, sending its text to `sink`.
    pub fn start(
        decoder: &Decoder,
        tokenizer: &'t Tokenizer,
        prompt: &[u32],
        params: GenerateParams,
        mut state: DecoderState,
        mut cached: Vec<u32>,
        sink: &mut dyn TokenSink,
    ) -> Result<Self> {
        check_prompt(decoder, prompt)?;
        let start = Instant::now();
        let (mut logits, reused) = prefill(
            decoder,
            &mut state,
            &mut cached,
            prompt,
            params.prefill_chunk,
        )?;
        let budget = params
            .max_tokens
            .min(decoder.context_length() - prompt.len());
        let mut seq = Self {
            tokenizer,
            sampler: Sampler::new(params.sampling.clone()),
            emitter: Emitter::new(tokenizer, &params.stop),
            params,
            history: prompt.to_vec(),
            state,
            stats: GenerationStats::after_prefill(prompt.len(), reused, start.elapsed()),
            budget,
            start,
            first_token_at: None,
            next: None,
        };
        if budget > 0 {
            seq.take(&mut logits, sink)?;
        }
        Ok(seq)
    }

    /// The token the model must run next for this sequence, or `None` when it has ended.
    pub fn pending(&self) -> Option<u32> {
        self.next
    }

    /// The sequence's decoding state (for the batched model step).
    pub fn state_mut(&mut self) -> &mut DecoderState {
        &mut self.state
    }

    /// Takes the logits the model computed for [`Sequence::pending`] and draws the next token.
    pub fn advance(&mut self, logits: &mut [f32], sink: &mut dyn TokenSink) -> Result<()> {
        if self.next.take().is_some() {
            self.stats.decode_passes += 1;
            self.take(logits, sink)?;
        }
        Ok(())
    }

    fn take(&mut self, logits: &mut [f32], sink: &mut dyn TokenSink) -> Result<()> {
        if let Some(c) = &mut self.params.constraint {
            c.mask(logits)?;
        }
        let tok = self.sampler.sample(logits, &self.history);
        if let Some(c) = &mut self.params.constraint {
            c.accept(tok)?;
        }
        self.first_token_at
            .get_or_insert_with(|| self.start.elapsed());
        if !self.params.ignore_eos && self.tokenizer.is_eog(tok) {
            self.stats.finish_reason = FinishReason::Stop;
            return Ok(());
        }
        self.history.push(tok);
        match self.emitter.push(tok, sink)? {
            Emitted::Stopped => self.stats.finish_reason = FinishReason::Stop,
            Emitted::Cancelled => self.stats.finish_reason = FinishReason::Cancelled,
            Emitted::Continue => {
                if self
                    .params
                    .constraint
                    .as_ref()
                    .is_some_and(|c| c.is_finished())
                {
                    self.stats.finish_reason = FinishReason::Stop;
                } else if self.emitter.out.len() < self.budget {
                    self.next = Some(tok);
                }
            }
        }
        Ok(())
    }

    /// Ends the sequence: its output, and its state with the tokens its cache holds
    /// (for the next request to reuse as a prefix).
    pub fn finish(
        mut self,
        sink: &mut dyn TokenSink,
    ) -> Result<(GenerationOutput, DecoderState, Vec<u32>)> {
        if self.stats.finish_reason != FinishReason::Stop {
            self.emitter.flush(sink)?;
        }
        let ttft = self.first_token_at.unwrap_or_else(|| self.start.elapsed());
        self.stats.completion_tokens = self.emitter.out.len();
        self.stats.time_to_first_token = ttft;
        self.stats.decode_time = self.start.elapsed().saturating_sub(ttft);
        let mut cached = self.history;
        cached.truncate(self.state.len());
        Ok((
            GenerationOutput {
                tokens: self.emitter.out,
                text: self.emitter.text,
                stats: self.stats,
            },
            self.state,
            cached,
        ))
    }
}
