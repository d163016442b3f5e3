//! Incremental detokenization.

use crate::error::Result;
use crate::tokenizer::{DecodeMode, Tokenizer};

/// Turns a stream of token ids into text deltas that are always valid UTF-8.
///
/// Bytes of a multibyte character split over several tokens (byte-fallback or
/// byte-level tokens, e.g. Korean or emoji) are held back until the character is
/// complete. Concatenating every delta returned by [`StreamDecoder::push`] and
/// [`StreamDecoder::finish`] gives exactly `tokenizer.decode(&all_ids, skip_special)`.
///
/// ```no_run
/// # fn demo(tok: &tuneup_tokenize::Tokenizer, ids: &[u32]) -> tuneup_tokenize::Result<()> {
/// let mut stream = tuneup_tokenize::StreamDecoder::new(tok, true);
/// for &id in ids {
///     if let Some(delta) = stream.push(id)? {
///         print!("{delta}");
///     }
/// }
/// print!("{}", stream.finish()?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    skip_special: bool,
    /// Bytes received but not yet returned (an incomplete UTF-8 sequence).
    pending: Vec<u8>,
    /// Whether any byte has been produced (for the leading-space strip).
    started: bool,
    /// All ids so far ([`DecodeMode::Generic`] only).
    ids: Vec<u32>,
    /// Text returned so far ([`DecodeMode::Generic`] only).
    emitted: String,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder for `tokenizer`; `skip_special` as in [`Tokenizer::decode`].
    pub fn new(tokenizer: &'a Tokenizer, skip_special: bool) -> Self {
        StreamDecoder {
            tokenizer,
            skip_special,
            pending: Vec::new(),
            started: false,
            ids: Vec::new(),
            emitted: String::new(),
        }
    }

    /// Adds one token; returns the new text, if any became complete.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        match self.tokenizer.decode_mode {
            DecodeMode::Bytes {
                strip_leading_space,
            } => {
                let piece = self.tokenizer.piece_bytes(id, self.skip_special)?;
                let mut piece = piece;
                if !self.started && !piece.is_empty() {
                    self.started = true;
                    if strip_leading_space && piece[0] == b' ' {
                        piece = &piece[1..];
                    }
                }
                self.pending.extend_from_slice(piece);
                let text = take_complete_utf8(&mut self.pending);
                Ok((!text.is_empty()).then_some(text))
            }
            DecodeMode::Generic => {
                self.tokenizer.check_id(id)?;
                self.ids.push(id);
                let text = self.tokenizer.decode(&self.ids, self.skip_special)?;
                if text.ends_with('\u{fffd}') {
                    return Ok(None);
                }
                Ok(self.advance(text))
            }
        }
    }

    /// Flushes whatever is held back (an incomplete character becomes U+FFFD) and
    /// returns it; the decoder can keep being used afterwards.
    pub fn finish(&mut self) -> Result<String> {
        match self.tokenizer.decode_mode {
            DecodeMode::Bytes { .. } => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                Ok(text)
            }
            DecodeMode::Generic => {
                let text = self.tokenizer.decode(&self.ids, self.skip_special)?;
                Ok(self.advance(text).unwrap_or_default())
            }
        }
    }

    fn advance(&mut self, text: String) -> Option<String> {
        let common = common_prefix_len(&self.emitted, &text);
        let delta = text[common..].to_string();
        self.emitted = text;
        (!delta.is_empty()).then_some(delta)
    }
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| a.len().min(b.len()))
}

/// Removes and returns the longest prefix of `buf` that can be decoded now, the way
/// `String::from_utf8_lossy` would decode it; an incomplete trailing sequence stays.
fn take_complete_utf8(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut start = 0;
    loop {
        match std::str::from_utf8(&buf[start..]) {
            Ok(s) => {
                out.push_str(s);
                start = buf.len();
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(&String::from_utf8_lossy(&buf[start..start + valid]));
                match e.error_len() {
                    Some(bad) => {
                        out.push('\u{fffd}');
                        start += valid + bad;
                    }
                    None => {
                        start += valid;
                        break;
                    }
                }
            }
        }
    }
    buf.drain(..start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_incomplete_sequences() {
        let bytes = "가a😀".as_bytes().to_vec();
        let mut buf = Vec::new();
        let mut out = String::new();
        for b in bytes {
            buf.push(b);
            out.push_str(&take_complete_utf8(&mut buf));
        }
        assert_eq!(out, "가a😀");
        assert!(buf.is_empty());
    }

    #[test]
    fn invalid_bytes_match_lossy_decoding() {
        let bytes: Vec<u8> = vec![0x61, 0xff, 0xe2, 0x82, 0x61, 0xf0, 0x9f];
        let mut buf = Vec::new();
        let mut out = String::new();
        for &b in &bytes {
            buf.push(b);
            out.push_str(&take_complete_utf8(&mut buf));
        }
        out.push_str(&String::from_utf8_lossy(&buf));
        assert_eq!(out, String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn common_prefix() {
        assert_eq!(common_prefix_len("abc", "abd"), 2);
        assert_eq!(common_prefix_len("ab", "abc"), 2);
        assert_eq!(common_prefix_len("가나", "가다"), 3);
    }
}
