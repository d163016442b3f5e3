//! The generation loop: prefill (reusing a cached prompt prefix), then one
//! token at a time or several per pass with speculative drafts, streaming
//! text to a [`TokenSink`].

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use tuneup_models::{Decoder, DecoderState, LogitsFor};
use tuneup_tokenize::Tokenizer;

use crate::draft::DraftModel;
use crate::draft_budget::DraftBudget;
use crate::emit::{Emitted, Emitter};
use crate::error::{Error, Result};
use crate::grammar::GrammarConstraint;
use crate::lookup::PromptLookup;
use crate::sampling::{argmax, Sampler, SamplingParams};

/// Receives generated text as it is produced.
pub trait TokenSink {
    /// Called for each accepted token with the text it completed (may be
    /// empty while a multi-byte character or a possible stop string is still
    /// incomplete). At the end, text still held back is flushed in one last
    /// call with `id == u32::MAX`. Return `ControlFlow::Break(())` to cancel.
    fn on_token(&mut self, id: u32, text: &str) -> ControlFlow<()>;
}

/// A sink that ignores everything (collect the result from the return value).
#[derive(Debug, Default)]
pub struct NullSink;

impl TokenSink for NullSink {
    fn on_token(&mut self, _id: u32, _text: &str) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

impl<F: FnMut(u32, &str) -> ControlFlow<()>> TokenSink for F {
    fn on_token(&mut self, id: u32, text: &str) -> ControlFlow<()> {
        self(id, text)
    }
}

/// How drafts for speculative decoding are produced. A draft token is kept
/// only if it is the model's own argmax, so the output is greedy decoding's
/// (up to rounding differences between batched and single-token passes).
#[derive(Debug, Default)]
pub enum Speculation {
    /// One token per model pass.
    #[default]
    Off,
    /// Drafts copied from earlier context (prompt lookup).
    PromptLookup(PromptLookup),
    /// Drafts from a smaller model with the same tokenizer.
    DraftModel(Box<DraftModel>),
}

/// What to generate.
#[derive(Debug)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling parameters.
    pub sampling: SamplingParams,
    /// Stop strings (not included in the output).
    pub stop: Vec<String>,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Speculative decoding (greedy sampling only; ignored otherwise).
    pub speculation: Speculation,
    /// Prompt tokens per forward pass during prefill.
    pub prefill_chunk: usize,
    /// A grammar the output must follow (disables speculation); generation stops when
    /// the grammar is complete and allows nothing more.
    pub constraint: Option<GrammarConstraint>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            ignore_eos: false,
            speculation: Speculation::Off,
            prefill_chunk: 512,
            constraint: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The sink asked to stop.
    Cancelled,
}

/// Timings and counts of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the cache (not recomputed).
    pub cached_prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Time to process the prompt.
    pub prefill_time: Duration,
    /// Time from start to the first generated token.
    pub time_to_first_token: Duration,
    /// Time spent generating after the first token.
    pub decode_time: Duration,
    /// Model passes during decoding.
    pub decode_passes: usize,
    /// Draft tokens proposed / accepted (speculative decoding).
    pub draft_proposed: usize,
    /// Draft tokens accepted.
    pub draft_accepted: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

impl GenerationStats {
    /// The counts of a generation whose prompt was just computed (nothing generated yet).
    pub fn after_prefill(
        prompt_tokens: usize,
        cached_prompt_tokens: usize,
        prefill_time: Duration,
    ) -> Self {
        Self {
            prompt_tokens,
            cached_prompt_tokens,
            completion_tokens: 0,
            prefill_time,
            time_to_first_token: Duration::ZERO,
            decode_time: Duration::ZERO,
            decode_passes: 0,
            draft_proposed: 0,
            draft_accepted: 0,
            finish_reason: FinishReason::Length,
        }
    }

    /// Prompt tokens computed per second.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        let n = (self.prompt_tokens - self.cached_prompt_tokens) as f64;
        n / self.prefill_time.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second after the first.
    pub fn decode_tokens_per_second(&self) -> f64 {
        self.completion_tokens.saturating_sub(1) as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    /// Generated token ids (an end-of-generation token is not included).
    pub tokens: Vec<u32>,
    /// Generated text, stop strings removed.
    pub text: String,
    /// Timings and counts.
    pub stats: GenerationStats,
}

/// Feeds `prompt` into `state`, whose cache holds `cached`, reusing their longest
/// common prefix; returns the logits of the prompt's last position and how many
/// tokens were reused. `cached` then holds the prompt.
pub(crate) fn prefill(
    decoder: &Decoder,
    state: &mut DecoderState,
    cached: &mut Vec<u32>,
    prompt: &[u32],
    chunk: usize,
) -> Result<(Vec<f32>, usize)> {
    let common = cached
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    // At least one token must be computed to get logits.
    let reuse = common.min(prompt.len().saturating_sub(1));
    state.truncate(reuse);
    cached.truncate(reuse);
    let mut logits = None;
    for piece in prompt[reuse..].chunks(chunk.max(1)) {
        let l = decoder.forward(piece, state, LogitsFor::Last)?;
        cached.extend_from_slice(piece);
        logits = Some(l);
    }
    let logits = logits.ok_or(Error::EmptyPrompt)?;
    Ok((logits.flatten_all()?.to_vec1::<f32>()?, reuse))
}

/// Checks that `prompt` can be generated from within `decoder`'s context window.
pub(crate) fn check_prompt(decoder: &Decoder, prompt: &[u32]) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let ctx = decoder.context_length();
    if prompt.len() >= ctx {
        return Err(Error::PromptTooLong {
            prompt: prompt.len(),
            context: ctx,
        });
    }
    Ok(())
}

/// Runs a model for one conversation or client, keeping the KV cache of the
/// last prompt so that a following prompt with the same prefix (the next
/// chat turn) only computes what is new.
#[derive(Debug)]
pub struct Generator<'a> {
    decoder: &'a Decoder,
    tokenizer: &'a Tokenizer,
    state: DecoderState,
    cached: Vec<u32>,
}

impl<'a> Generator<'a> {
    /// A generator with an empty cache.
    pub fn new(decoder: &'a Decoder, tokenizer: &'a Tokenizer) -> Self {
        Self {
            decoder,
            tokenizer,
            state: decoder.new_state(),
            cached: Vec::new(),
        }
    }

    /// Forgets the cache.
    pub fn reset(&mut self) {
        self.state.reset();
        self.cached.clear();
    }

    /// Generates a continuation of `prompt` (token ids, template already applied).
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &mut GenerateParams,
        sink: &mut dyn TokenSink,
    ) -> Result<GenerationOutput> {
        check_prompt(self.decoder, prompt)?;
        let ctx = self.decoder.context_length();
        let start = Instant::now();
        let (mut logits, reused) = prefill(
            self.decoder,
            &mut self.state,
            &mut self.cached,
            prompt,
            params.prefill_chunk,
        )?;
        let prefill_time = start.elapsed();
        let budget = params.max_tokens.min(ctx - prompt.len());
        let mut sampler = Sampler::new(params.sampling.clone());
        let greedy = params.sampling.is_greedy();
        let mut history: Vec<u32> = prompt.to_vec();
        let mut emitter = Emitter::new(self.tokenizer, &params.stop);
        let mut stats = GenerationStats::after_prefill(prompt.len(), reused, prefill_time);
        let mut first_token_at = None;
        let mut drafts = DraftBudget::new(match &params.speculation {
            Speculation::PromptLookup(l) => l.max_draft,
            Speculation::DraftModel(d) => d.max_draft(),
            Speculation::Off => 0,
        });
        'outer: while emitter.out.len() < budget {
            // Choose the next token(s): the sampled one plus any accepted drafts.
            if let Some(c) = &mut params.constraint {
                c.mask(&mut logits)?;
            }
            let next = sampler.sample(&logits, &history);
            if let Some(c) = &mut params.constraint {
                c.accept(next)?;
            }
            let mut accepted = vec![next];
            let mut pending_logits = None;
            let allowance = if greedy
                && params.constraint.is_none()
                && emitter.out.len() + 1 < budget
                && !self.is_end(next, params)
            {
                match params.speculation {
                    Speculation::Off => 0,
                    _ => drafts.allowance(),
                }
            } else {
                0
            };
            if allowance > 0 {
                let room = (budget - emitter.out.len() - 1).min(allowance);
                let mut context = history.clone();
                context.push(next);
                let draft: Vec<u32> = match &mut params.speculation {
                    Speculation::Off => Vec::new(),
                    Speculation::PromptLookup(l) => l.propose(&context),
                    Speculation::DraftModel(d) => d.propose(&context, room)?,
                };
                let draft: Vec<u32> = draft.into_iter().take(room).collect();
                if !draft.is_empty() {
                    stats.draft_proposed += draft.len();
                    let mut input = vec![next];
                    input.extend_from_slice(&draft);
                    let all = self
                        .decoder
                        .forward(&input, &mut self.state, LogitsFor::All)?;
                    stats.decode_passes += 1;
                    let rows = all.to_vec2::<f32>()?;
                    // rows[i] predicts the token after input[i].
                    let mut n_ok = 0;
                    while n_ok < draft.len() && argmax(&rows[n_ok]) == draft[n_ok] {
                        n_ok += 1;
                        if self.is_end(draft[n_ok - 1], params) {
                            break;
                        }
                    }
                    stats.draft_accepted += n_ok;
                    drafts.record(draft.len(), n_ok);
                    accepted.extend_from_slice(&draft[..n_ok]);
                    // Keep the cache for `next` and the accepted drafts only.
                    let keep = self.cached.len() + 1 + n_ok;
                    self.state.truncate(keep);
                    self.cached.extend_from_slice(&input[..1 + n_ok]);
                    pending_logits = Some(rows[n_ok].clone());
                    if let Speculation::DraftModel(d) = &mut params.speculation {
                        d.accepted(&self.cached)?;
                    }
                }
            }
            for &tok in &accepted {
                if first_token_at.is_none() {
                    first_token_at = Some(start.elapsed());
                }
                if self.is_end(tok, params) {
                    stats.finish_reason = FinishReason::Stop;
                    break 'outer;
                }
                history.push(tok);
                match emitter.push(tok, sink)? {
                    Emitted::Continue => {}
                    Emitted::Stopped => {
                        stats.finish_reason = FinishReason::Stop;
                        break 'outer;
                    }
                    Emitted::Cancelled => {
                        stats.finish_reason = FinishReason::Cancelled;
                        break 'outer;
                    }
                }
                if params.constraint.as_ref().is_some_and(|c| c.is_finished()) {
                    stats.finish_reason = FinishReason::Stop;
                    break 'outer;
                }
                if emitter.out.len() >= budget {
                    break 'outer;
                }
            }
            logits = match pending_logits {
                Some(l) => l,
                None => {
                    let last = *accepted.last().unwrap_or(&next);
                    let l = self
                        .decoder
                        .forward(&[last], &mut self.state, LogitsFor::Last)?;
                    stats.decode_passes += 1;
                    self.cached.push(last);
                    l.flatten_all()?.to_vec1::<f32>()?
                }
            };
        }
        if stats.finish_reason != FinishReason::Stop {
            emitter.flush(sink)?;
        }
        let ttft = first_token_at.unwrap_or_else(|| start.elapsed());
        stats.completion_tokens = emitter.out.len();
        stats.time_to_first_token = ttft;
        stats.decode_time = start.elapsed().saturating_sub(ttft);
        Ok(GenerationOutput {
            tokens: emitter.out,
            text: emitter.text,
            stats,
        })
    }

    fn is_end(&self, tok: u32, params: &GenerateParams) -> bool {
        !params.ignore_eos && self.tokenizer.is_eog(tok)
    }
}
