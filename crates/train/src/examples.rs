//! Turning chat records into token ids with loss targets, and batches.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tuneup_nn::Segments;
use tuneup_tokenize::{ChatTemplate, Tokenizer};

use crate::error::{Error, Result};

/// Which tokens the loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossOn {
    /// Only the assistant turns (their content and end-of-turn tokens).
    #[default]
    Assistant,
    /// Every token after the first.
    All,
}

/// One tokenized conversation: `target[i]` says whether token `i` is
/// predicted (from tokens `..i`) in the loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Loss mask, same length as `ids`.
    pub target: Vec<bool>,
    /// Packed rows: the positions (rising, after 0) where a later example
    /// begins; its tokens attend only to their own example. Empty for one
    /// example per row.
    pub boundaries: Vec<u32>,
}

impl Example {
    /// Number of tokens the loss is computed on.
    pub fn target_count(&self) -> usize {
        self.target.iter().skip(1).filter(|&&t| t).count()
    }
}

/// Renders and tokenizes chat records the way inference does.
#[derive(Debug, Clone, Copy)]
pub struct ChatEncoder<'a> {
    tokenizer: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
}

impl<'a> ChatEncoder<'a> {
    /// An encoder over a model's tokenizer and chat template.
    pub fn new(tokenizer: &'a Tokenizer, template: Option<&'a ChatTemplate>) -> Self {
        Self {
            tokenizer,
            template,
        }
    }

    fn render(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
        gen_prompt: bool,
    ) -> Result<String> {
        Ok(match self.template {
            Some(t) => t.render(messages, tools, gen_prompt)?,
            None => {
                let mut s: String = messages
                    .iter()
                    .filter_map(|m| m.get("content").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n");
                if gen_prompt && !s.is_empty() {
                    s.push('\n');
                }
                s
            }
        })
    }

    fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        // As inference does: BOS when the vocabulary asks for it, unless the
        // template already wrote it.
        let has_bos = self
            .tokenizer
            .bos_token()
            .is_some_and(|b| !b.is_empty() && text.starts_with(b));
        Ok(self.tokenizer.encode(text, !has_bos)?)
    }

    /// Tokenizes one conversation. With [`LossOn::Assistant`] the targets
    /// are the tokens each assistant turn adds after the generation prompt
    /// that precedes it; the template must render prefixes consistently
    /// (every common template does), otherwise this says so.
    pub fn encode(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
        loss_on: LossOn,
    ) -> Result<Example> {
        if messages.is_empty() {
            return Err(Error::Config("a record has no messages".into()));
        }
        let full_text = self.render(messages, tools, false)?;
        let ids = self.encode_text(&full_text)?;
        let mut target = vec![false; ids.len()];
        match loss_on {
            LossOn::All => target.iter_mut().skip(1).for_each(|t| *t = true),
            LossOn::Assistant => {
                let mut any = false;
                for (i, m) in messages.iter().enumerate() {
                    if m.get("role").and_then(Value::as_str) != Some("assistant") {
                        continue;
                    }
                    let before = self.encode_text(&self.render(&messages[..i], tools, true)?)?;
                    let through =
                        self.encode_text(&self.render(&messages[..=i], tools, false)?)?;
                    let consistent = through.len() <= ids.len()
                        && ids[..through.len()] == through[..]
                        && before.len() <= through.len()
                        && through[..before.len()] == before[..];
                    if !consistent {
                        return Err(Error::Config(format!(
                            "the chat template does not render message {} as a prefix of the \
                             conversation, so the assistant tokens cannot be found; \
                             train with loss_on = \"all\"",
                            i + 1
                        )));
                    }
                    for t in &mut target[before.len()..through.len()] {
                        *t = true;
                        any = true;
                    }
                }
                if !any {
                    return Err(Error::Config(
                        "a record has no assistant turn to learn".into(),
                    ));
                }
            }
        }
        Ok(Example {
            ids,
            target,
            boundaries: Vec::new(),
        })
    }
}

/// A padded batch: ids `(rows, len)` and the flattened positions whose next
/// token is a target.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids `(rows, len)`.
    pub ids: Tensor,
    /// Row-major positions `row·len + p` whose logits predict a target.
    pub positions: Tensor,
    /// The target token of each position.
    pub targets: Tensor,
    /// Number of targets.
    pub target_count: usize,
    /// Real (non-padding) tokens.
    pub token_count: usize,
    /// Packed rows' example boundaries (`None` when every row is one example).
    pub segments: Option<Segments>,
}

impl Batch {
    /// Pads `examples` to the longest one with `pad` (never a target).
    pub fn new(examples: &[&Example], pad: u32, device: &Device) -> Result<Self> {
        let len = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        if len < 2 {
            return Err(Error::Config(
                "a batch needs sequences of at least two tokens".into(),
            ));
        }
        let mut ids = Vec::with_capacity(examples.len() * len);
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        let mut token_count = 0;
        for (row, e) in examples.iter().enumerate() {
            ids.extend_from_slice(&e.ids);
            ids.extend(std::iter::repeat_n(pad, len - e.ids.len()));
            token_count += e.ids.len();
            for p in 1..e.ids.len() {
                if e.target[p] {
                    positions.push((row * len + p - 1) as u32);
                    targets.push(e.ids[p]);
                }
            }
        }
        let target_count = targets.len();
        let segments = if examples.iter().any(|e| !e.boundaries.is_empty()) {
            let rows: Vec<&[u32]> = examples.iter().map(|e| e.boundaries.as_slice()).collect();
            Some(Segments::from_boundaries(&rows, len)?)
        } else {
            None
        };
        Ok(Self {
            ids: Tensor::from_vec(ids, (examples.len(), len), device)?,
            positions: Tensor::from_vec(positions, target_count, device)?,
            targets: Tensor::from_vec(targets, target_count, device)?,
            target_count,
            token_count,
            segments,
        })
    }
}

/// Rows searched for room when packing: first fit over the most recent
/// rows keeps packing linear in the number of examples.
const OPEN_ROWS: usize = 64;

/// Packs whole examples into rows of at most `len` tokens: each goes into
/// the first of the last `OPEN_ROWS` rows with room for it, else a new row.
/// An example is never split (a continuation would lose its prompt, and
/// the answer would be learned without its question); one longer than `len`
/// is left out, as unpacked training leaves it out. Each row records where
/// its later examples begin, so attention stays within an example (as an
/// unpacked batch computes it), and an example's first token is never a
/// target (nothing before it in its example predicts it).
pub fn pack(examples: &[Example], len: usize) -> Vec<Example> {
    let mut rows: Vec<Example> = Vec::new();
    for e in examples
        .iter()
        .filter(|e| !e.ids.is_empty() && e.ids.len() <= len)
    {
        let open = rows.len().saturating_sub(OPEN_ROWS)..rows.len();
        let row = match open
            .into_iter()
            .find(|&r| rows[r].ids.len() + e.ids.len() <= len)
        {
            Some(r) => &mut rows[r],
            None => {
                rows.push(Example {
                    ids: Vec::with_capacity(len),
                    target: Vec::with_capacity(len),
                    boundaries: Vec::new(),
                });
                rows.last_mut().expect("a row was just pushed")
            }
        };
        if !row.ids.is_empty() {
            row.boundaries.push(row.ids.len() as u32);
        }
        row.ids.extend_from_slice(&e.ids);
        let targets = e.target.iter().enumerate().map(|(i, &t)| t && i > 0);
        row.target.extend(targets);
    }
    rows
}

/// The order of examples in epoch `epoch`: a permutation that depends only
/// on the seed and the epoch (so a resumed run sees the same order).
pub fn epoch_order(count: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], target: &[bool]) -> Example {
        Example {
            ids: ids.to_vec(),
            target: target.to_vec(),
            boundaries: Vec::new(),
        }
    }

    #[test]
    fn batch_positions_skip_padding_and_prompts() -> Result<()> {
        let a = ex(&[1, 2, 3, 4], &[false, false, true, true]);
        let b = ex(&[5, 6], &[false, true]);
        let batch = Batch::new(&[&a, &b], 0, &Device::Cpu)?;
        assert_eq!(batch.ids.dims(), &[2, 4]);
        assert_eq!(batch.positions.to_vec1::<u32>()?, vec![1, 2, 4]);
        assert_eq!(batch.targets.to_vec1::<u32>()?, vec![3, 4, 6]);
        assert_eq!(batch.token_count, 6);
        Ok(())
    }

    #[test]
    fn packing_keeps_examples_whole() {
        let a = ex(&[1, 2, 3], &[false, true, true]);
        let b = ex(&[4, 5, 6, 7], &[false, false, true, true]);
        let c = ex(&[8], &[true]);
        let too_long = ex(&[9; 5], &[true; 5]);
        let rows = pack(&[a, b, too_long, c], 4);
        // `b` does not fit after `a`: a row of its own; `c` fills `a`'s row.
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ids, vec![1, 2, 3, 8]);
        assert_eq!(rows[0].boundaries, vec![3]);
        assert_eq!(rows[0].target, vec![false, true, true, false]);
        assert_eq!(rows[1].ids, vec![4, 5, 6, 7]);
        assert!(rows[1].boundaries.is_empty());
        assert_eq!(rows[1].target, vec![false, false, true, true]);
        let all = ex(&[8, 9], &[true, true]);
        let rows = pack(&[all.clone(), all], 8);
        assert_eq!(rows[0].target, vec![false, true, false, true]);
        let batch = Batch::new(&[&rows[0]], 0, &Device::Cpu).unwrap();
        let segments = batch.segments.expect("a packed row has segments");
        assert_eq!(segments.row_starts(0), &[0, 0, 2, 2]);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(50, 7, 0);
        assert_eq!(a, epoch_order(50, 7, 0));
        assert_ne!(a, epoch_order(50, 7, 1));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
    }
}
