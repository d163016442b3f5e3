//! The CPU training op of causal self-attention (optionally rotating the
//! queries and keys itself).
//!
//! Its inputs are `(b, seq, heads, d)` views with any strides but a
//! contiguous last axis — the projections' outputs reshaped, or narrow
//! slices of a fused QKV output — and its output is `(b, seq, heads, d)`
//! contiguous, which is the `(b, seq, hidden)` the output projection takes.
//! Reading and writing that layout directly, and applying RoPE inside,
//! leaves nothing between the projections and the op in the graph: without
//! it a training layer kept a contiguous copy of every head-major
//! transpose, the rotated queries and keys, and a copy of the output
//! (9 MiB per SmolLM2 layer at 1,024 tokens).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::rope::RopeTable;
use crate::sgemm::{self, MatRef};
use crate::vmath;
use crate::Result;

/// `softmax(q kᵀ·scale + causal mask)·v` over q `(b, seq, heads, d)` and
/// k, v `(b, seq, kv_heads, d)`, differentiable with respect to all three.
/// The `rep` query heads sharing a key/value head are folded into the rows
/// of one group (as in [`grouped_query_attention`](crate::attention::grouped_query_attention)),
/// so the key and value gradients sum over them. Each (sequence,
/// key/value head) group is one task of the rayon pool, gathering its rows
/// (rotated by `rope` when given), running its products serially, and the
/// backward pass recomputes the attention weights. With `starts` (packed
/// rows, `(b, seq)` example starts) a query sees only the keys of its own
/// example.
pub(crate) struct AttentionOp {
    pub(crate) scale: f32,
    pub(crate) rep: usize,
    pub(crate) rope: Option<RopeTable>,
    pub(crate) starts: Option<Arc<[u32]>>,
}

/// Shapes of one call: `groups` = batch · kv_heads, each with `rows` =
/// rep · seq folded query rows over `seq` keys of width `d`.
#[derive(Clone, Copy)]
struct Groups {
    groups: usize,
    kv_heads: usize,
    rows: usize,
    seq: usize,
    d: usize,
}

/// A `(b, seq, heads, d)` view into an f32 storage whose last axis is
/// contiguous.
struct Heads<'a> {
    data: &'a [f32],
    start: usize,
    strides: [usize; 3],
    d: usize,
}

impl<'a> Heads<'a> {
    fn new(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<Self> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{op}: f32 input expected");
        };
        let (b, seq, heads, d) = layout.shape().dims4()?;
        let s = layout.stride();
        if s[3] != 1 && d > 1 {
            candle_core::bail!("{op}: the head axis must be contiguous, strides {s:?}");
        }
        let start = layout.start_offset();
        let empty = b == 0 || seq == 0 || heads == 0;
        if empty || start + (b - 1) * s[0] + (seq - 1) * s[1] + (heads - 1) * s[2] + d > data.len()
        {
            candle_core::bail!(
                "{op}: view {:?} empty or outside its storage",
                layout.dims()
            );
        }
        Ok(Self {
            data,
            start,
            strides: [s[0], s[1], s[2]],
            d,
        })
    }

    /// Head `h` of token `s` of sequence `b`.
    fn row(&self, b: usize, s: usize, h: usize) -> &'a [f32] {
        let o = self.start + b * self.strides[0] + s * self.strides[1] + h * self.strides[2];
        &self.data[o..o + self.d]
    }
}

/// Runs `f` on the `(b, seq, heads, d)` view of a CPU f32 tensor.
fn with_heads<R>(t: &Tensor, op: &str, f: impl FnOnce(&Heads<'_>) -> Result<R>) -> Result<R> {
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(s) => f(&Heads::new(s, l, op)?),
        _ => candle_core::bail!("{op}: CPU tensor expected"),
    }
}

/// The rows of one group, gathered contiguous (queries and keys rotated).
struct GroupRows {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl AttentionOp {
    fn groups(&self, q: &Layout, k: &Layout, v: &Layout) -> Result<Groups> {
        let (b, seq, heads, d) = q.shape().dims4()?;
        let (kb, kseq, kvh, kd) = k.shape().dims4()?;
        let rope_fits = self
            .rope
            .as_ref()
            .is_none_or(|r| r.seq() == seq && r.head_dim() == d);
        if k.dims() != v.dims()
            || (kb, kseq, kd) != (b, seq, d)
            || heads != kvh * self.rep
            || !rope_fits
        {
            candle_core::bail!(
                "{}: q {:?} k {:?} v {:?}",
                self.name(),
                q.dims(),
                k.dims(),
                v.dims()
            );
        }
        if self.starts.as_ref().is_some_and(|s| s.len() != b * seq) {
            candle_core::bail!(
                "{}: example starts do not fit q {:?}",
                self.name(),
                q.dims()
            );
        }
        Ok(Groups {
            groups: b * kvh,
            kv_heads: kvh,
            rows: self.rep * seq,
            seq,
            d,
        })
    }

    /// Copies `x` into `y`, rotated by position `s`'s angles when there is a table.
    fn place(&self, s: usize, x: &[f32], y: &mut [f32], inverse: bool) {
        match &self.rope {
            Some(rope) => rope.rotate(s, x, y, inverse),
            None => y.copy_from_slice(x),
        }
    }

    /// Group `i`'s query rows `(rows, d)` (head `r` of the group at rows
    /// `r·seq..`), keys and values `(seq, d)`.
    fn gather(&self, g: Groups, i: usize, q: &Heads, k: &Heads, v: &Heads) -> GroupRows {
        let (b, kh, d) = (i / g.kv_heads, i % g.kv_heads, g.d);
        let mut rows = GroupRows {
            q: vec![0f32; g.rows * d],
            k: vec![0f32; g.seq * d],
            v: vec![0f32; g.seq * d],
        };
        for (r, qs) in rows.q.chunks_mut(g.seq * d).enumerate() {
            for (s, y) in qs.chunks_mut(d).enumerate() {
                self.place(s, q.row(b, s, kh * self.rep + r), y, false);
            }
        }
        for (s, (ky, vy)) in rows.k.chunks_mut(d).zip(rows.v.chunks_mut(d)).enumerate() {
            self.place(s, k.row(b, s, kh), ky, false);
            vy.copy_from_slice(v.row(b, s, kh));
        }
        rows
    }

    /// Attention weights `(rows, seq)` of group `group`'s folded queries.
    fn weights(&self, g: Groups, group: usize, q: &[f32], k: &[f32]) -> Result<Vec<f32>> {
        let mut p = vec![0f32; g.rows * g.seq];
        sgemm::matmul_serial(
            MatRef::new(q, g.rows, g.d)?,
            MatRef::new(k, g.seq, g.d)?.t(),
            &mut p,
        )?;
        match &self.starts {
            Some(starts) => {
                let row = group / g.kv_heads;
                packed_softmax_rows(&mut p, &starts[row * g.seq..][..g.seq], self.scale);
            }
            None => causal_softmax_rows(&mut p, g.seq, self.scale),
        }
        Ok(p)
    }

    /// Rotates every `(seq, d)` block of `rows` back by its positions' angles.
    fn unrotate(&self, rows: &mut [f32], g: Groups) {
        if self.rope.is_none() {
            return;
        }
        let mut tmp = vec![0f32; g.d];
        for block in rows.chunks_mut(g.seq * g.d) {
            for (s, y) in block.chunks_mut(g.d).enumerate() {
                tmp.copy_from_slice(y);
                self.place(s, &tmp, y, true);
            }
        }
    }
}

/// Lays per-group rows (`per_group` heads of `seq` rows each) out as
/// `(b, seq, heads, d)`, `heads` = groups per sequence · `per_group`.
fn scatter(parts: &[Vec<f32>], g: Groups, per_group: usize) -> Vec<f32> {
    let heads = g.kv_heads * per_group;
    let b = g.groups / g.kv_heads;
    let mut out = vec![0f32; b * g.seq * heads * g.d];
    out.par_chunks_mut(heads * g.d)
        .enumerate()
        .for_each(|(token, row)| {
            let (bi, s) = (token / g.seq, token % g.seq);
            for (h, y) in row.chunks_mut(g.d).enumerate() {
                let part = &parts[bi * g.kv_heads + h / per_group];
                y.copy_from_slice(&part[((h % per_group) * g.seq + s) * g.d..][..g.d]);
            }
        });
    out
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "causal-attention-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.groups(l1, l2, l3)?;
        let (q, k, v) = (
            Heads::new(s1, l1, self.name())?,
            Heads::new(s2, l2, self.name())?,
            Heads::new(s3, l3, self.name())?,
        );
        let parts = (0..g.groups)
            .into_par_iter()
            .map(|i| -> Result<Vec<f32>> {
                let rows = self.gather(g, i, &q, &k, &v);
                let p = self.weights(g, i, &rows.q, &rows.k)?;
                let mut o = vec![0f32; g.rows * g.d];
                sgemm::matmul_serial(
                    MatRef::new(&p, g.rows, g.seq)?,
                    MatRef::new(&rows.v, g.seq, g.d)?,
                    &mut o,
                )?;
                Ok(o)
            })
            .collect::<Result<Vec<_>>>()?;
        let out = scatter(&parts, g, self.rep);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.to_dtype(DType::F32)?;
        let g = self.groups(q.layout(), k.layout(), v.layout())?;
        let name = self.name();
        let parts = with_heads(q, name, |qs| {
            with_heads(k, name, |ks| {
                with_heads(v, name, |vs| {
                    with_heads(&grad, name, |gs| {
                        (0..g.groups)
                            .into_par_iter()
                            .map(|i| self.group_grads(g, i, [qs, ks, vs, gs]))
                            .collect::<Result<Vec<_>>>()
                    })
                })
            })
        })?;
        let (mut dq, mut dk, mut dv) = (Vec::new(), Vec::new(), Vec::new());
        for [a, b, c] in parts {
            dq.push(a);
            dk.push(b);
            dv.push(c);
        }
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(scatter(&dq, g, self.rep), q.shape(), dev)?),
            Some(Tensor::from_vec(scatter(&dk, g, 1), k.shape(), dev)?),
            Some(Tensor::from_vec(scatter(&dv, g, 1), v.shape(), dev)?),
        ))
    }
}

impl AttentionOp {
    /// Group `i`'s query, key and value gradients, in its gathered row order
    /// (rotated back, so they are gradients of the op's inputs).
    fn group_grads(
        &self,
        g: Groups,
        i: usize,
        [q, k, v, grad]: [&Heads; 4],
    ) -> Result<[Vec<f32>; 3]> {
        let rows = self.gather(g, i, q, k, v);
        // The output gradient in the same folded row order (never rotated).
        let (b, kh, d) = (i / g.kv_heads, i % g.kv_heads, g.d);
        let mut go = vec![0f32; g.rows * d];
        for (r, block) in go.chunks_mut(g.seq * d).enumerate() {
            for (s, y) in block.chunks_mut(d).enumerate() {
                y.copy_from_slice(grad.row(b, s, kh * self.rep + r));
            }
        }
        let qi = MatRef::new(&rows.q, g.rows, d)?;
        let ki = MatRef::new(&rows.k, g.seq, d)?;
        let vi = MatRef::new(&rows.v, g.seq, d)?;
        let gi = MatRef::new(&go, g.rows, d)?;
        let p = self.weights(g, i, &rows.q, &rows.k)?;
        let pm = MatRef::new(&p, g.rows, g.seq)?;
        let mut dv = vec![0f32; g.seq * d];
        sgemm::matmul_serial(pm.t(), gi, &mut dv)?;
        // ∂scores·scale, computed in place over ∂p = ∂o·vᵀ.
        let mut ds = vec![0f32; g.rows * g.seq];
        sgemm::matmul_serial(gi, vi.t(), &mut ds)?;
        softmax_grad_rows(&mut ds, &p, g.seq, self.scale);
        let dsm = MatRef::new(&ds, g.rows, g.seq)?;
        let mut dq = vec![0f32; g.rows * d];
        let mut dk = vec![0f32; g.seq * d];
        sgemm::matmul_serial(dsm, ki, &mut dq)?;
        sgemm::matmul_serial(dsm.t(), qi, &mut dk)?;
        self.unrotate(&mut dq, g);
        self.unrotate(&mut dk, g);
        Ok([dq, dk, dv])
    }
}

crate::dispatch! {
    /// In place over rows of `seq` scores, row `r` the query at position
    /// `r % seq` (query heads folded into rows): `softmax(scores·scale)` over
    /// the keys up to that position, 0 after it.
    fn causal_softmax_rows(p: &mut [f32], seq: usize, scale: f32) {
        for (r, row) in p.chunks_mut(seq).enumerate() {
            let (live, masked) = row.split_at_mut(r % seq + 1);
            let max = vmath::max(live);
            let inv = 1.0 / vmath::exp_in_place(live, max, scale);
            live.iter_mut().for_each(|x| *x *= inv);
            masked.fill(0.0);
        }
    }
}

crate::dispatch! {
    /// [`causal_softmax_rows`] for packed rows: row `r`'s query at position
    /// `i = r % seq` sees the keys `starts[i] ..= i` (its own example).
    fn packed_softmax_rows(p: &mut [f32], starts: &[u32], scale: f32) {
        let seq = starts.len();
        for (r, row) in p.chunks_mut(seq).enumerate() {
            let i = r % seq;
            let (before, rest) = row.split_at_mut(starts[i] as usize);
            let (live, masked) = rest.split_at_mut(i + 1 - before.len());
            before.fill(0.0);
            let max = vmath::max(live);
            let inv = 1.0 / vmath::exp_in_place(live, max, scale);
            live.iter_mut().for_each(|x| *x *= inv);
            masked.fill(0.0);
        }
    }
}

crate::dispatch! {
    /// In place over rows of `∂p` given the weights `p`:
    /// `scale · p⊙(∂p − rowsum(∂p⊙p))`, the gradient of the scaled scores.
    fn softmax_grad_rows(dp: &mut [f32], p: &[f32], seq: usize, scale: f32) {
        for (dp, p) in dp.chunks_mut(seq).zip(p.chunks(seq)) {
            let dot: f32 = dp.iter().zip(p).map(|(a, b)| a * b).sum();
            for (dp, &p) in dp.iter_mut().zip(p) {
                *dp = scale * p * (*dp - dot);
            }
        }
    }
}
