//! Embeddings from encoder models (BERT): the forward pass over whole sequences with
//! bidirectional attention, then pooling (llama.cpp's `pooling_type`) and L2 normalisation.
//!
//! Several sequences are packed into one forward pass (up to `n_batch` tokens); each token
//! attends only to the tokens of its own sequence, so a sequence's embedding does not depend
//! on what it is batched with. Decoder architectures are rejected with a typed error
//! ([`ModelError::Unsupported`]); llama.cpp's last/mean pooling over a decoder's hidden states
//! is not offered.
//!
//! GELU: BERT checkpoints say `hidden_act: "gelu"`, which transformers runs as the exact erf
//! form; that is the default ([`GeluImpl::Erf`]) because it is what the reference embeddings
//! are computed with. llama.cpp runs `ggml_gelu` (tanh approximation through an f16 table)
//! here; [`EmbedParams::gelu`] can select it ([`GeluImpl::Ggml`]).

use crate::arch::bert::{EncoderLayer, EncoderWeights};
use crate::error::{ModelError, Result};
use crate::hparams::{Arch, HParams};
use crate::model::Model;
use ferrite_compute::{
    attention, f32_bytes, matmul, matmul_many, ops, AttnParams, AttnScratch, GeluImpl, KvView,
    MatmulScratch, ThreadPool,
};
use ferrite_gguf::GgmlType;

/// How a sequence's token states become one vector: llama.cpp's `llama_pooling_type`, whose
/// numbers are stored as `{arch}.pooling_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// 0: no pooling (per-token states; see [`Embedder::hidden_states`]).
    None,
    /// 1: mean over the sequence's tokens.
    Mean,
    /// 2: the first token ([CLS]).
    Cls,
    /// 3: the last token.
    Last,
    /// 4: a reranker's classification head (`cls_out`), not supported.
    Rank,
}

impl Pooling {
    /// From the GGUF number (llama.cpp's enum values; -1 "unspecified" reads as none).
    pub fn from_gguf(v: f64) -> Option<Pooling> {
        match v {
            -1.0 | 0.0 => Some(Pooling::None),
            1.0 => Some(Pooling::Mean),
            2.0 => Some(Pooling::Cls),
            3.0 => Some(Pooling::Last),
            4.0 => Some(Pooling::Rank),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pooling::None => "none",
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Last => "last",
            Pooling::Rank => "rank",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbedParams {
    pub n_threads: usize,
    /// Tokens per forward pass; sequences are packed up to this (a longer sequence, up to the
    /// model's context, runs alone).
    pub n_batch: usize,
    /// Override the model's `pooling_type`.
    pub pooling: Option<Pooling>,
    /// Divide each pooled vector by its L2 norm (llama.cpp's default `--embd-normalize 2`).
    pub normalize: bool,
    /// The FFN's GELU (default: erf, as transformers' BERT).
    pub gelu: GeluImpl,
}

impl Default for EmbedParams {
    fn default() -> Self {
        EmbedParams {
            n_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            n_batch: 2048,
            pooling: None,
            normalize: true,
            gelu: GeluImpl::Erf,
        }
    }
}

pub(crate) fn not_a_decoder(arch: Arch) -> ModelError {
    ModelError::Unsupported {
        op: "decode",
        arch: arch.name(),
        why: "an encoder (embedding) model has no LM head; use Embedder::embed".into(),
    }
}

struct Buffers {
    x: Vec<f32>,    // (n, n_embd) residual stream / hidden states
    tmp: Vec<f32>,  // (n, n_embd)
    q: Vec<f32>,    // (n, n_head * head_dim)
    k: Vec<f32>,    // (n, n_head_kv * head_dim)
    v: Vec<f32>,    // (n, n_head_kv * head_dim_v)
    attn: Vec<f32>, // (n, n_head * head_dim_v)
    ff: Vec<f32>,   // (n, n_ff)
    pos: Vec<u32>,  // (n) position of each token in its sequence
    vis: Vec<u32>,
    vis_off: Vec<usize>,
    mm: MatmulScratch,
    attn_scratch: AttnScratch,
}

/// Runs an encoder model; holds its thread pool and scratch (sized once).
pub struct Embedder<'m> {
    model: &'m Model,
    enc: &'m EncoderWeights,
    pool: ThreadPool,
    cap: usize,
    n_batch: usize,
    pooling: Pooling,
    normalize: bool,
    gelu: GeluImpl,
    b: Buffers,
}

impl<'m> Embedder<'m> {
    pub fn new(model: &'m Model, p: EmbedParams) -> Result<Embedder<'m>> {
        let hp = &model.hp;
        let arch = hp.arch.name();
        let enc = model
            .encoder
            .as_ref()
            .ok_or_else(|| ModelError::Unsupported {
                op: "embeddings",
                arch,
                why: "only encoder architectures (bert) make embeddings".into(),
            })?;
        let pooling = p.pooling.unwrap_or(hp.pooling);
        if pooling == Pooling::Rank {
            return Err(ModelError::Unsupported {
                op: "embeddings",
                arch,
                why: "pooling type rank (a reranker's classification head) is not implemented"
                    .into(),
            });
        }
        let n_batch = p.n_batch.max(1);
        // A sequence always fits one pass.
        let cap = n_batch.max(hp.n_ctx_train);
        let pool = ThreadPool::new(p.n_threads.max(1));
        let nq = hp.n_head * hp.head_dim;
        let max_cols = hp.n_embd.max(hp.n_ff).max(hp.n_head * hp.head_dim_v);
        let b = Buffers {
            x: vec![0.0; cap * hp.n_embd],
            tmp: vec![0.0; cap * hp.n_embd],
            q: vec![0.0; cap * nq],
            k: vec![0.0; cap * hp.n_embd_k_gqa()],
            v: vec![0.0; cap * hp.n_embd_v_gqa()],
            attn: vec![0.0; cap * hp.n_head * hp.head_dim_v],
            ff: vec![0.0; cap * hp.n_ff],
            pos: Vec::with_capacity(cap),
            vis: Vec::new(),
            vis_off: Vec::with_capacity(cap + 1),
            mm: MatmulScratch::with_capacity(cap, max_cols),
            attn_scratch: AttnScratch::new(pool.n_threads(), hp.head_dim, hp.head_dim_v),
        };
        Ok(Embedder {
            model,
            enc,
            pool,
            cap,
            n_batch,
            pooling,
            normalize: p.normalize,
            gelu: p.gelu,
            b,
        })
    }

    pub fn model(&self) -> &Model {
        self.model
    }
    /// The most tokens one sequence may have (the model's learned positions).
    pub fn n_ctx(&self) -> usize {
        self.model.hp.n_ctx_train
    }
    pub fn n_embd(&self) -> usize {
        self.model.hp.n_embd
    }
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    fn check(&self, seqs: &[&[u32]]) -> Result<()> {
        let n_vocab = self.model.n_vocab;
        for (i, s) in seqs.iter().enumerate() {
            if s.is_empty() {
                return Err(ModelError::Batch(format!("sequence {i} is empty")));
            }
            if s.len() > self.n_ctx() {
                return Err(ModelError::SeqTooLong {
                    seq: i,
                    n_tokens: s.len(),
                    n_ctx: self.n_ctx(),
                });
            }
            if let Some(&id) = s.iter().find(|&&t| t as usize >= n_vocab) {
                return Err(ModelError::BadToken { id, n_vocab });
            }
        }
        Ok(())
    }

    /// One pooled vector (`n_embd` values, L2-normalised unless disabled) per sequence. Every
    /// sequence is validated before anything runs.
    pub fn embed(&mut self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        if self.pooling == Pooling::None {
            return Err(ModelError::Unsupported {
                op: "pooled embeddings",
                arch: self.model.hp.arch.name(),
                why: "the pooling type is none; use Embedder::hidden_states for per-token states"
                    .into(),
            });
        }
        self.check(seqs)?;
        let ne = self.n_embd();
        let mut out = Vec::with_capacity(seqs.len());
        let mut i = 0;
        while i < seqs.len() {
            // Pack whole sequences up to n_batch tokens (at least one).
            let mut j = i + 1;
            let mut n = seqs[i].len();
            while j < seqs.len() && n + seqs[j].len() <= self.n_batch {
                n += seqs[j].len();
                j += 1;
            }
            self.forward(&seqs[i..j])?;
            let mut at = 0;
            for s in &seqs[i..j] {
                let h = &self.b.x[at * ne..(at + s.len()) * ne];
                let mut v = pool(self.pooling, h, ne).ok_or_else(|| ModelError::Unsupported {
                    op: "pooled embeddings",
                    arch: self.model.hp.arch.name(),
                    why: format!("pooling type {} gives no vector", self.pooling.name()),
                })?;
                if self.normalize {
                    l2_normalize(&mut v);
                }
                out.push(v);
                at += s.len();
            }
            i = j;
        }
        Ok(out)
    }

    /// The last layer's output for each token of one sequence, `(n_tokens, n_embd)` row-major
    /// (transformers' `last_hidden_state`), before pooling.
    pub fn hidden_states(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.check(&[tokens])?;
        self.forward(&[tokens])?;
        Ok(self.b.x[..tokens.len() * self.n_embd()].to_vec())
    }

    /// The encoder over `seqs` (already checked; total ≤ cap) into `b.x`.
    fn forward(&mut self, seqs: &[&[u32]]) -> Result<()> {
        let hp = &self.model.hp;
        let (ne, enc, b, pool) = (hp.n_embd, self.enc, &mut self.b, &self.pool);
        let n: usize = seqs.iter().map(|s| s.len()).sum();
        debug_assert!(n <= self.cap);

        // Positions and visibility: every token sees its own sequence (up to itself if causal).
        b.pos.clear();
        b.vis.clear();
        b.vis_off.clear();
        b.vis_off.push(0);
        let mut start = 0u32;
        for s in seqs {
            let len = s.len() as u32;
            for p in 0..len {
                b.pos.push(p);
                let end = if hp.causal {
                    start + p + 1
                } else {
                    start + len
                };
                b.vis.extend(start..end);
                b.vis_off.push(b.vis.len());
            }
            start += len;
        }

        // Embeddings: token + token type 0 + absolute position, then LayerNorm.
        let x = &mut b.x[..n * ne];
        let te = &self.model.tok_embd;
        let mut at = 0;
        for s in seqs {
            te.get_rows(s, &mut x[at * ne..(at + s.len()) * ne])?;
            at += s.len();
        }
        let pe = &enc.pos_embd;
        let tmp = &mut b.tmp[..n * ne];
        pe.get_rows(&b.pos, tmp)?;
        ops::add(x, tmp);
        ops::add(x, &enc.token_type0);
        ops::layer_norm(
            x,
            ne,
            Some(&enc.embd_norm_w),
            Some(&enc.embd_norm_b),
            hp.rms_eps,
        );

        for w in &enc.layers {
            layer(pool, hp, b, n, w, self.gelu)?;
        }
        Ok(())
    }
}

/// One post-norm block on `b.x[..n]`.
fn layer(
    pool: &ThreadPool,
    hp: &HParams,
    b: &mut Buffers,
    n: usize,
    w: &EncoderLayer,
    gelu: GeluImpl,
) -> Result<()> {
    let ne = hp.n_embd;
    let (nq, nk, nv) = (
        hp.n_head * hp.head_dim,
        hp.n_embd_k_gqa(),
        hp.n_embd_v_gqa(),
    );
    let x = &mut b.x[..n * ne];
    let (q, k, v) = (&mut b.q[..n * nq], &mut b.k[..n * nk], &mut b.v[..n * nv]);
    let (wq, wk, wv) = (w.wq.view(), w.wk.view(), w.wv.view());
    matmul_many(pool, [&wq, &wk, &wv], x, n, [q, k, v], &mut b.mm)?;
    ops::add(q, &w.bq);
    ops::add(k, &w.bk);
    ops::add(v, &w.bv);
    // K and V of this pass are the "cache": row t is token t, in f32.
    let kv = KvView {
        ty: GgmlType::F32,
        k: f32_bytes(k),
        v: f32_bytes(v),
    };
    let p = AttnParams {
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim: hp.head_dim,
        head_dim_v: hp.head_dim_v,
        scale: hp.attn_scale,
        softcap: hp.attn_softcap,
    };
    let attn = &mut b.attn[..n * hp.n_head * hp.head_dim_v];
    attention(
        pool,
        &p,
        q,
        &kv,
        &b.vis,
        &b.vis_off,
        attn,
        &mut b.attn_scratch,
    )?;
    // x = LN(x + attn · Woᵀ + bo)
    let tmp = &mut b.tmp[..n * ne];
    matmul(pool, &w.wo.view(), attn, n, tmp, &mut b.mm)?;
    ops::add(tmp, &w.bo);
    ops::add(x, tmp);
    ops::layer_norm(
        x,
        ne,
        Some(&w.attn_out_norm_w),
        Some(&w.attn_out_norm_b),
        hp.rms_eps,
    );
    // x = LN(x + gelu(x · Wupᵀ + bup) · Wdownᵀ + bdown)
    let ff = &mut b.ff[..n * hp.n_ff];
    matmul(pool, &w.ffn_up.view(), x, n, ff, &mut b.mm)?;
    ops::add(ff, &w.ffn_up_b);
    ops::gelu_inplace(ff, gelu);
    matmul(pool, &w.ffn_down.view(), ff, n, tmp, &mut b.mm)?;
    ops::add(tmp, &w.ffn_down_b);
    ops::add(x, tmp);
    ops::layer_norm(x, ne, Some(&w.out_norm_w), Some(&w.out_norm_b), hp.rms_eps);
    Ok(())
}

/// Pool `h` `(n_tokens, n_embd)` to one vector; `None` for an empty `h` or the pooling types
/// that make no vector (none, rank).
fn pool(p: Pooling, h: &[f32], ne: usize) -> Option<Vec<f32>> {
    let n = h.len() / ne;
    if n == 0 {
        return None;
    }
    match p {
        Pooling::Mean => {
            let mut acc = vec![0f64; ne];
            for row in h.chunks_exact(ne) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            }
            Some(acc.iter().map(|&a| (a / n as f64) as f32).collect())
        }
        Pooling::Cls => Some(h[..ne].to_vec()),
        Pooling::Last => Some(h[(n - 1) * ne..].to_vec()),
        Pooling::None | Pooling::Rank => None,
    }
}

/// `v / ‖v‖₂` (a zero vector stays zero).
fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x = (*x as f64 * inv) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracle: hand-computed means / picks and the Euclidean norm.
    #[test]
    fn pooling_and_normalisation() {
        let h = [1.0, 2.0, 3.0, 6.0, -1.0, 4.0]; // 3 tokens × 2
        assert_eq!(pool(Pooling::Mean, &h, 2), Some(vec![1.0, 4.0]));
        assert_eq!(pool(Pooling::Cls, &h, 2), Some(vec![1.0, 2.0]));
        assert_eq!(pool(Pooling::Last, &h, 2), Some(vec![-1.0, 4.0]));
        assert_eq!(pool(Pooling::None, &h, 2), None);
        assert_eq!(pool(Pooling::Mean, &[], 2), None);
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    /// Oracle: llama.cpp's `enum llama_pooling_type` values.
    #[test]
    fn pooling_numbers_are_llama_cpp_s() {
        assert_eq!(Pooling::from_gguf(-1.0), Some(Pooling::None));
        assert_eq!(Pooling::from_gguf(1.0), Some(Pooling::Mean));
        assert_eq!(Pooling::from_gguf(2.0), Some(Pooling::Cls));
        assert_eq!(Pooling::from_gguf(3.0), Some(Pooling::Last));
        assert_eq!(Pooling::from_gguf(4.0), Some(Pooling::Rank));
        assert_eq!(Pooling::from_gguf(5.0), None);
        assert_eq!(Pooling::from_gguf(1.5), None);
    }
}
