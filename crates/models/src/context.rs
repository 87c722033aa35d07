//! An inference context: a KV cache, a thread pool and every scratch buffer, allocated once;
//! `decode` runs a batch of tokens from any number of sequences through the model.

use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::model::{Act, Ffn, LayerWeights, Model, Qkv};
use crate::observe::{observe, observe_expert, MatmulObserver};
use ferrite_compute::{
    attention_tiled, matmul, matmul_many, ops, AttnParams, AttnScratch, AttnTiles, GeluImpl,
    KvView, MatmulScratch, RopeParams, ThreadPool, WeightView, BATCHED_GE64, BATCHED_GE8,
    BATCHED_GEMM4, SPLIT_KV_MIN,
};
use ferrite_gguf::GgmlType;

#[derive(Debug, Clone)]
pub struct ContextParams {
    /// KV cells shared by all sequences (and the largest position + 1).
    pub n_ctx: usize,
    /// Number of sequences the cache can hold.
    pub n_seq: usize,
    /// Tokens per forward pass; larger batches are split (the scratch is sized by this).
    pub n_batch: usize,
    pub n_threads: usize,
    /// F16 (llama.cpp's default) or F32.
    pub kv_type: GgmlType,
    /// GELU as llama.cpp computes it (f16 table, the default) or exact (as transformers).
    pub gelu: GeluImpl,
}

impl Default for ContextParams {
    fn default() -> Self {
        ContextParams {
            n_ctx: 2048,
            n_seq: 1,
            n_batch: 512,
            n_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kv_type: GgmlType::F16,
            gelu: GeluImpl::Ggml,
        }
    }
}

/// Tokens of possibly several sequences, all the same length. Row `i` of the returned logits
/// corresponds to the `i`-th `true` in `want_logits`.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub tokens: &'a [u32],
    pub pos: &'a [u32],
    pub seq_id: &'a [u32],
    pub want_logits: &'a [bool],
}

struct Buffers {
    x: Vec<f32>,         // (n, n_embd) residual stream
    cur: Vec<f32>,       // (n, n_embd) normed input of a sub-block
    tmp: Vec<f32>,       // (n, n_embd) sub-block output
    q: Vec<f32>,         // (n, n_head * head_dim)
    k: Vec<f32>,         // (n, n_head_kv * head_dim)
    v: Vec<f32>,         // (n, n_head_kv * head_dim_v)
    qkv: Vec<f32>,       // (n, q + k + v) for fused projections
    attn: Vec<f32>,      // (n, n_head * head_dim_v)
    ff_a: Vec<f32>,      // (n, 2 * max_ff)
    ff_b: Vec<f32>,      // (n, max_ff)
    rope_full: Vec<f32>, // (n, n_rot) cos/sin per token
    rope_swa: Vec<f32>,
    kv_row: Vec<u8>, // one K or V row in the cache type
    cells: Vec<usize>,
    vis_seqs: Vec<u32>,              // sequences of the micro-batch (sorted)
    vis_cells: Vec<(u32, u32, u32)>, // (seq, pos, cell) of their cells, sorted
    vis_full: Vec<u32>,
    off_full: Vec<usize>,
    pos_full: Vec<u32>, // position of each cell of `vis_full`
    vis_swa: Vec<u32>,
    off_swa: Vec<usize>,
    pos_swa: Vec<u32>,
    split_kv: Vec<u32>, // (n) llama.cpp's KV view size when it splits the decode, else 0
    router: Vec<f32>,   // (n, n_expert)
    routes: Vec<(u32, f32)>, // (n, n_expert_used): expert, weight
    moe_tok: Vec<(usize, f32)>, // tokens routed to the current expert
    moe_in: Vec<f32>,   // (n, n_embd) gathered inputs of one expert
    moe_out: Vec<f32>,  // (n, n_embd)
    out_rows: Vec<f32>, // (n, n_embd) rows that want logits
    mm: MatmulScratch,
    batched: Vec<u8>, // (n) llama.cpp's batched-kernel flags per token (`set_batched`)
    batched_out: Vec<u8>, // (n) the same over the tokens that want logits only
    seq_counts: Vec<(u32, u32, u32)>, // (seq, tokens, seen) while deriving them
    obs: Option<MatmulObserver>, // called before every weight product when set
    moe_ids: Vec<usize>, // token of each row of `moe_in` (for `obs`)
    attn_scratch: AttnScratch,
}

pub struct Context<'m> {
    model: &'m Model,
    pool: ThreadPool,
    kv: KvCache,
    n_batch: usize,
    gelu: GeluImpl,
    b: Buffers,
    logits: Vec<f32>,
    /// RoPE for this context's size (LongRoPE picks its factors by context size).
    ropes: Ropes,
}

/// RoPE of full-attention and sliding-window layers.
struct Ropes {
    full: RopeParams,
    swa: RopeParams,
}

impl<'m> Context<'m> {
    pub fn new(model: &'m Model, p: ContextParams) -> Result<Context<'m>> {
        let hp = &model.hp;
        let n = p.n_batch.max(1);
        let kv = KvCache::new(hp, p.n_ctx, p.n_seq, p.kv_type)?;
        let nq = hp.n_head * hp.head_dim;
        let max_ff = model.max_ff();
        let max_cols = hp.n_embd.max(max_ff).max(hp.n_head * hp.head_dim_v);
        let pool = ThreadPool::new(p.n_threads);
        let (full, swa) = hp.ropes_for_context(p.n_ctx);
        let ropes = Ropes { full, swa };
        let b = Buffers {
            x: vec![0.0; n * hp.n_embd],
            cur: vec![0.0; n * hp.n_embd],
            tmp: vec![0.0; n * hp.n_embd],
            q: vec![0.0; n * nq],
            k: vec![0.0; n * hp.n_embd_k_gqa()],
            v: vec![0.0; n * hp.n_embd_v_gqa()],
            qkv: vec![0.0; n * (nq + hp.n_embd_k_gqa() + hp.n_embd_v_gqa())],
            attn: vec![0.0; n * hp.n_head * hp.head_dim_v],
            ff_a: vec![0.0; n * 2 * max_ff],
            ff_b: vec![0.0; n * max_ff],
            rope_full: vec![0.0; n * hp.n_rot],
            rope_swa: vec![0.0; n * hp.n_rot],
            kv_row: vec![0; hp.n_embd_k_gqa().max(hp.n_embd_v_gqa()) * 4],
            cells: Vec::with_capacity(n),
            vis_seqs: Vec::with_capacity(n),
            vis_cells: Vec::with_capacity(p.n_ctx),
            vis_full: Vec::new(),
            off_full: Vec::with_capacity(n + 1),
            pos_full: Vec::new(),
            vis_swa: Vec::new(),
            off_swa: Vec::with_capacity(n + 1),
            pos_swa: Vec::new(),
            split_kv: Vec::with_capacity(n),
            router: vec![0.0; n * hp.n_expert],
            routes: Vec::with_capacity(n * hp.n_expert_used),
            moe_tok: Vec::with_capacity(n),
            moe_in: vec![0.0; if hp.n_expert > 0 { n * hp.n_embd } else { 0 }],
            moe_out: vec![0.0; if hp.n_expert > 0 { n * hp.n_embd } else { 0 }],
            out_rows: vec![0.0; n * hp.n_embd],
            mm: MatmulScratch::with_capacity(n, max_cols),
            batched: Vec::with_capacity(n),
            batched_out: Vec::with_capacity(n),
            seq_counts: Vec::with_capacity(n),
            obs: None,
            moe_ids: Vec::with_capacity(n),
            attn_scratch: AttnScratch::new(pool.n_threads(), hp.head_dim, hp.head_dim_v),
        };
        Ok(Context {
            model,
            pool,
            kv,
            n_batch: n,
            gelu: p.gelu,
            b,
            logits: Vec::new(),
            ropes,
        })
    }

    pub fn model(&self) -> &Model {
        self.model
    }
    pub fn kv_cache(&self) -> &KvCache {
        &self.kv
    }
    pub fn kv_cache_mut(&mut self) -> &mut KvCache {
        &mut self.kv
    }
    pub fn n_vocab(&self) -> usize {
        self.model.n_vocab
    }

    /// Call `obs` with the input of every weight product of later `decode`s (each 2-D weight,
    /// fused ones, each MoE expert with its tokens, and the output head); `None` removes it.
    /// Returns the previous observer.
    pub fn set_matmul_observer(&mut self, obs: Option<MatmulObserver>) -> Option<MatmulObserver> {
        std::mem::replace(&mut self.b.obs, obs)
    }

    /// Run `batch`; returns `(n_wanted, n_vocab)` logits. Nothing is written to the cache when
    /// the batch is invalid (bad ids, positions beyond the context, not enough free cells).
    pub fn decode(&mut self, batch: &Batch<'_>) -> Result<&[f32]> {
        let n = batch.tokens.len();
        if batch.pos.len() != n || batch.seq_id.len() != n || batch.want_logits.len() != n {
            return Err(ModelError::Batch(format!(
                "field lengths differ: tokens {n}, pos {}, seq_id {}, want_logits {}",
                batch.pos.len(),
                batch.seq_id.len(),
                batch.want_logits.len()
            )));
        }
        if n == 0 {
            return Err(ModelError::Batch("empty batch".into()));
        }
        if self.model.output.is_none() {
            return Err(crate::embed::not_a_decoder(self.model.hp.arch));
        }
        let n_vocab = self.model.n_vocab;
        if let Some(&id) = batch.tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::BadToken { id, n_vocab });
        }
        self.kv.validate(batch.pos, batch.seq_id)?;
        let n_out = batch.want_logits.iter().filter(|&&w| w).count();
        if self.logits.len() < n_out * n_vocab {
            self.logits.resize(n_out * n_vocab, 0.0);
        }
        let mut out_at = 0;
        for s in (0..n).step_by(self.n_batch) {
            let e = (s + self.n_batch).min(n);
            let ub = Batch {
                tokens: &batch.tokens[s..e],
                pos: &batch.pos[s..e],
                seq_id: &batch.seq_id[s..e],
                want_logits: &batch.want_logits[s..e],
            };
            let k = ub.want_logits.iter().filter(|&&w| w).count();
            let dst = &mut self.logits[out_at * n_vocab..(out_at + k) * n_vocab];
            forward(
                self.model,
                &self.pool,
                &mut self.kv,
                &mut self.b,
                &ub,
                (self.gelu, &self.ropes),
                dst,
            )?;
            out_at += k;
        }
        Ok(&self.logits[..n_out * n_vocab])
    }
}

/// Per token of `seq_id` that `sel` picks, which of llama.cpp's batched kernels it would go
/// through if its sequence's picked tokens were the whole batch (`ferrite_compute::BATCHED_*`;
/// 0 for the rest). Per sequence on purpose: a sequence's numbers then never depend on the
/// other sequences in the batch, and a single sequence gets llama.cpp's (llama-server runs
/// one sequence's prompt as one batch, and its last layer's FFN and output head only on the
/// rows that want logits).
fn batched_flags(
    seq_id: &[u32],
    sel: impl Fn(usize) -> bool,
    counts: &mut Vec<(u32, u32, u32)>,
    out: &mut Vec<u8>,
) {
    counts.clear();
    out.clear();
    for (t, &s) in seq_id.iter().enumerate() {
        if sel(t) {
            match counts.iter_mut().find(|c| c.0 == s) {
                Some(c) => c.1 += 1,
                None => counts.push((s, 1, 0)),
            }
        }
    }
    for (t, &s) in seq_id.iter().enumerate() {
        let mut f = 0;
        if sel(t) {
            let c = counts.iter_mut().find(|c| c.0 == s).expect("counted above");
            if c.2 < c.1 - c.1 % 4 {
                f |= BATCHED_GEMM4;
            }
            if c.1 >= 8 {
                f |= BATCHED_GE8;
            }
            if c.1 >= 64 {
                f |= BATCHED_GE64;
            }
            c.2 += 1;
        }
        out.push(f);
    }
}

/// One micro-batch (≤ n_batch tokens) through every layer.
fn forward(
    model: &Model,
    pool: &ThreadPool,
    kv: &mut KvCache,
    b: &mut Buffers,
    ub: &Batch<'_>,
    (gelu, ropes): (GeluImpl, &Ropes),
    logits: &mut [f32],
) -> Result<()> {
    let hp = &model.hp;
    let n = ub.tokens.len();
    let ne = hp.n_embd;
    let x = &mut b.x[..n * ne];
    let te = &model.tok_embd;
    te.get_rows(ub.tokens, x)?;
    if let Some(s) = hp.embd_scale {
        ops::scale(x, s);
    }

    kv.claim(ub.pos, ub.seq_id, &mut b.cells);
    let nr = hp.n_rot;
    let any_swa = hp.swa_layers.iter().any(|&s| s);
    for (t, &p) in ub.pos.iter().enumerate() {
        ropes
            .full
            .fill_cache(p as f32, &mut b.rope_full[t * nr..(t + 1) * nr]);
        if any_swa {
            ropes
                .swa
                .fill_cache(p as f32, &mut b.rope_swa[t * nr..(t + 1) * nr]);
        }
    }
    sort_cells(kv, ub, &mut b.vis_seqs, &mut b.vis_cells);
    build_visibility(
        &b.vis_cells,
        ub,
        None,
        &mut b.vis_full,
        &mut b.off_full,
        &mut b.pos_full,
    );
    if any_swa {
        build_visibility(
            &b.vis_cells,
            ub,
            Some(hp.n_swa),
            &mut b.vis_swa,
            &mut b.off_swa,
            &mut b.pos_swa,
        );
    }

    batched_flags(ub.seq_id, |_| true, &mut b.seq_counts, &mut b.batched);
    // llama.cpp decodes a one-token batch over ≥ 512 KV cells with its split-KV path; its KV
    // view is the used cells rounded up to 256 (at least 256, at most the cache): per
    // sequence here, the sequence alone in the batch and holding positions 0..=pos.
    // `seq_counts` holds the tokens per sequence of the call just above.
    b.split_kv.clear();
    for (t, &s) in ub.seq_id.iter().enumerate() {
        let alone = b.seq_counts.iter().any(|c| c.0 == s && c.1 == 1);
        let n_kv = (ub.pos[t] as usize + 1)
            .next_multiple_of(256)
            .max(256)
            .min(kv.n_ctx());
        b.split_kv.push(if alone && n_kv >= SPLIT_KV_MIN {
            n_kv as u32
        } else {
            0
        });
    }
    batched_flags(
        ub.seq_id,
        |t| ub.want_logits[t],
        &mut b.seq_counts,
        &mut b.batched_out,
    );
    for (il, w) in model.layers.iter().enumerate() {
        layer(model, pool, kv, b, ub, il, w, (gelu, ropes))?;
    }
    b.mm.set_batched(&b.batched_out);

    // Only rows that want logits go through the output head.
    let mut k = 0;
    for (t, _) in ub.want_logits.iter().enumerate().filter(|(_, &w)| w) {
        b.out_rows[k * ne..(k + 1) * ne].copy_from_slice(&b.x[t * ne..(t + 1) * ne]);
        k += 1;
    }
    if k > 0 {
        let rows = &mut b.out_rows[..k * ne];
        ops::rms_norm(rows, ne, Some(&model.output_norm), hp.rms_eps);
        let output = model
            .output
            .as_ref()
            .ok_or_else(|| crate::embed::not_a_decoder(hp.arch))?;
        observe(&mut b.obs, output, rows, k);
        matmul(pool, &output.view(), rows, k, logits, &mut b.mm)?;
        if hp.final_softcap > 0.0 {
            ops::softcap(logits, hp.final_softcap);
        }
    }
    Ok(())
}

/// `(seq, pos, cell)` of every cell held by a sequence of the batch, sorted: a token's
/// visible cells are then one contiguous run (see [`build_visibility`]). Scratch reused.
fn sort_cells(kv: &KvCache, ub: &Batch<'_>, seqs: &mut Vec<u32>, cells: &mut Vec<(u32, u32, u32)>) {
    seqs.clear();
    seqs.extend_from_slice(ub.seq_id);
    seqs.sort_unstable();
    seqs.dedup();
    cells.clear();
    cells.extend(
        (0..kv.n_hi())
            .filter_map(|c| kv.cell(c).map(|(s, p)| (s, p, c as u32)))
            .filter(|(s, _, _)| seqs.binary_search(s).is_ok()),
    );
    cells.sort_unstable();
}

/// For each token, the cells it attends to: same sequence, position ≤ its own, and within
/// `window` positions when given (llama.cpp's standard SWA: `pos - cell_pos < window`).
///
/// Listed in position order, not cell order: attention accumulates in visiting order (f16 V
/// accumulator, online softmax), and which cells a sequence holds depends on what other
/// sequences freed, so cell order would make a sequence's logits depend on its neighbours.
fn build_visibility(
    cells: &[(u32, u32, u32)],
    ub: &Batch<'_>,
    window: Option<usize>,
    vis: &mut Vec<u32>,
    off: &mut Vec<usize>,
    vis_pos: &mut Vec<u32>,
) {
    vis.clear();
    off.clear();
    vis_pos.clear();
    off.push(0);
    for (&p, &s) in ub.pos.iter().zip(ub.seq_id) {
        let lo_pos = window.map_or(0, |w| (p as usize + 1).saturating_sub(w) as u32);
        let lo = cells.partition_point(|&(cs, cp, _)| (cs, cp) < (s, lo_pos));
        let hi = cells.partition_point(|&(cs, cp, _)| (cs, cp) <= (s, p));
        vis.extend(cells[lo..hi.max(lo)].iter().map(|&(_, _, c)| c));
        vis_pos.extend(cells[lo..hi.max(lo)].iter().map(|&(_, p, _)| p));
        off.push(vis.len());
    }
}

fn mm(
    pool: &ThreadPool,
    w: &WeightView<'_>,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    s: &mut MatmulScratch,
) -> Result<()> {
    Ok(matmul(pool, w, x, n, out, s)?)
}

#[allow(clippy::too_many_arguments)]
fn layer(
    model: &Model,
    pool: &ThreadPool,
    kv: &mut KvCache,
    b: &mut Buffers,
    ub: &Batch<'_>,
    il: usize,
    w: &LayerWeights,
    (gelu, ropes): (GeluImpl, &Ropes),
) -> Result<()> {
    let hp = &model.hp;
    let n = ub.tokens.len();
    let ne = hp.n_embd;
    let (hd, hdv) = (hp.head_dim, hp.head_dim_v);
    let (nq, nk, nv) = (hp.n_head * hd, hp.n_embd_k_gqa(), hp.n_embd_v_gqa());

    // Attention.
    b.mm.set_batched(&b.batched);
    let cur = &mut b.cur[..n * ne];
    cur.copy_from_slice(&b.x[..n * ne]);
    ops::rms_norm(cur, ne, Some(&w.attn_norm), hp.rms_eps);
    let (q, k, v) = (&mut b.q[..n * nq], &mut b.k[..n * nk], &mut b.v[..n * nv]);
    match &w.qkv {
        Qkv::Separate {
            q: wq,
            k: wk,
            v: wv,
        } => {
            // One input quantization and one pool op for the three projections.
            for w in [wq, wk, wv] {
                observe(&mut b.obs, w, cur, n);
            }
            let (wq, wk, wv) = (wq.view(), wk.view(), wv.view());
            matmul_many(pool, [&wq, &wk, &wv], cur, n, [q, k, v], &mut b.mm)?;
        }
        Qkv::Fused(wqkv) => {
            let row = nq + nk + nv;
            let qkv = &mut b.qkv[..n * row];
            observe(&mut b.obs, wqkv, cur, n);
            mm(pool, &wqkv.view(), cur, n, qkv, &mut b.mm)?;
            for t in 0..n {
                let r = &qkv[t * row..(t + 1) * row];
                q[t * nq..(t + 1) * nq].copy_from_slice(&r[..nq]);
                k[t * nk..(t + 1) * nk].copy_from_slice(&r[nq..nq + nk]);
                v[t * nv..(t + 1) * nv].copy_from_slice(&r[nq + nk..]);
            }
        }
    }
    if let Some(bq) = &w.bq {
        ops::add(q, bq);
    }
    if let Some(bk) = &w.bk {
        ops::add(k, bk);
    }
    if let Some(bv) = &w.bv {
        ops::add(v, bv);
    }
    if let Some(g) = &w.attn_q_norm {
        ops::rms_norm(q, hd, Some(g), hp.rms_eps);
    }
    if let Some(g) = &w.attn_k_norm {
        ops::rms_norm(k, hd, Some(g), hp.rms_eps);
    }
    let swa = hp.swa_layers[il];
    let (rope, rc) = if swa {
        (&ropes.swa, &b.rope_swa)
    } else {
        (&ropes.full, &b.rope_full)
    };
    let nr = hp.n_rot;
    for t in 0..n {
        let c = &rc[t * nr..(t + 1) * nr];
        rope.apply(&mut q[t * nq..(t + 1) * nq], hd, c);
        rope.apply(&mut k[t * nk..(t + 1) * nk], hd, c);
    }
    // Store K and V in the cache type.
    let (kr, vr) = (kv.k_row, kv.v_row);
    let to_cache = ferrite_quants::kernels(kv.ty)?
        .quantize_row
        .expect("F16/F32 have converters");
    for (t, &cell) in b.cells.iter().enumerate() {
        to_cache(&k[t * nk..(t + 1) * nk], &mut b.kv_row[..kr]);
        kv.k[il][cell * kr..(cell + 1) * kr].copy_from_slice(&b.kv_row[..kr]);
        to_cache(&v[t * nv..(t + 1) * nv], &mut b.kv_row[..vr]);
        kv.v[il][cell * vr..(cell + 1) * vr].copy_from_slice(&b.kv_row[..vr]);
    }
    let n_hi = kv.n_hi();
    let view = KvView {
        ty: kv.ty,
        k: &kv.k[il][..n_hi * kr],
        v: &kv.v[il][..n_hi * vr],
    };
    let scale = if hp.attn_scale_q {
        ops::scale(q, hp.attn_scale);
        1.0
    } else {
        hp.attn_scale
    };
    let p = AttnParams {
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim: hd,
        head_dim_v: hdv,
        scale,
        softcap: hp.attn_softcap,
    };
    let (vis, off, vpos) = if swa {
        (&b.vis_swa, &b.off_swa, &b.pos_swa)
    } else {
        (&b.vis_full, &b.off_full, &b.pos_full)
    };
    let attn = &mut b.attn[..n * hp.n_head * hdv];
    let tiles = AttnTiles {
        batched: &b.batched,
        seq: ub.seq_id,
        pos: vpos,
        // Sliding-window layers: llama.cpp's SWA cache is a ring of its own size, so its
        // split chunks are not position ranges; not emulated.
        split_kv: if swa { &[] } else { &b.split_kv },
    };
    attention_tiled(
        pool,
        &p,
        q,
        &view,
        vis,
        off,
        Some(tiles),
        attn,
        &mut b.attn_scratch,
    )?;
    let tmp = &mut b.tmp[..n * ne];
    observe(&mut b.obs, &w.attn_output, attn, n);
    mm(pool, &w.attn_output.view(), attn, n, tmp, &mut b.mm)?;
    if let Some(g) = &w.post_attention_norm {
        ops::rms_norm(tmp, ne, Some(g), hp.rms_eps);
    }
    ops::add(&mut b.x[..n * ne], tmp);

    // Feed-forward. llama.cpp runs the last layer's FFN on the rows that want logits only.
    if il + 1 == model.layers.len() {
        b.mm.set_batched(&b.batched_out);
    }
    let cur = &mut b.cur[..n * ne];
    cur.copy_from_slice(&b.x[..n * ne]);
    ops::rms_norm(cur, ne, Some(&w.ffn_norm), hp.rms_eps);
    match &w.ffn {
        Ffn::Gated {
            gate,
            up,
            down,
            act,
        } => {
            let nf = gate.rows;
            let (a, u) = (&mut b.ff_a[..n * nf], &mut b.ff_b[..n * nf]);
            observe(&mut b.obs, gate, cur, n);
            observe(&mut b.obs, up, cur, n);
            let (wg, wu) = (gate.view(), up.view());
            matmul_many(pool, [&wg, &wu], cur, n, [a, u], &mut b.mm)?;
            glu_rows(pool, *act, gelu, a, u, n);
            observe(&mut b.obs, down, a, n);
            mm(pool, &down.view(), a, n, tmp, &mut b.mm)?;
        }
        Ffn::FusedGateUp { gate_up, down, act } => {
            let nf = gate_up.rows / 2;
            let gu = &mut b.ff_a[..n * 2 * nf];
            observe(&mut b.obs, gate_up, cur, n);
            mm(pool, &gate_up.view(), cur, n, gu, &mut b.mm)?;
            let a = &mut b.ff_b[..n * nf];
            for t in 0..n {
                let r = &gu[t * 2 * nf..(t + 1) * 2 * nf];
                let dst = &mut a[t * nf..(t + 1) * nf];
                dst.copy_from_slice(&r[..nf]);
                glu(*act, gelu, dst, &r[nf..]);
            }
            observe(&mut b.obs, down, a, n);
            mm(pool, &down.view(), a, n, tmp, &mut b.mm)?;
        }
        Ffn::Moe {
            gate_inp,
            gate_exps,
            up_exps,
            down_exps,
            act,
        } => {
            // Expert products run on gathered rows: no per-token flags there.
            b.mm.set_batched(&[]);
            moe(
                pool, hp, b, n, gate_inp, gate_exps, up_exps, down_exps, *act, gelu,
            )?;
        }
    }
    let tmp = &mut b.tmp[..n * ne];
    if let Some(g) = &w.post_ffw_norm {
        ops::rms_norm(tmp, ne, Some(g), hp.rms_eps);
    }
    ops::add(&mut b.x[..n * ne], tmp);
    Ok(())
}

/// [`glu`] over `n` rows, split across the pool (element-wise, so the split does not change
/// any value).
fn glu_rows(pool: &ThreadPool, act: Act, gelu: GeluImpl, gate: &mut [f32], up: &[f32], n: usize) {
    if n < 2 || pool.n_threads() == 1 {
        glu(act, gelu, gate, up);
        return;
    }
    let w = gate.len() / n;
    let g = ferrite_compute::SendPtr::new(gate);
    pool.for_each(n, &|t, _| {
        // SAFETY: row t is written by this chunk only.
        let row = unsafe { g.slice(t * w, w) };
        glu(act, gelu, row, &up[t * w..(t + 1) * w]);
    });
}

fn glu(act: Act, gelu: GeluImpl, gate: &mut [f32], up: &[f32]) {
    match act {
        Act::Silu => ops::swiglu(gate, up),
        Act::Gelu => ops::geglu(gate, up, gelu),
    }
}

/// Mixture of experts on `b.cur` into `b.tmp`: softmax router, top-k, optional renormalization,
/// then each expert runs once on the tokens routed to it (batched matmuls).
#[allow(clippy::too_many_arguments)]
fn moe(
    pool: &ThreadPool,
    hp: &crate::hparams::HParams,
    b: &mut Buffers,
    n: usize,
    gate_inp: &crate::weights::Matrix,
    gate_exps: &crate::weights::Matrix,
    up_exps: &crate::weights::Matrix,
    down_exps: &crate::weights::Matrix,
    act: Act,
    gelu: GeluImpl,
) -> Result<()> {
    let (ne, nx, k_used, nf) = (hp.n_embd, hp.n_expert, hp.n_expert_used, hp.n_ff_exp);
    let cur = &b.cur[..n * ne];
    let router = &mut b.router[..n * nx];
    observe(&mut b.obs, gate_inp, cur, n);
    mm(pool, &gate_inp.view(), cur, n, router, &mut b.mm)?;
    b.routes.clear();
    for t in 0..n {
        let probs = &mut router[t * nx..(t + 1) * nx];
        ops::softmax(probs);
        let start = b.routes.len();
        for _ in 0..k_used {
            // Highest remaining probability; ties go to the lower expert id.
            let (mut best, mut bp) = (0usize, f32::NEG_INFINITY);
            for (e, &p) in probs.iter().enumerate() {
                if p > bp && !b.routes[start..].iter().any(|&(x, _)| x as usize == e) {
                    best = e;
                    bp = p;
                }
            }
            b.routes.push((best as u32, bp));
        }
        if hp.expert_weights_norm {
            let s: f32 = b.routes[start..].iter().map(|r| r.1).sum();
            b.routes[start..].iter_mut().for_each(|r| r.1 /= s);
        }
    }
    let tmp = &mut b.tmp[..n * ne];
    tmp.fill(0.0);
    for e in 0..nx {
        b.moe_tok.clear();
        for t in 0..n {
            if let Some(&(_, wgt)) = b.routes[t * k_used..(t + 1) * k_used]
                .iter()
                .find(|r| r.0 as usize == e)
            {
                b.moe_tok.push((t, wgt));
            }
        }
        let m = b.moe_tok.len();
        if m == 0 {
            continue;
        }
        let xin = &mut b.moe_in[..m * ne];
        for (i, &(t, _)) in b.moe_tok.iter().enumerate() {
            xin[i * ne..(i + 1) * ne].copy_from_slice(&cur[t * ne..(t + 1) * ne]);
        }
        if b.obs.is_some() {
            b.moe_ids.clear();
            b.moe_ids.extend(b.moe_tok.iter().map(|&(t, _)| t));
        }
        let (a, u) = (&mut b.ff_a[..m * nf], &mut b.ff_b[..m * nf]);
        observe_expert(&mut b.obs, gate_exps, e, &b.moe_ids, xin);
        mm(pool, &gate_exps.expert(e), xin, m, a, &mut b.mm)?;
        observe_expert(&mut b.obs, up_exps, e, &b.moe_ids, xin);
        mm(pool, &up_exps.expert(e), xin, m, u, &mut b.mm)?;
        glu(act, gelu, a, u);
        let out = &mut b.moe_out[..m * ne];
        observe_expert(&mut b.obs, down_exps, e, &b.moe_ids, a);
        mm(pool, &down_exps.expert(e), a, m, out, &mut b.mm)?;
        for (i, &(t, wgt)) in b.moe_tok.iter().enumerate() {
            tmp[t * ne..(t + 1) * ne]
                .iter_mut()
                .zip(&out[i * ne..(i + 1) * ne])
                .for_each(|(d, &o)| *d += wgt * o);
        }
    }
    Ok(())
}
