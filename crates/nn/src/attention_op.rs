//! The CPU training op of causal self-attention (optionally rotating the
//! queries and keys itself).
//!
//! Its inputs are `(b, seq, heads·d)` (or `(b, seq, heads, d)`) views with
//! any strides but a contiguous last axis — the projections' outputs, or
//! narrow slices of a fused QKV output — and its output has the queries'
//! shape, contiguous: the `(b, seq, hidden)` the output projection takes.
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
/// k, v `(b, seq, kv_heads, d)` (or the same with the last two axes as one,
/// `heads·head_dim`), differentiable with respect to all three.
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
    pub(crate) head_dim: usize,
    pub(crate) rep: usize,
    pub(crate) rope: Option<RopeTable>,
    pub(crate) starts: Option<Arc<[u32]>>,
}

/// Query positions per block of the products. A block's queries see only
/// the keys up to its last position, so the products skip most of the
/// masked upper triangle: at 256 tokens they do 56 % of the full square's
/// work.
const QUERY_BLOCK: usize = 32;

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

/// `(b, seq, heads)` of a `(b, seq, heads, d)` layout, or of a
/// `(b, seq, heads·d)` one split into heads of width `d`.
fn head_dims(layout: &Layout, d: usize, op: &str) -> Result<(usize, usize, usize)> {
    match *layout.dims() {
        [b, seq, heads, width] if width == d => Ok((b, seq, heads)),
        [b, seq, width] if d > 0 && width % d == 0 => Ok((b, seq, width / d)),
        _ => candle_core::bail!("{op}: input {:?} is not heads of width {d}", layout.dims()),
    }
}

impl<'a> Heads<'a> {
    fn new(storage: &'a CpuStorage, layout: &Layout, d: usize, op: &str) -> Result<Self> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{op}: f32 input expected");
        };
        let (b, seq, heads) = head_dims(layout, d, op)?;
        let s = layout.stride();
        let (last, head_stride) = match *s {
            [_, _, h, last] => (last, h),
            [_, _, last] => (last, d),
            _ => unreachable!("head_dims accepts ranks 3 and 4"),
        };
        if last != 1 && d > 1 {
            candle_core::bail!("{op}: the head axis must be contiguous, strides {s:?}");
        }
        let start = layout.start_offset();
        let empty = b == 0 || seq == 0 || heads == 0;
        if empty
            || start + (b - 1) * s[0] + (seq - 1) * s[1] + (heads - 1) * head_stride + d
                > data.len()
        {
            candle_core::bail!(
                "{op}: view {:?} empty or outside its storage",
                layout.dims()
            );
        }
        Ok(Self {
            data,
            start,
            strides: [s[0], s[1], head_stride],
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
fn with_heads<R>(
    t: &Tensor,
    d: usize,
    op: &str,
    f: impl FnOnce(&Heads<'_>) -> Result<R>,
) -> Result<R> {
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(s) => f(&Heads::new(s, l, d, op)?),
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
        let d = self.head_dim;
        let (b, seq, heads) = head_dims(q, d, self.name())?;
        let (kb, kseq, kvh) = head_dims(k, d, self.name())?;
        let rope_fits = self
            .rope
            .as_ref()
            .is_none_or(|r| r.seq() == seq && r.head_dim() == d);
        if k.dims() != v.dims() || (kb, kseq) != (b, seq) || heads != kvh * self.rep || !rope_fits {
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

    /// The causal blocks of a group: `(head r, first, end)` for query
    /// positions `first..end` of the group's head `r`, which see the keys
    /// `0..end`.
    fn blocks(&self, g: Groups) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..self.rep).flat_map(move |r| {
            (0..g.seq)
                .step_by(QUERY_BLOCK)
                .map(move |first| (r, first, (first + QUERY_BLOCK).min(g.seq)))
        })
    }

    /// The attention weights `(end − first, end)` of one block's queries
    /// `q` (group `group`'s rows at positions `first..end`) over the keys
    /// `0..end`.
    fn block_weights(
        &self,
        g: Groups,
        group: usize,
        q: MatRef<'_>,
        k: &[f32],
        (first, end): (usize, usize),
    ) -> Result<Vec<f32>> {
        let mut p = vec![0f32; (end - first) * end];
        sgemm::matmul_serial(q, MatRef::new(&k[..end * g.d], end, g.d)?.t(), &mut p)?;
        match &self.starts {
            Some(starts) => {
                let row = group / g.kv_heads;
                let starts = &starts[row * g.seq..][first..end];
                packed_softmax_rows(&mut p, starts, first, end, self.scale);
            }
            None => causal_softmax_rows(&mut p, first, end, self.scale),
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
            Heads::new(s1, l1, g.d, self.name())?,
            Heads::new(s2, l2, g.d, self.name())?,
            Heads::new(s3, l3, g.d, self.name())?,
        );
        let parts = (0..g.groups)
            .into_par_iter()
            .map(|i| -> Result<Vec<f32>> {
                let rows = self.gather(g, i, &q, &k, &v);
                let d = g.d;
                let mut o = vec![0f32; g.rows * d];
                for (r, first, end) in self.blocks(g) {
                    let span = (r * g.seq + first) * d..(r * g.seq + end) * d;
                    let qb = MatRef::new(&rows.q[span.clone()], end - first, d)?;
                    let p = self.block_weights(g, i, qb, &rows.k, (first, end))?;
                    sgemm::matmul_serial(
                        MatRef::new(&p, end - first, end)?,
                        MatRef::new(&rows.v[..end * d], end, d)?,
                        &mut o[span],
                    )?;
                }
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
        let d = g.d;
        let parts = with_heads(q, d, name, |qs| {
            with_heads(k, d, name, |ks| {
                with_heads(v, d, name, |vs| {
                    with_heads(&grad, d, name, |gs| {
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
        let mut dq = vec![0f32; g.rows * d];
        let mut dk = vec![0f32; g.seq * d];
        let mut dv = vec![0f32; g.seq * d];
        for (r, first, end) in self.blocks(g) {
            let span = (r * g.seq + first) * d..(r * g.seq + end) * d;
            let n = end - first;
            let qb = MatRef::new(&rows.q[span.clone()], n, d)?;
            let gb = MatRef::new(&go[span.clone()], n, d)?;
            let keys = MatRef::new(&rows.k[..end * d], end, d)?;
            let values = MatRef::new(&rows.v[..end * d], end, d)?;
            let p = self.block_weights(g, i, qb, &rows.k, (first, end))?;
            let pm = MatRef::new(&p, n, end)?;
            sgemm::gemm_serial(1.0, pm.t(), gb, 1.0, &mut dv[..end * d])?;
            // ∂scores·scale, computed in place over ∂p = ∂o·vᵀ.
            let mut ds = vec![0f32; n * end];
            sgemm::matmul_serial(gb, values.t(), &mut ds)?;
            softmax_grad_rows(&mut ds, &p, end, self.scale);
            let dsm = MatRef::new(&ds, n, end)?;
            sgemm::matmul_serial(dsm, keys, &mut dq[span])?;
            sgemm::gemm_serial(1.0, dsm.t(), qb, 1.0, &mut dk[..end * d])?;
        }
        self.unrotate(&mut dq, g);
        self.unrotate(&mut dk, g);
        Ok([dq, dk, dv])
    }
}

crate::dispatch! {
    /// In place over rows of `width` scores, row `i` the query at position
    /// `first + i`: `softmax(scores·scale)` over the keys up to that
    /// position, 0 after it.
    fn causal_softmax_rows(p: &mut [f32], first: usize, width: usize, scale: f32) {
        for (i, row) in p.chunks_mut(width).enumerate() {
            let (live, masked) = row.split_at_mut(first + i + 1);
            let max = vmath::max(live);
            let inv = 1.0 / vmath::exp_in_place(live, max, scale);
            live.iter_mut().for_each(|x| *x *= inv);
            masked.fill(0.0);
        }
    }
}

crate::dispatch! {
    /// [`causal_softmax_rows`] for packed rows: row `i`'s query at position
    /// `first + i` sees the keys `starts[i] ..= first + i` (its own example).
    fn packed_softmax_rows(p: &mut [f32], starts: &[u32], first: usize, width: usize, scale: f32) {
        for (i, row) in p.chunks_mut(width).enumerate() {
            let (before, rest) = row.split_at_mut(starts[i] as usize);
            let (live, masked) = rest.split_at_mut(first + i + 1 - before.len());
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
