//! Scaled dot-product attention over a KV cache, with GQA, an arbitrary visibility list per
//! query token (causal / sliding-window / per-sequence masks are built by the caller), and
//! optional logit soft-capping. Work is split over (token, head) pairs across the pool.
//!
//! The algorithm is ggml's CPU flash attention (llama.cpp's default): the query is converted to
//! the cache type before `q·k`, and an online softmax walks the visible cells in order with the
//! V accumulator kept in the cache type (f16 rounding after every step, as llama.cpp does).

use crate::pool::{SendPtr, ThreadPool};
use crate::ComputeError;
use ferrite_quants::{kernels, GgmlType};

#[derive(Debug, Clone, Copy)]
pub struct AttnParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    /// q/k head size.
    pub head_dim: usize,
    /// v head size.
    pub head_dim_v: usize,
    /// Multiplies `q·k` (usually 1/√head_dim).
    pub scale: f32,
    /// `s = tanh(s / cap) · cap` after scaling when > 0 (Gemma 2).
    pub softcap: f32,
}

/// One layer's cache: `k` is `(n_cells, n_head_kv * head_dim)`, `v` `(n_cells, n_head_kv *
/// head_dim_v)`, both of type `ty` (F16 or F32).
#[derive(Clone, Copy)]
pub struct KvView<'a> {
    pub ty: GgmlType,
    pub k: &'a [u8],
    pub v: &'a [u8],
}

/// Per-thread buffers (the converted query, the f16 V accumulator, the tiled path's K tile)
/// and the tiled path's plan, allocated once (the tiled path's grow on first use).
pub struct AttnScratch {
    threads: Vec<ThreadBufs>,
    plan: TilePlan,
}

struct ThreadBufs {
    q: Vec<u8>,
    acc16: Vec<u16>,
    /// Split-KV path: one chunk's unnormalized V accumulator.
    part: Vec<f32>,
    /// Tiled path: K of one 64-position tile transposed to f32, `(head_dim, 64)`.
    kt: Vec<f32>,
    /// Tiled path: per (token, head) of an item, the running max and sum.
    ms: Vec<(f32, f32)>,
    /// Tiled path: per token of an item, its cursor in its visibility list.
    cur: Vec<usize>,
}

/// The tiled tokens of one call grouped for [`tiled_groups`] (rebuilt per call, buffers kept).
#[derive(Default)]
struct TilePlan {
    /// Per group, the cell of each position of its range (`u32::MAX`: none).
    cell_of: Vec<u32>,
    groups: Vec<TileGroup>,
    /// The tiled tokens, by group (first-seen order), in batch order within a group.
    toks: Vec<usize>,
    /// Work items: (group, KV head, a run of up to `ITEM_TOKENS` of `toks`, the end of the
    /// positions those tokens see).
    items: Vec<(usize, usize, std::ops::Range<usize>, u32)>,
}

/// The tiled tokens of one sequence: positions from `lo` (tile-aligned) with their cells at
/// `cell_of[base..]`.
struct TileGroup {
    seq: u32,
    lo: u32,
    base: usize,
}

/// Positions per tile of llama.cpp's tiled CPU flash attention (`GGML_FA_TILE_KV` cells of a
/// cache whose cells hold a sequence's positions in order); llama.cpp takes that path for
/// batches of ≥ `GGML_FA_TILE_Q` = 64 query tokens (F16/F32 caches).
pub const FA_TILE: usize = 64;

/// Which tokens use llama.cpp's tiled flash-attention order (those whose batched flags
/// `batched[t]` hold [`crate::BATCHED_GE64`]), their sequences (`seq[t]`) and the position of
/// every visible cell (`pos`, parallel to the visibility list, position order within a token's
/// list).
#[derive(Clone, Copy)]
pub struct AttnTiles<'a> {
    /// Per token, its `crate::BATCHED_*` flags (as the matmuls get them).
    pub batched: &'a [u8],
    pub seq: &'a [u32],
    pub pos: &'a [u32],
    /// Per token: llama.cpp's KV view size when it would take its split-KV decode path (a
    /// one-token batch over ≥ [`SPLIT_KV_MIN`] cells), else 0; empty: never. The chunks are
    /// cut by the pool's thread count, as llama.cpp cuts them by its own.
    pub split_kv: &'a [u32],
}

/// llama.cpp's split-KV decode threshold (`nek1 >= 512`).
pub const SPLIT_KV_MIN: usize = 512;

impl AttnTiles<'_> {
    fn tiled(&self, t: usize) -> bool {
        self.batched[t] & crate::BATCHED_GE64 != 0
    }
}

impl AttnScratch {
    pub fn new(n_threads: usize, head_dim: usize, head_dim_v: usize) -> AttnScratch {
        AttnScratch {
            threads: (0..n_threads.max(1))
                .map(|_| ThreadBufs {
                    q: vec![0; head_dim * 4],
                    acc16: vec![0; head_dim_v],
                    part: vec![0.0; head_dim_v],
                    kt: Vec::new(),
                    ms: Vec::new(),
                    cur: Vec::new(),
                })
                .collect(),
            plan: TilePlan::default(),
        }
    }
}

fn elt_size(ty: GgmlType) -> usize {
    match ty {
        GgmlType::F16 => 2,
        _ => 4,
    }
}

/// `out[t, h]` = softmax over visible cells `c` of `scale · q[t, h] · k[c, h / g]` applied to
/// `v[c, h / g]`, `g = n_head / n_head_kv`. Token `t` sees `visible[vis_off[t]..vis_off[t+1]]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    pool: &ThreadPool,
    p: &AttnParams,
    q: &[f32],
    kv: &KvView<'_>,
    visible: &[u32],
    vis_off: &[usize],
    out: &mut [f32],
    scratch: &mut AttnScratch,
) -> Result<(), ComputeError> {
    attention_tiled(pool, p, q, kv, visible, vis_off, None, out, scratch)
}

/// [`attention`], with the tokens `tiles` marks tiled (F16/F32 caches) computed in the order
/// of llama.cpp's tiled CPU flash attention (`ggml_compute_forward_flash_attn_ext_tiled`,
/// 0c1e570) instead of its one-row online softmax: `q·k` in f32 (no f16 query), one fma
/// chain over the head dimension per score; per 64-position tile the max, then ggml's
/// vectorized `expf` of `s − max` and their sum in f64 per 16 lanes (GCC's
/// `_mm512_reduce_add_ps` order), the previous state rescaled by libm `expf` when the max
/// grows; an f32 V accumulator, one fma per visible cell in position order; last `·1/S`.
/// Per (token, head) the result does not depend on the other tokens.
#[allow(clippy::too_many_arguments)]
pub fn attention_tiled(
    pool: &ThreadPool,
    p: &AttnParams,
    q: &[f32],
    kv: &KvView<'_>,
    visible: &[u32],
    vis_off: &[usize],
    tiles: Option<AttnTiles<'_>>,
    out: &mut [f32],
    scratch: &mut AttnScratch,
) -> Result<(), ComputeError> {
    let n_tokens = vis_off.len() - 1;
    check_shapes(p, q, kv, out, n_tokens)?;
    // Both llama.cpp paths exist for F16/F32 caches only.
    let tiles = tiles.filter(|_| matches!(kv.ty, GgmlType::F16 | GgmlType::F32));
    if let Some(t) = tiles {
        for (what, got, want) in [
            ("attention batched flags", t.batched.len(), n_tokens),
            ("attention token sequences", t.seq.len(), n_tokens),
            ("attention visible positions", t.pos.len(), visible.len()),
            (
                "attention split-KV sizes",
                t.split_kv.len(),
                if t.split_kv.is_empty() { 0 } else { n_tokens },
            ),
        ] {
            if got != want {
                return Err(ComputeError::Shape {
                    what,
                    expected: want,
                    got,
                });
            }
        }
    }
    if scratch.threads.len() < pool.n_threads() {
        return Err(ComputeError::Shape {
            what: "attention scratch threads",
            expected: pool.n_threads(),
            got: scratch.threads.len(),
        });
    }
    let es = elt_size(kv.ty);
    let k_kern = kernels(kv.ty)?;
    let (dot, to_ty) = (
        // F16: ggml's `ggml_vec_dot_f16` summation order (see `dot_f16_ggml`); F32: the same
        // kernel `vec_dot` dispatches to, resolved once.
        match kv.ty {
            GgmlType::F16 => dot_f16_ggml_fn(),
            ty => ferrite_quants::simd::best_dot_fn(ty),
        },
        k_kern.quantize_row.expect("f16/f32 convert"),
    );
    let group = p.n_head / p.n_head_kv;
    let (kd, vd) = (p.head_dim, p.head_dim_v);
    let k_stride = p.n_head_kv * kd * es;
    let v_stride = p.n_head_kv * vd * es;
    // ggml folds the soft-cap divisor into the scale: s = cap · tanh(q·k · scale / cap).
    let scale = if p.softcap > 0.0 {
        p.scale / p.softcap
    } else {
        p.scale
    };
    let optr = SendPtr::new(out);
    let nth = pool.n_threads();
    let n_tiled = tiles.map_or(0, |tl| (0..n_tokens).filter(|&t| tl.tiled(t)).count());
    let sptr = SendPtr::new(&mut scratch.threads);
    // All tiled: no one-row items.
    let n_items = if n_tiled == n_tokens {
        0
    } else {
        n_tokens * p.n_head
    };
    let f16_ops = crate::f16ops::F16Ops::get();
    pool.for_each(n_items, &|item, ith| {
        // SAFETY: each thread uses only its own scratch entry.
        let bufs = unsafe { &mut sptr.slice(ith, 1)[0] };
        {
            let (t, h) = (item / p.n_head, item % p.n_head);
            if tiles.is_some_and(|tl| tl.tiled(t)) {
                return;
            }
            let hk = h / group;
            let cells = &visible[vis_off[t]..vis_off[t + 1]];
            let qh = &q[(t * p.n_head + h) * kd..][..kd];
            let ThreadBufs {
                q: qbuf,
                acc16,
                part,
                ..
            } = bufs;
            let qb = &mut qbuf[..kd * es];
            to_ty(qh, qb);
            let qb = &*qb;
            // SAFETY: (t, h) output rows are disjoint between items.
            let o = unsafe { optr.slice((t * p.n_head + h) * vd, vd) };
            // Online softmax over `cells` in order, as ggml's CPU flash attention: running max
            // M, sum S, and the V accumulator (f16 when V is f16, so it rounds like
            // llama.cpp's), left unnormalized in `acc`; returns (M, S).
            let acc16 = &mut acc16[..vd];
            let online = |cells: &[u32], acc16: &mut [u16], acc: &mut [f32]| -> (f32, f32) {
                let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
                acc16.fill(0);
                acc.fill(0.0);
                for &c in cells {
                    let kr = &kv.k[c as usize * k_stride + hk * kd * es..][..kd * es];
                    let mut s = dot(kd, kr, qb) * scale;
                    if p.softcap > 0.0 {
                        s = p.softcap * s.tanh();
                    }
                    let vr = &kv.v[c as usize * v_stride + hk * vd * es..][..vd * es];
                    let (mut ms, mut vs) = (1f32, 1f32);
                    let new_max = s > m;
                    if new_max {
                        ms = (m - s).exp();
                        m = s;
                    } else {
                        vs = (s - m).exp();
                    }
                    match kv.ty {
                        GgmlType::F16 => {
                            if new_max {
                                f16_ops.scale(acc16, ms);
                            }
                            f16_ops.mad(acc16, vr, vs);
                        }
                        _ => {
                            if new_max {
                                acc.iter_mut().for_each(|a| *a *= ms);
                            }
                            let vf = vr
                                .chunks_exact(4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                            acc.iter_mut()
                                .zip(vf)
                                .for_each(|(a, b)| *a = b.mul_add(vs, *a));
                        }
                    }
                    // One rounding, as ggml's `S = S*ms + vs` compiles (GCC contracts it to an
                    // FMA under its default -ffp-contract=fast).
                    sum = sum.mul_add(ms, vs);
                }
                if kv.ty == GgmlType::F16 {
                    crate::f16ops::to_f32(acc16, acc);
                }
                (m, sum)
            };
            let n_kv = tiles.map_or(0, |tl| tl.split_kv.get(t).map_or(0, |&v| v as usize));
            if n_kv >= SPLIT_KV_MIN {
                // llama.cpp's split-KV decode (`use_split_kv_path`): the cell range cut into
                // one chunk per thread, each an online softmax of its own, the partials merged
                // in chunk order (`ggml_flash_attn_ext_reduce_partials`).
                let pos = &tiles.expect("n_kv > 0 only with tiles").pos[vis_off[t]..vis_off[t + 1]];
                let cs = n_kv.div_ceil(nth);
                let part = &mut part[..vd];
                let (mut mf, mut sf) = (f32::NEG_INFINITY, 0f32);
                o.fill(0.0);
                let mut x = 0;
                for ci in 0..nth {
                    let hi = ((ci + 1) * cs).min(n_kv);
                    let x0 = x;
                    while x < cells.len() && (pos[x] as usize) < hi {
                        x += 1;
                    }
                    let (mc, sc) = online(&cells[x0..x], acc16, part);
                    if sc == 0.0 {
                        continue;
                    }
                    let mnew = mf.max(mc);
                    let (so, sn) = ((mf - mnew).exp(), (mc - mnew).exp());
                    // `a·so + b·sn` as GCC contracts it: the first product fused.
                    for (a, &b) in o.iter_mut().zip(part.iter()) {
                        *a = a.mul_add(so, b * sn);
                    }
                    sf = sf.mul_add(so, sc * sn);
                    mf = mnew;
                }
                if sf != 0.0 {
                    let inv = 1.0 / sf;
                    o.iter_mut().for_each(|a| *a *= inv);
                }
                return;
            }
            let (_, sum) = online(cells, acc16, o);
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            o.iter_mut().for_each(|a| *a *= inv);
        }
    });
    if let Some(tl) = tiles.filter(|_| n_tiled > 0) {
        tiled_groups(pool, p, scale, q, kv, visible, vis_off, tl, optr, scratch);
    }
    Ok(())
}

impl TilePlan {
    /// Groups the tiled tokens of `tl` by sequence and cuts the work items.
    fn build(&mut self, tl: AttnTiles<'_>, visible: &[u32], vis_off: &[usize], n_head_kv: usize) {
        // Items: (sequence, KV head, a run of up to ITEM_TOKENS of its tokens), so that models
        // with one KV head still spread over the threads.
        const ITEM_TOKENS: usize = 32;
        let n_tokens = vis_off.len() - 1;
        // Positions a token sees: its list is in position order.
        let seen = |t: usize| {
            let ps = &tl.pos[vis_off[t]..vis_off[t + 1]];
            ps.first().zip(ps.last()).map(|(&a, &z)| (a, z + 1))
        };
        self.cell_of.clear();
        self.groups.clear();
        self.toks.clear();
        self.items.clear();
        for t in 0..n_tokens {
            let s = tl.seq[t];
            if !tl.tiled(t) || self.groups.iter().any(|g| g.seq == s) {
                continue;
            }
            // A sequence first seen at `t`: its tiled tokens, position range and cells.
            let t0 = self.toks.len();
            self.toks
                .extend((t..n_tokens).filter(|&u| tl.tiled(u) && tl.seq[u] == s));
            let toks = &self.toks[t0..];
            let (lo, hi) = toks
                .iter()
                .filter_map(|&u| seen(u))
                .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
                .unwrap_or((0, 0));
            // Tile-aligned start so tiles index from 0.
            let lo = lo / FA_TILE as u32 * FA_TILE as u32;
            let base = self.cell_of.len();
            self.cell_of.resize(base + (hi - lo) as usize, u32::MAX);
            for &u in toks {
                let r = vis_off[u]..vis_off[u + 1];
                for (&c, &ps) in visible[r.clone()].iter().zip(&tl.pos[r]) {
                    self.cell_of[base + (ps - lo) as usize] = c;
                }
            }
            let gi = self.groups.len();
            self.groups.push(TileGroup { seq: s, lo, base });
            for hk in 0..n_head_kv {
                for a in (t0..self.toks.len()).step_by(ITEM_TOKENS) {
                    let run = a..(a + ITEM_TOKENS).min(self.toks.len());
                    // Tiles up to the last position these tokens see.
                    let run_hi = self.toks[run.clone()]
                        .iter()
                        .filter_map(|&u| seen(u))
                        .map(|(_, z)| z)
                        .max()
                        .unwrap_or(lo)
                        .min(hi);
                    self.items.push((gi, hk, run, run_hi));
                }
            }
        }
    }
}

/// The tiled tokens of [`attention_tiled`], one item per (sequence, KV head): every 64-position
/// tile's K transposed to f32 once, then each (token, query head) of the item against it.
#[allow(clippy::too_many_arguments)]
fn tiled_groups(
    pool: &ThreadPool,
    p: &AttnParams,
    scale: f32,
    q: &[f32],
    kv: &KvView<'_>,
    visible: &[u32],
    vis_off: &[usize],
    tl: AttnTiles<'_>,
    optr: SendPtr<f32>,
    scratch: &mut AttnScratch,
) {
    let AttnScratch { threads, plan } = scratch;
    plan.build(tl, visible, vis_off, p.n_head_kv);
    let TilePlan {
        cell_of,
        groups,
        toks,
        items,
    } = &*plan;
    let group = p.n_head / p.n_head_kv;
    let (kd, vd) = (p.head_dim, p.head_dim_v);
    let es = elt_size(kv.ty);
    let (k_stride, v_stride) = (p.n_head_kv * kd * es, p.n_head_kv * vd * es);
    let f16 = kv.ty == GgmlType::F16;
    let sptr = SendPtr::new(threads);
    pool.for_each(items.len(), &|item, ith| {
        // SAFETY: each thread uses only its own scratch entry.
        let bufs = unsafe { &mut sptr.slice(ith, 1)[0] };
        let (gi, hk, ref run, hi) = items[item];
        let TileGroup { lo, base, .. } = groups[gi];
        let toks = &toks[run.clone()];
        let rows = toks.len() * group;
        bufs.ms.clear();
        bufs.ms.resize(rows, (f32::NEG_INFINITY, 0.0));
        bufs.cur.clear();
        bufs.cur.extend(toks.iter().map(|&t| vis_off[t]));
        bufs.kt.resize(kd * FA_TILE, 0.0);
        for &t in toks {
            for j in 0..group {
                // SAFETY: (t, h) output rows are disjoint between items.
                let o = unsafe { optr.slice((t * p.n_head + hk * group + j) * vd, vd) };
                o.fill(0.0);
            }
        }
        let mut t0 = lo;
        while t0 < hi {
            let t1 = (t0 + FA_TILE as u32).min(hi);
            // K of the tile, transposed: kt[d·64 + lane] (0 where no cell).
            bufs.kt.fill(0.0);
            for ps in t0..t1 {
                let c = cell_of[base + (ps - lo) as usize];
                if c == u32::MAX {
                    continue;
                }
                let kr = &kv.k[c as usize * k_stride + hk * kd * es..][..kd * es];
                let lane = (ps - t0) as usize;
                for d in 0..kd {
                    bufs.kt[d * FA_TILE + lane] = load(f16, kr, d);
                }
            }
            for (ti, &t) in toks.iter().enumerate() {
                // This token's visible positions inside the tile, as lanes.
                let end = vis_off[t + 1];
                let mut cur = bufs.cur[ti];
                let mut mask = 0u64;
                while cur < end && tl.pos[cur] < t1 {
                    mask |= 1 << (tl.pos[cur] - t0);
                    cur += 1;
                }
                let first = bufs.cur[ti];
                bufs.cur[ti] = cur;
                if mask == 0 {
                    continue;
                }
                for j in 0..group {
                    let h = hk * group + j;
                    let qh = &q[(t * p.n_head + h) * kd..][..kd];
                    let mut kq = [0f32; FA_TILE];
                    scores(qh, &bufs.kt, &mut kq);
                    let mut tmax = f32::NEG_INFINITY;
                    for (l, v) in kq.iter_mut().enumerate() {
                        if mask >> l & 1 == 0 {
                            *v = f32::NEG_INFINITY;
                            continue;
                        }
                        *v *= scale;
                        if p.softcap > 0.0 {
                            *v = v.tanh() * p.softcap;
                        }
                        tmax = tmax.max(*v);
                    }
                    let (m, sum) = &mut bufs.ms[ti * group + j];
                    // SAFETY: as above.
                    let o = unsafe { optr.slice((t * p.n_head + h) * vd, vd) };
                    let mnew = m.max(tmax);
                    if mnew > *m {
                        let ms = (*m - mnew).exp();
                        o.iter_mut().for_each(|a| *a *= ms);
                        *sum *= ms;
                    }
                    *m = mnew;
                    let tsum = softmax_tile(&mut kq, mnew);
                    *sum = (*sum as f64 + tsum) as f32;
                    let vrow = |x: usize| {
                        let c = visible[x] as usize;
                        &kv.v[c * v_stride + hk * vd * es..][..vd * es]
                    };
                    let wt = |x: usize| kq[(tl.pos[x] - t0) as usize];
                    mad_cells(o, first..cur, &vrow, &wt, f16);
                }
            }
            t0 = t1;
        }
        for (ti, &t) in toks.iter().enumerate() {
            for j in 0..group {
                let (_, sum) = bufs.ms[ti * group + j];
                // SAFETY: as above.
                let o = unsafe { optr.slice((t * p.n_head + hk * group + j) * vd, vd) };
                let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
                o.iter_mut().for_each(|a| *a *= inv);
            }
        }
    });
}

/// AVX-512F kernels usable (checked once; FERRITE_NO_SIMD turns them off).
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var_os("FERRITE_NO_SIMD").is_none() && is_x86_feature_detected!("avx512f")
    })
}

/// `kq[l] = Σ_d q[d]·kt[d·64 + l]`, one fma chain per lane in `d` order (as ggml's
/// `simd_gemm` over a zeroed tile).
fn scores(q: &[f32], kt: &[f32], kq: &mut [f32; FA_TILE]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: avx512f checked; `kt` holds q.len() rows of 64.
        unsafe { x86::scores(q, kt, kq) };
        return;
    }
    kq.fill(0.0);
    for (d, &qd) in q.iter().enumerate() {
        let row = &kt[d * FA_TILE..(d + 1) * FA_TILE];
        for (a, &k) in kq.iter_mut().zip(row) {
            *a = qd.mul_add(k, *a);
        }
    }
}

/// `kq[l] = expf_v(kq[l] − m)` (ggml's vectorized `expf`) and the sum of the 64 values as
/// ggml's `ggml_vec_soft_max_f32` forms it: per 16 lanes a [`reduce16`], added in f64.
fn softmax_tile(kq: &mut [f32; FA_TILE], m: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: avx512f checked.
        return unsafe { x86::softmax_tile(kq, m) };
    }
    let mut tsum = 0f64;
    for ch in kq.chunks_exact_mut(16) {
        for v in ch.iter_mut() {
            *v = crate::ops::expf_v(*v - m);
        }
        tsum += reduce16(ch) as f64;
    }
    tsum
}

/// `o[d] = fma(w(x), v(x)[d], o[d])` for the cells `xs` in order, for every element `d`
/// (`v(x)` a cache row: f16 when `f16`, else f32).
fn mad_cells<'a>(
    o: &mut [f32],
    xs: std::ops::Range<usize>,
    v: &dyn Fn(usize) -> &'a [u8],
    w: &dyn Fn(usize) -> f32,
    f16: bool,
) {
    let mut d0 = 0;
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        d0 = o.len() & !15;
        // SAFETY: avx512f checked; rows hold o.len() elements (asserted inside).
        unsafe { x86::mad_cells(&mut o[..d0], xs.clone(), v, w, f16) };
    }
    for x in xs {
        let (row, wx) = (v(x), w(x));
        for (d, a) in o.iter_mut().enumerate().skip(d0) {
            *a = wx.mul_add(load(f16, row, d), *a);
        }
    }
}

/// Element `i` of a cache row (`b`: f16 when `f16`, else f32 bytes) as f32.
#[inline]
fn load(f16: bool, b: &[u8], i: usize) -> f32 {
    if f16 {
        half::f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32()
    } else {
        f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    }
}

/// Σ of 16 lanes in GCC's `_mm512_reduce_add_ps` order: halves, quarters, then pairs.
fn reduce16(v: &[f32]) -> f32 {
    let mut t = [0f32; 8];
    for l in 0..8 {
        t[l] = v[l] + v[l + 8];
    }
    let mut u = [0f32; 4];
    for l in 0..4 {
        u[l] = t[l] + t[l + 4];
    }
    (u[0] + u[2]) + (u[1] + u[3])
}

/// `k · q` over `n` f16 pairs in the order of ggml's `ggml_vec_dot_f16` on an AVX-512 build
/// (the kernel llama.cpp's CPU flash attention uses for `q·k` with an F16 cache): 64 elements
/// per step into four 16-lane f32 FMA accumulators, reduced `(a0 + a2) + (a1 + a3)`, then the
/// lanes as `_mm512_reduce_add_ps` (256-bit halves, 128-bit halves, `(l0 + l2) + (l1 + l3)`),
/// widened to f64; the `n % 64` tail is added in f64 one product at a time. Products of two
/// halves are exact in f32. A different pairing moves `q·k` by an ulp, which the f16 V
/// accumulator turns into ~1e-4 relative differences of the attention output.
pub fn dot_f16_ggml(n: usize, k: &[u8], q: &[u8]) -> f32 {
    let h = |b: &[u8], i: usize| load(true, b, i);
    let np = n & !63;
    let mut acc = [[0f32; 16]; 4];
    for i in (0..np).step_by(64) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, al) in a.iter_mut().enumerate() {
                let e = i + 16 * j + l;
                *al = h(k, e).mul_add(h(q, e), *al);
            }
        }
    }
    let mut sum = if np > 0 {
        let mut v = [0f32; 16];
        for l in 0..16 {
            v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        }
        reduce16(&v) as f64
    } else {
        0.0
    };
    for e in np..n {
        sum += (h(k, e) * h(q, e)) as f64;
    }
    sum as f32
}

/// The fastest implementation of [`dot_f16_ggml`] on this CPU (bit-identical).
fn dot_f16_ggml_fn() -> fn(usize, &[u8], &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("FERRITE_NO_SIMD").is_none() && is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f checked.
        return |n, k, q| unsafe { x86::dot_f16_ggml(n, k, q) };
    }
    dot_f16_ggml
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::softmax_tile`] with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn softmax_tile(kq: &mut [f32; super::FA_TILE], m: f32) -> f64 {
        let mut tsum = 0f64;
        for j in 0..super::FA_TILE / 16 {
            let p = kq.as_mut_ptr().add(16 * j);
            let v = crate::ops::x86::expf(_mm512_sub_ps(_mm512_loadu_ps(p), _mm512_set1_ps(m)));
            _mm512_storeu_ps(p, v);
            let mut l = [0f32; 16];
            _mm512_storeu_ps(l.as_mut_ptr(), v);
            tsum += super::reduce16(&l) as f64;
        }
        tsum
    }

    /// [`super::mad_cells`] for `o.len()` a multiple of 16, 128 elements of `o` kept in
    /// registers across the cells.
    #[target_feature(enable = "avx512f,f16c")]
    pub unsafe fn mad_cells<'a>(
        o: &mut [f32],
        xs: std::ops::Range<usize>,
        v: &dyn Fn(usize) -> &'a [u8],
        w: &dyn Fn(usize) -> f32,
        f16: bool,
    ) {
        let n = o.len();
        assert!(n.is_multiple_of(16));
        let op = o.as_mut_ptr();
        let mut d0 = 0;
        while d0 < n {
            let k = ((n - d0) / 16).min(8);
            let mut acc = [_mm512_setzero_ps(); 8];
            for (j, a) in acc.iter_mut().enumerate().take(k) {
                *a = _mm512_loadu_ps(op.add(d0 + 16 * j));
            }
            for x in xs.clone() {
                let row = v(x);
                assert!(row.len() >= n * if f16 { 2 } else { 4 });
                let (wv, rp) = (_mm512_set1_ps(w(x)), row.as_ptr());
                for (j, a) in acc.iter_mut().enumerate().take(k) {
                    let e = d0 + 16 * j;
                    let vv = if f16 {
                        _mm512_cvtph_ps(_mm256_loadu_si256(rp.add(2 * e) as *const __m256i))
                    } else {
                        _mm512_loadu_ps(rp.add(4 * e) as *const f32)
                    };
                    *a = _mm512_fmadd_ps(wv, vv, *a);
                }
            }
            for (j, a) in acc.iter().enumerate().take(k) {
                _mm512_storeu_ps(op.add(d0 + 16 * j), *a);
            }
            d0 += 16 * k;
        }
    }

    /// [`super::scores`] with AVX-512F: 64 lanes in four `zmm`, one fma per dimension each.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores(q: &[f32], kt: &[f32], kq: &mut [f32; super::FA_TILE]) {
        assert!(kt.len() >= q.len() * super::FA_TILE);
        let mut a = [_mm512_setzero_ps(); 4];
        for (d, &qd) in q.iter().enumerate() {
            let qv = _mm512_set1_ps(qd);
            let row = kt.as_ptr().add(d * super::FA_TILE);
            for (j, aj) in a.iter_mut().enumerate() {
                *aj = _mm512_fmadd_ps(qv, _mm512_loadu_ps(row.add(16 * j)), *aj);
            }
        }
        for (j, aj) in a.iter().enumerate() {
            _mm512_storeu_ps(kq.as_mut_ptr().add(16 * j), *aj);
        }
    }

    /// [`super::dot_f16_ggml`] with AVX-512F (same operations, same order).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f16_ggml(n: usize, k: &[u8], q: &[u8]) -> f32 {
        assert!(k.len() >= 2 * n && q.len() >= 2 * n);
        let np = n & !63;
        let (kp, qp) = (k.as_ptr(), q.as_ptr());
        let mut a = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i < np {
            for (j, aj) in a.iter_mut().enumerate() {
                let o = 2 * (i + 16 * j);
                let x = _mm512_cvtph_ps(_mm256_loadu_si256(kp.add(o) as *const __m256i));
                let y = _mm512_cvtph_ps(_mm256_loadu_si256(qp.add(o) as *const __m256i));
                *aj = _mm512_fmadd_ps(x, y, *aj);
            }
            i += 64;
        }
        let mut sum = if np > 0 {
            let v = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
            let t = _mm256_add_ps(lo, hi);
            let u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
            let w = _mm_add_ps(u, _mm_movehl_ps(u, u));
            _mm_cvtss_f32(_mm_add_ss(w, _mm_movehdup_ps(w))) as f64
        } else {
            0.0
        };
        let h = |b: &[u8], e: usize| super::load(true, b, e);
        for e in np..n {
            sum += (h(k, e) * h(q, e)) as f64;
        }
        sum as f32
    }
}

fn check_shapes(
    p: &AttnParams,
    q: &[f32],
    kv: &KvView<'_>,
    out: &[f32],
    n_tokens: usize,
) -> Result<(), ComputeError> {
    let chk = |what, expected, got| {
        if expected == got {
            Ok(())
        } else {
            Err(ComputeError::Shape {
                what,
                expected,
                got,
            })
        }
    };
    chk("attention q", n_tokens * p.n_head * p.head_dim, q.len())?;
    chk(
        "attention out",
        n_tokens * p.n_head * p.head_dim_v,
        out.len(),
    )?;
    chk(
        "attention n_head % n_head_kv",
        0,
        p.n_head % p.n_head_kv.max(1),
    )?;
    let es = elt_size(kv.ty);
    chk(
        "attention k/v cells",
        kv.k.len() / (p.n_head_kv * p.head_dim * es),
        kv.v.len() / (p.n_head_kv * p.head_dim_v * es),
    )
}

/// The plain twin: f32 dequantized K/V, f64 dot products and sums, one thread.
pub fn attention_ref(
    p: &AttnParams,
    q: &[f32],
    kv: &KvView<'_>,
    visible: &[u32],
    vis_off: &[usize],
    out: &mut [f32],
) -> Result<(), ComputeError> {
    let n_tokens = vis_off.len() - 1;
    check_shapes(p, q, kv, out, n_tokens)?;
    let es = elt_size(kv.ty);
    let deq = |b: &[u8], n: usize| {
        let mut v = vec![0f32; n];
        ferrite_quants::dequantize_row(kv.ty, b, &mut v).map(|_| v)
    };
    let k_all = deq(kv.k, kv.k.len() / es)?;
    let v_all = deq(kv.v, kv.v.len() / es)?;
    let group = p.n_head / p.n_head_kv;
    let (kd, vd) = (p.head_dim, p.head_dim_v);
    for t in 0..n_tokens {
        let cells = &visible[vis_off[t]..vis_off[t + 1]];
        for h in 0..p.n_head {
            let hk = h / group;
            let qh = &q[(t * p.n_head + h) * kd..][..kd];
            let mut s: Vec<f64> = cells
                .iter()
                .map(|&c| {
                    let kr = &k_all[(c as usize * p.n_head_kv + hk) * kd..][..kd];
                    let x = qh
                        .iter()
                        .zip(kr)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * p.scale as f64;
                    if p.softcap > 0.0 {
                        (x / p.softcap as f64).tanh() * p.softcap as f64
                    } else {
                        x
                    }
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            s.iter_mut().for_each(|x| *x = (*x - m).exp());
            let z: f64 = s.iter().sum();
            let o = &mut out[(t * p.n_head + h) * vd..][..vd];
            for (d, od) in o.iter_mut().enumerate() {
                *od = (cells
                    .iter()
                    .zip(&s)
                    .map(|(&c, &w)| w * v_all[(c as usize * p.n_head_kv + hk) * vd + d] as f64)
                    .sum::<f64>()
                    / z) as f32;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BATCHED_GE64;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values `amp · lcg` in the cache type `ty` (F16/F32 bytes).
    fn rand_cache(ty: GgmlType, n: usize, amp: f32, seed: &mut u64) -> Vec<u8> {
        let x: Vec<f32> = (0..n).map(|_| lcg(seed) * amp).collect();
        let mut b = vec![0u8; ferrite_quants::row_bytes(ty, n).unwrap()];
        ferrite_quants::quantize_row(ty, &x, &mut b).unwrap();
        b
    }

    /// The AVX-512 `dot_f16_ggml` equals the scalar emulation bit for bit (head sizes with
    /// and without a 64-element tail), and both are within f32 rounding of an f64 dot.
    #[test]
    fn dot_f16_ggml_fast_matches_scalar() {
        let mut seed = 11u64;
        for n in [16, 40, 64, 80, 128, 200, 256] {
            for _ in 0..50 {
                let mk = |seed: &mut u64| -> Vec<u8> {
                    (0..n)
                        .flat_map(|_| half::f16::from_f32(lcg(seed) * 8.0).to_bits().to_le_bytes())
                        .collect()
                };
                let (k, q) = (mk(&mut seed), mk(&mut seed));
                let want = dot_f16_ggml(n, &k, &q);
                assert_eq!(
                    dot_f16_ggml_fn()(n, &k, &q).to_bits(),
                    want.to_bits(),
                    "n {n}"
                );
                let h = |b: &[u8], i: usize| {
                    half::f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f64()
                };
                let exact: f64 = (0..n).map(|i| h(&k, i) * h(&q, i)).sum();
                let mag: f64 = (0..n).map(|i| (h(&k, i) * h(&q, i)).abs()).sum();
                assert!((want as f64 - exact).abs() <= 1e-6 * mag + 1e-30, "n {n}");
            }
        }
    }

    /// llama.cpp's split-KV decode: close to `attention_ref` (5e-3, f16 cache), and with one
    /// thread (one chunk) bit-identical to the one-row path, as llama.cpp's is.
    #[test]
    fn split_kv_decode_matches_reference() {
        let mut seed = 33u64;
        let n_cells = 600usize;
        let p = AttnParams {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 32,
            head_dim_v: 16,
            scale: 0.2,
            softcap: 0.0,
        };
        let ty = GgmlType::F16;
        let kb = rand_cache(ty, n_cells * 32, 2.0, &mut seed);
        let vb = rand_cache(ty, n_cells * 16, 1.0, &mut seed);
        let kv = KvView { ty, k: &kb, v: &vb };
        let q: Vec<f32> = (0..64).map(|_| lcg(&mut seed)).collect();
        let vis: Vec<u32> = (0..450).collect();
        let pos = vis.clone();
        let off = vec![0, vis.len()];
        let mut want = vec![0f32; 32];
        attention_ref(&p, &q, &kv, &vis, &off, &mut want).unwrap();
        let run = |nth: usize, split: u32| {
            let pool = ThreadPool::new(nth);
            let mut sc = AttnScratch::new(nth, 32, 16);
            let tiles = AttnTiles {
                batched: &[0],
                seq: &[0],
                pos: &pos,
                split_kv: &[split],
            };
            let mut out = vec![0f32; 32];
            attention_tiled(
                &pool,
                &p,
                &q,
                &kv,
                &vis,
                &off,
                Some(tiles),
                &mut out,
                &mut sc,
            )
            .unwrap();
            out
        };
        for nth in [1, 2, 3] {
            let got = run(nth, 512);
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!((g - e).abs() < 5e-3, "nth {nth} [{i}] {g} vs {e}");
            }
        }
        let (one, plain) = (run(1, 512), run(1, 0));
        assert!(one
            .iter()
            .zip(&plain)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // Two chunks really change the summation (else this test could not see the path).
        assert!(run(2, 512)
            .iter()
            .zip(&plain)
            .any(|(a, b)| a.to_bits() != b.to_bits()));
    }

    /// The tiled (llama.cpp ≥ 64-token batch) order: close to `attention_ref` (f64; 2e-5,
    /// f32 query and accumulators, |v| ≤ 1), and per (token, head) independent of the other
    /// tokens and sequences in the call and of the thread count (bit-exact against the token
    /// computed alone). Two sequences over 150 positions (3 tiles, the last partial), causal.
    #[test]
    fn tiled_attention_matches_reference_and_is_per_token() {
        let mut seed = 21u64;
        let n_pos = 150usize;
        let p = AttnParams {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 32,
            head_dim_v: 16,
            scale: 0.2,
            softcap: 0.0,
        };
        for ty in [GgmlType::F32, GgmlType::F16] {
            let n_cells = 2 * n_pos;
            let kb = rand_cache(ty, n_cells * 64, 2.0, &mut seed);
            let vb = rand_cache(ty, n_cells * 32, 1.0, &mut seed);
            let kv = KvView { ty, k: &kb, v: &vb };
            // Sequence s holds position i at cell s·n_pos + i; tokens: the last 70 positions
            // of sequence 0 and the last 90 of sequence 1.
            let toks: Vec<(u32, u32)> = (80..150)
                .map(|i| (0u32, i as u32))
                .chain((60..150).map(|i| (1u32, i as u32)))
                .collect();
            let n = toks.len();
            let q: Vec<f32> = (0..n * 4 * 32).map(|_| lcg(&mut seed)).collect();
            let build = |sel: &[usize]| {
                let (mut vis, mut pos, mut off) = (vec![], vec![], vec![0]);
                for &t in sel {
                    let (s, ps) = toks[t];
                    for i in 0..=ps {
                        vis.push(s * n_pos as u32 + i);
                        pos.push(i);
                    }
                    off.push(vis.len());
                }
                (vis, pos, off)
            };
            let all: Vec<usize> = (0..n).collect();
            let (vis, pos, off) = build(&all);
            let seq: Vec<u32> = toks.iter().map(|t| t.0).collect();
            let batched = vec![BATCHED_GE64; n];
            let mut want = vec![0f32; n * 4 * 16];
            attention_ref(&p, &q, &kv, &vis, &off, &mut want).unwrap();
            let mut got = vec![0f32; want.len()];
            for nth in [1, 2, 3] {
                let pool = ThreadPool::new(nth);
                let mut sc = AttnScratch::new(nth, 32, 16);
                let tiles = AttnTiles {
                    batched: &batched,
                    seq: &seq,
                    pos: &pos,
                    split_kv: &[],
                };
                attention_tiled(
                    &pool,
                    &p,
                    &q,
                    &kv,
                    &vis,
                    &off,
                    Some(tiles),
                    &mut got,
                    &mut sc,
                )
                .unwrap();
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() < 2e-5, "{ty:?} nth {nth} [{i}] {g} vs {e}");
                }
            }
            let pool = ThreadPool::new(1);
            let mut sc = AttnScratch::new(1, 32, 16);
            for t in [0, 1, 37, 69, 70, 71, 120, n - 1] {
                let (v1, p1, o1) = build(&[t]);
                let mut one = vec![0f32; 4 * 16];
                let tiles = AttnTiles {
                    batched: &[BATCHED_GE64],
                    seq: &seq[t..t + 1],
                    pos: &p1,
                    split_kv: &[],
                };
                let qt = &q[t * 128..(t + 1) * 128];
                attention_tiled(&pool, &p, qt, &kv, &v1, &o1, Some(tiles), &mut one, &mut sc)
                    .unwrap();
                let g = &got[t * 64..(t + 1) * 64];
                assert!(
                    g.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{ty:?} token {t}: batched differs from alone"
                );
            }
        }
    }

    /// Oracle: `attention_ref` (f64). Tolerance: 1e-5 for an f32 cache; 5e-3 for f16 (query
    /// rounded to f16 before `q·k` and an f16 V accumulator, as ggml does; |v| ≤ 1).
    #[test]
    fn attention_matches_reference() {
        let mut seed = 3u64;
        let (n_cells, n_tokens) = (23, 5);
        for (ty, tol) in [(GgmlType::F32, 1e-5), (GgmlType::F16, 5e-3)] {
            for softcap in [0.0, 2.0] {
                let p = AttnParams {
                    n_head: 4,
                    n_head_kv: 2,
                    head_dim: 16,
                    head_dim_v: 8,
                    scale: 0.25,
                    softcap,
                };
                let kb = rand_cache(ty, n_cells * 2 * 16, 2.0, &mut seed);
                let vb = rand_cache(ty, n_cells * 2 * 8, 1.0, &mut seed);
                let kv = KvView { ty, k: &kb, v: &vb };
                let q: Vec<f32> = (0..n_tokens * 4 * 16).map(|_| lcg(&mut seed)).collect();
                // Causal-with-window style lists of different lengths, not contiguous.
                let mut visible = vec![];
                let mut off = vec![0];
                for t in 0..n_tokens {
                    visible.extend(
                        (0..n_cells as u32).filter(|c| {
                            !(c + t as u32).is_multiple_of(3) && *c <= 10 + 3 * t as u32
                        }),
                    );
                    off.push(visible.len());
                }
                let mut want = vec![0f32; n_tokens * 4 * 8];
                attention_ref(&p, &q, &kv, &visible, &off, &mut want).unwrap();
                for nth in [1, 2, 3] {
                    let pool = ThreadPool::new(nth);
                    let mut s = AttnScratch::new(nth, 16, 8);
                    let mut got = vec![0f32; want.len()];
                    attention(&pool, &p, &q, &kv, &visible, &off, &mut got, &mut s).unwrap();
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - e).abs() < tol,
                            "{ty:?} cap {softcap} nth {nth} [{i}] {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    /// Batch invariance: a token's output is bit-identical alone (one token, one thread) and in
    /// a batch with others for any thread count, and where its visible K/V rows are stored in
    /// the cache does not matter, only their visiting order (which the caller fixes: position
    /// order). Oracle: the token alone; tolerance 0.
    #[test]
    fn token_output_does_not_depend_on_batch_or_cell_placement() {
        let mut seed = 9u64;
        let (n_cells, n_tokens) = (29, 6);
        let p = AttnParams {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            head_dim_v: 8,
            scale: 0.25,
            softcap: 0.0,
        };
        for ty in [GgmlType::F32, GgmlType::F16] {
            let es = elt_size(ty);
            let (kr, vr) = (2 * 16 * es, 2 * 8 * es);
            let kb = rand_cache(ty, n_cells * 32, 1.0, &mut seed);
            let vb = rand_cache(ty, n_cells * 16, 1.0, &mut seed);
            let q: Vec<f32> = (0..n_tokens * 64).map(|_| lcg(&mut seed)).collect();
            let lists: Vec<Vec<u32>> = (0..n_tokens)
                .map(|t| {
                    (0..n_cells as u32)
                        .filter(|c| !(c * 7 + t as u32).is_multiple_of(4))
                        .collect()
                })
                .collect();
            let run = |nth: usize, k: &[u8], v: &[u8], q: &[f32], lists: &[Vec<u32>]| {
                let pool = ThreadPool::new(nth);
                let mut s = AttnScratch::new(nth, 16, 8);
                let vis: Vec<u32> = lists.concat();
                let mut off = vec![0];
                lists
                    .iter()
                    .for_each(|l| off.push(off.last().unwrap() + l.len()));
                let mut out = vec![0f32; lists.len() * 32];
                let kv = KvView { ty, k, v };
                attention(&pool, &p, q, &kv, &vis, &off, &mut out, &mut s).unwrap();
                out
            };
            let alone: Vec<Vec<f32>> = (0..n_tokens)
                .map(|t| run(1, &kb, &vb, &q[t * 64..(t + 1) * 64], &lists[t..t + 1]))
                .collect();
            // The same rows stored at other cells (cell c moved to perm[c]).
            let perm: Vec<usize> = (0..n_cells).map(|c| (c * 11 + 5) % n_cells).collect();
            let (mut kp, mut vp) = (vec![0u8; kb.len()], vec![0u8; vb.len()]);
            for (c, &d) in perm.iter().enumerate() {
                kp[d * kr..(d + 1) * kr].copy_from_slice(&kb[c * kr..(c + 1) * kr]);
                vp[d * vr..(d + 1) * vr].copy_from_slice(&vb[c * vr..(c + 1) * vr]);
            }
            let moved: Vec<Vec<u32>> = lists
                .iter()
                .map(|l| l.iter().map(|&c| perm[c as usize] as u32).collect())
                .collect();
            for nth in [1, 2, 3] {
                for (k, v, l) in [(&kb, &vb, &lists), (&kp, &vp, &moved)] {
                    let got = run(nth, k, v, &q, l);
                    for (t, a) in alone.iter().enumerate() {
                        let g = &got[t * 32..(t + 1) * 32];
                        let same = g.iter().zip(a).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{ty:?} nth {nth} token {t}");
                    }
                }
            }
        }
    }
}
