//! A KV cache shared by several sequences: `n_ctx` cells, each holding one (sequence,
//! position) pair's K and V for every layer. Sequences own cells independently, so a server can
//! decode many streams in one batch, drop a stream (`clear_seq`), or keep a prompt prefix and
//! drop the tail (`truncate_seq`).

use crate::error::{ModelError, Result};
use crate::hparams::HParams;
use ferrite_gguf::GgmlType;

pub struct KvCache {
    pub(crate) ty: GgmlType,
    n_ctx: usize,
    n_seq: usize,
    /// Position held by each cell, -1 when free.
    pos: Vec<i32>,
    /// Owning sequence of each used cell.
    seq: Vec<u32>,
    /// Per layer `(n_ctx, n_head_kv * head_dim)` of `ty`.
    pub(crate) k: Vec<Vec<u8>>,
    /// Per layer `(n_ctx, n_head_kv * head_dim_v)` of `ty`.
    pub(crate) v: Vec<Vec<u8>>,
    /// Cell bytes of one K / V row.
    pub(crate) k_row: usize,
    pub(crate) v_row: usize,
    /// One past the highest used cell (attention scans `0..n_hi`).
    n_hi: usize,
}

impl KvCache {
    /// `ty` is F16 (llama.cpp's default) or F32.
    pub fn new(hp: &HParams, n_ctx: usize, n_seq: usize, ty: GgmlType) -> Result<KvCache> {
        if !matches!(ty, GgmlType::F16 | GgmlType::F32) {
            return Err(ModelError::Batch(format!(
                "KV cache type {ty} unsupported (F16, F32)"
            )));
        }
        let es = if ty == GgmlType::F16 { 2 } else { 4 };
        let (k_row, v_row) = (hp.n_embd_k_gqa() * es, hp.n_embd_v_gqa() * es);
        Ok(KvCache {
            ty,
            n_ctx,
            n_seq: n_seq.max(1),
            pos: vec![-1; n_ctx],
            seq: vec![0; n_ctx],
            k: (0..hp.n_layer).map(|_| vec![0u8; n_ctx * k_row]).collect(),
            v: (0..hp.n_layer).map(|_| vec![0u8; n_ctx * v_row]).collect(),
            k_row,
            v_row,
            n_hi: 0,
        })
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    pub fn n_seq(&self) -> usize {
        self.n_seq
    }
    pub fn n_used(&self) -> usize {
        self.pos.iter().filter(|&&p| p >= 0).count()
    }
    pub(crate) fn n_hi(&self) -> usize {
        self.n_hi
    }
    pub(crate) fn cell(&self, c: usize) -> Option<(u32, u32)> {
        (self.pos[c] >= 0).then(|| (self.seq[c], self.pos[c] as u32))
    }

    /// Drop every cell.
    pub fn clear(&mut self) {
        self.pos.fill(-1);
        self.n_hi = 0;
    }

    /// Drop every cell of `seq`.
    pub fn clear_seq(&mut self, seq: u32) {
        self.truncate_seq(seq, 0);
    }

    /// Keep positions `< n` of `seq`, drop the rest (reuse a prompt prefix).
    pub fn truncate_seq(&mut self, seq: u32, n: u32) {
        for c in 0..self.n_hi {
            if self.pos[c] >= 0 && self.seq[c] == seq && self.pos[c] as u32 >= n {
                self.pos[c] = -1;
            }
        }
        self.update_hi();
    }

    /// Number of positions held for `seq` (highest position + 1; 0 when empty).
    pub fn seq_len(&self, seq: u32) -> u32 {
        (0..self.n_hi)
            .filter(|&c| self.pos[c] >= 0 && self.seq[c] == seq)
            .map(|c| self.pos[c] as u32 + 1)
            .max()
            .unwrap_or(0)
    }

    fn update_hi(&mut self) {
        self.n_hi = self.pos.iter().rposition(|&p| p >= 0).map_or(0, |c| c + 1);
    }

    pub(crate) fn free_cells(&self) -> usize {
        self.n_ctx - self.n_used()
    }

    /// Check a batch against the cache before anything is written.
    pub(crate) fn validate(&self, pos: &[u32], seq: &[u32]) -> Result<()> {
        if pos.len() > self.free_cells() {
            return Err(ModelError::ContextFull {
                needed: pos.len(),
                free: self.free_cells(),
                n_ctx: self.n_ctx,
            });
        }
        for (i, (&p, &s)) in pos.iter().zip(seq).enumerate() {
            if s as usize >= self.n_seq {
                return Err(ModelError::BadSeq {
                    seq: s,
                    n_seq: self.n_seq,
                });
            }
            if p as usize >= self.n_ctx {
                return Err(ModelError::PosBeyondContext {
                    pos: p,
                    n_ctx: self.n_ctx,
                });
            }
            let dup_in_cache = (0..self.n_hi).any(|c| self.pos[c] == p as i32 && self.seq[c] == s);
            let dup_in_batch = pos[..i]
                .iter()
                .zip(&seq[..i])
                .any(|(&q, &r)| q == p && r == s);
            if dup_in_cache || dup_in_batch {
                return Err(ModelError::Batch(format!(
                    "sequence {s} already has position {p}"
                )));
            }
        }
        Ok(())
    }

    /// Claim a free cell for each token (first fit); `validate` guaranteed there are enough.
    pub(crate) fn claim(&mut self, pos: &[u32], seq: &[u32], cells: &mut Vec<usize>) {
        cells.clear();
        let mut c = 0;
        for (&p, &s) in pos.iter().zip(seq) {
            while self.pos[c] >= 0 {
                c += 1;
            }
            self.pos[c] = p as i32;
            self.seq[c] = s;
            cells.push(c);
        }
        self.update_hi();
    }
}
