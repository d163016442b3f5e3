//! One micro-batch: forward, loss, backward — with or without activation
//! recomputation (gradient checkpointing).

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use tuneup_models::Decoder;

use crate::error::Result;
use crate::examples::Batch;
use crate::optim::accumulate;

/// Logit rows computed at once: bounds the `(rows, vocab)` buffers (the
/// logits, their gradient and the head's temporaries). With 512 rows the
/// head added ~400 MiB to SmolLM2's peak at 4 × 256 tokens (49,152-token
/// vocabulary); with 128 ~100 MiB, at no measurable cost in speed.
const LOGIT_CHUNK: usize = 128;

/// `x` as a graph leaf. The frozen base layers take their training path
/// (f32 GEMM on the expanded weight, gradient for the input only) when their
/// input is part of a graph; at training batch sizes that is faster than the
/// quantized kernels, so every pass runs with a tracked input even when no
/// gradient is wanted (the graph is dropped with the output).
fn tracked(x: Tensor) -> Result<Tensor> {
    Ok(Var::from_tensor(&x)?.as_tensor().clone())
}

/// Summed cross-entropy of `targets` under logits of `hidden` rows.
fn chunk_loss(decoder: &Decoder, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = decoder.lm_head().forward(hidden)?.to_dtype(DType::F32)?;
    Ok(tuneup_nn::loss::cross_entropy_sum(&logits, targets)?)
}

/// Rows of the final hidden states `(rows·len, hidden)` at the batch's
/// target positions.
fn target_rows(decoder: &Decoder, last: &Tensor, batch: &Batch) -> Result<Tensor> {
    let h = decoder.final_norm(last)?;
    let width = h.dims()[2];
    Ok(h.reshape(((), width))?.index_select(&batch.positions, 0)?)
}

/// Summed loss of a batch without gradients (validation).
pub fn eval_loss(decoder: &Decoder, batch: &Batch) -> Result<f64> {
    if batch.target_count == 0 {
        return Ok(0.0);
    }
    let (_, len) = batch.ids.dims2()?;
    let mask = decoder.causal_mask(len)?;
    let mut x = tracked(decoder.embed(&batch.ids)?)?;
    for i in 0..decoder.layers().len() {
        x = tracked(
            decoder
                .layer_forward_full(i, &x, mask.as_ref(), batch.segments.as_ref())?
                .detach(),
        )?;
    }
    let rows = target_rows(decoder, &x, batch)?;
    let mut total = 0f64;
    for_each_chunk(decoder, &rows, batch, |loss, value| {
        drop(loss);
        total += value;
        Ok(())
    })?;
    Ok(total)
}

/// Computes the loss of the target rows `LOGIT_CHUNK` at a time, handing
/// each chunk's loss tensor and its value to `f`.
fn for_each_chunk(
    decoder: &Decoder,
    rows: &Tensor,
    batch: &Batch,
    mut f: impl FnMut(Tensor, f64) -> Result<()>,
) -> Result<()> {
    let mut start = 0;
    while start < batch.target_count {
        let n = LOGIT_CHUNK.min(batch.target_count - start);
        let loss = chunk_loss(
            decoder,
            &rows.narrow(0, start, n)?,
            &batch.targets.narrow(0, start, n)?,
        )?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        f(loss, value)?;
        start += n;
    }
    Ok(())
}

/// Runs one micro-batch in training mode and adds `weight ·
/// ∂(summed loss)/∂param` to `grads` for every parameter. Returns the
/// summed loss. With `recompute`, only each layer's input is kept and the
/// layer is run again during the backward pass.
pub fn accumulate_gradients(
    decoder: &Decoder,
    batch: &Batch,
    params: &[(String, Var)],
    weight: f64,
    recompute: bool,
    grads: &mut HashMap<String, Tensor>,
) -> Result<f64> {
    accumulate_gradients_keeping(
        decoder,
        batch,
        params,
        weight,
        kept_layers(recompute, 0),
        grads,
    )
}

/// The `kept_layers` of [`accumulate_gradients_keeping`] for a run with or
/// without `recompute`, keeping `keep` layers' activations when it recomputes.
pub fn kept_layers(recompute: bool, keep: usize) -> usize {
    if recompute {
        keep
    } else {
        usize::MAX
    }
}

/// [`accumulate_gradients`] with recomputation for all but the first
/// `kept_layers` layers, whose activations are kept instead: each kept
/// layer saves its share of the recomputation pass and holds its
/// activations until the backward pass (0 recomputes every layer; the
/// layer count or more, none). The gradients are the same either way, and
/// either way the loss head runs `LOGIT_CHUNK` target rows at a time, its
/// gradient summed into the last layer's output.
pub fn accumulate_gradients_keeping(
    decoder: &Decoder,
    batch: &Batch,
    params: &[(String, Var)],
    weight: f64,
    kept_layers: usize,
    grads: &mut HashMap<String, Tensor>,
) -> Result<f64> {
    if batch.target_count == 0 {
        return Ok(0.0);
    }
    let kept = kept_layers.min(decoder.layers().len());
    checkpointed(decoder, batch, params, weight, kept, grads)
}

fn checkpointed(
    decoder: &Decoder,
    batch: &Batch,
    params: &[(String, Var)],
    weight: f64,
    kept: usize,
    grads: &mut HashMap<String, Tensor>,
) -> Result<f64> {
    let (_, len) = batch.ids.dims2()?;
    let mask = decoder.causal_mask(len)?;
    let layers = decoder.layers().len();
    // Forward: the first `kept` layers as one graph, then only each layer's input.
    let mut inputs = Vec::with_capacity(layers + 1);
    let embedded = decoder.embed(&batch.ids)?;
    inputs.push(embedded.detach());
    let segments = batch.segments.as_ref();
    let mut block = None;
    if kept > 0 {
        let block_in = Var::from_tensor(&inputs[0])?;
        let mut out = block_in.as_tensor().clone();
        for i in 0..kept {
            out = decoder.layer_forward_full(i, &out, mask.as_ref(), segments)?;
            inputs.push(out.detach());
        }
        block = Some((block_in, out));
    }
    for i in kept..layers {
        let x = tracked(inputs[i].clone())?;
        let y = decoder.layer_forward_full(i, &x, mask.as_ref(), segments)?;
        inputs.push(y.detach());
    }
    // Head: loss chunk by chunk, gradient with respect to the last layer's output.
    let last = Var::from_tensor(&inputs[layers])?;
    let rows = target_rows(decoder, last.as_tensor(), batch)?;
    let mut total = 0f64;
    let mut upstream: Option<Tensor> = None;
    for_each_chunk(decoder, &rows, batch, |loss, value| {
        total += value;
        let store = (loss * weight)?.backward()?;
        accumulate(grads, params, &store)?;
        if let Some(g) = store.get(last.as_tensor()) {
            let g = g.detach();
            upstream = Some(match upstream.take() {
                Some(u) => (u + g)?,
                None => g,
            });
        }
        Ok(())
    })?;
    drop(rows);
    // Backward through the layers, recomputing each one.
    let Some(mut g) = upstream else {
        return Ok(total);
    };
    for i in (kept..layers).rev() {
        let input = Var::from_tensor(&inputs[i])?;
        let y = decoder.layer_forward_full(i, input.as_tensor(), mask.as_ref(), segments)?;
        let surrogate = (y * &g)?.sum_all()?;
        let store = surrogate.backward()?;
        accumulate(grads, params, &store)?;
        if i > 0 || embedded.track_op() {
            g = match store.get(input.as_tensor()) {
                Some(gx) => gx.detach(),
                None => return Ok(total),
            };
        }
        inputs.truncate(i + 1);
    }
    if let Some((block_in, block_out)) = block {
        // The kept layers: one backward pass through their graph.
        let store = (block_out * &g)?.sum_all()?.backward()?;
        accumulate(grads, params, &store)?;
        match store.get(block_in.as_tensor()) {
            Some(gx) => g = gx.detach(),
            None => return Ok(total),
        }
    }
    if embedded.track_op() {
        // A trained embedding table: the first layer's input gradient.
        let store = (embedded * &g)?.sum_all()?.backward()?;
        accumulate(grads, params, &store)?;
    }
    Ok(total)
}
