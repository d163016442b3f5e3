//! Storage access shared by the CPU custom ops (training paths).

use candle_core::{CpuStorage, Layout, Storage, Tensor};

use crate::Result;

/// The f32 elements of a contiguous CPU storage, in layout order.
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{op}: f32 input expected"),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Runs `f` on the f32 elements of a CPU tensor (made contiguous first).
pub(crate) fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(s) => f(f32_slice(s, l, op)?),
        _ => candle_core::bail!("{op}: CPU tensor expected"),
    }
}

/// Whether every tensor is f32 on the CPU (what the training ops take).
pub(crate) fn all_cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.dtype() == candle_core::DType::F32 && t.device().is_cpu())
}

/// Whether `x` takes a training op: part of a graph, f32, on the CPU.
pub(crate) fn fused_training(x: &Tensor) -> bool {
    x.track_op() && all_cpu_f32(&[x])
}

/// Checks for the training ops against the composed formulations.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{Tensor, Var};

    use crate::Result;

    /// Largest absolute difference of two tensors.
    pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    /// Output of `f` over graph leaves holding `inputs`, the number of
    /// nodes of its graph, and the gradients of `sum(output ⊙ probe)`.
    fn run(
        inputs: &[Tensor],
        probe: &Tensor,
        f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    ) -> Result<(Tensor, usize, Vec<Tensor>)> {
        let vars = inputs
            .iter()
            .map(Var::from_tensor)
            .collect::<Result<Vec<_>>>()?;
        let leaves: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&leaves)?;
        let nodes = y.sorted_nodes().len();
        let grads = (&y * probe)?.sum_all()?.backward()?;
        let grads = leaves
            .iter()
            .map(|l| {
                grads
                    .get(l)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg("no gradient".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((y.detach(), nodes, grads))
    }

    /// Asserts that `fused` is a single op over the inputs and agrees with
    /// `composed` in value and in the gradient of every input, within `tol`.
    pub(crate) fn assert_agree(
        inputs: &[Tensor],
        fused: &dyn Fn(&[Tensor]) -> Result<Tensor>,
        composed: &dyn Fn(&[Tensor]) -> Result<Tensor>,
        tol: f32,
    ) -> Result<()> {
        assert_agree_in_nodes(inputs, inputs.len() + 1, fused, composed, tol)
    }

    /// [`assert_agree`] where the fused path's graph has `nodes` nodes
    /// (inputs and views around the op included).
    pub(crate) fn assert_agree_in_nodes(
        inputs: &[Tensor],
        nodes_fused: usize,
        fused: &dyn Fn(&[Tensor]) -> Result<Tensor>,
        composed: &dyn Fn(&[Tensor]) -> Result<Tensor>,
        tol: f32,
    ) -> Result<()> {
        let shape = composed(inputs)?.shape().clone();
        let probe = Tensor::randn(0f32, 1.0, shape, &candle_core::Device::Cpu)?;
        let (y, nodes, grads_fused) = run(inputs, &probe, fused)?;
        assert_eq!(nodes, nodes_fused, "the fused path was not taken");
        let (want, _, grads_composed) = run(inputs, &probe, composed)?;
        let diff = max_diff(&y, &want)?;
        assert!(diff < tol, "forward differs by {diff}");
        for (i, (a, b)) in grads_fused.iter().zip(&grads_composed).enumerate() {
            let diff = max_diff(a, b)?;
            assert!(diff < tol, "gradient of input {i} differs by {diff}");
        }
        Ok(())
    }
}
