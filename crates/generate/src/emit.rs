//! Turning accepted tokens into streamed text: detokenization, stop strings
//! and the sink, shared by [`crate::Generator`] and [`crate::Sequence`].

use tuneup_tokenize::{StreamDecoder, Tokenizer};

use crate::error::Result;
use crate::generator::TokenSink;
use crate::stop::StopMatcher;

/// What happened to a pushed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emitted {
    /// Keep generating.
    Continue,
    /// A stop string ended the output.
    Stopped,
    /// The sink asked to stop.
    Cancelled,
}

/// The generated tokens and text of one output.
#[derive(Debug)]
pub(crate) struct Emitter<'t> {
    detok: StreamDecoder<'t>,
    stops: StopMatcher,
    /// Generated token ids.
    pub out: Vec<u32>,
    /// Generated text, stop strings removed.
    pub text: String,
}

impl<'t> Emitter<'t> {
    pub fn new(tokenizer: &'t Tokenizer, stop: &[String]) -> Self {
        Self {
            detok: StreamDecoder::new(tokenizer, true),
            stops: StopMatcher::new(stop),
            out: Vec::new(),
            text: String::new(),
        }
    }

    /// Adds `tok` to the output and sends the text it completes to `sink`.
    pub fn push(&mut self, tok: u32, sink: &mut dyn TokenSink) -> Result<Emitted> {
        self.out.push(tok);
        let piece = self.detok.push(tok)?.unwrap_or_default();
        let decision = self.stops.push(&piece);
        self.text.push_str(&decision.emit);
        let flow = sink.on_token(tok, &decision.emit);
        Ok(if decision.stopped {
            Emitted::Stopped
        } else if flow.is_break() {
            Emitted::Cancelled
        } else {
            Emitted::Continue
        })
    }

    /// At the end of an output not ended by a stop: sends the text still held back.
    pub fn flush(&mut self, sink: &mut dyn TokenSink) -> Result<()> {
        let rest = self.detok.finish()?;
        let decision = self.stops.push(&rest);
        let mut tail = decision.emit;
        if !decision.stopped {
            tail.push_str(&self.stops.finish());
        }
        if !tail.is_empty() {
            self.text.push_str(&tail);
            let _ = sink.on_token(u32::MAX, &tail);
        }
        Ok(())
    }
}
