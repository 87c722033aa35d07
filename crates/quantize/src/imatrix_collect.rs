//! Collecting an importance matrix from the activations entering each weight, with
//! llama.cpp's semantics (`tools/imatrix`, `IMatrixCollector::collect_imatrix`):
//!
//! - kept weights: every `blk.*` tensor, plus `output.weight` when asked (`--process-output`);
//!   a tied output head (`token_embd.weight`) is never kept;
//! - a plain weight adds `Σ_t x_t[j]²` over the tokens of a product to column `j`, and the
//!   token count to its single count; products of fewer than [`MIN_DENSE_TOKENS`] tokens are
//!   skipped (llama.cpp ignores small batches, i.e. generation-time calls);
//! - an expert of a MoE stack adds its routed tokens to its own row of sums and its own count
//!   (`in_sum2` is `[n_cols, n_expert]`, `counts` is `[1, n_expert]`), whatever the batch size;
//! - non-finite sums are an error; `chunk_count` is `max(counts) / chunk_size`.
//!
//! Sums are kept in f64 (llama.cpp keeps f32) and written as f32.

use std::collections::BTreeMap;

use crate::imatrix::{Imatrix, Stat};
use crate::QuantizeError;

/// Plain products with fewer tokens than this are not collected (as llama.cpp).
pub const MIN_DENSE_TOKENS: usize = 16;

#[derive(Debug, Clone)]
struct Entry {
    n_cols: usize,
    /// `n_mat * n_cols` sums of squares.
    sums: Vec<f64>,
    /// Tokens per matrix (1 for a plain weight, `n_expert` for a stack).
    counts: Vec<u64>,
}

/// Accumulates `in_sum2` / `counts` per weight name.
#[derive(Debug, Clone)]
pub struct Collector {
    chunk_size: usize,
    process_output: bool,
    entries: BTreeMap<String, Entry>,
}

impl Collector {
    /// `chunk_size`: tokens per chunk (recorded, and used for `chunk_count`).
    pub fn new(chunk_size: usize, process_output: bool) -> Collector {
        Collector {
            chunk_size: chunk_size.max(1),
            process_output,
            entries: BTreeMap::new(),
        }
    }

    /// Whether statistics of weight `name` are kept.
    pub fn wants(&self, name: &str) -> bool {
        name.starts_with("blk.") || (self.process_output && name == "output.weight")
    }

    fn entry(
        &mut self,
        name: &str,
        n_cols: usize,
        n_mat: usize,
    ) -> Result<&mut Entry, QuantizeError> {
        let e = self
            .entries
            .entry(name.to_owned())
            .or_insert_with(|| Entry {
                n_cols,
                sums: vec![0.0; n_cols * n_mat],
                counts: vec![0; n_mat],
            });
        if e.n_cols != n_cols || e.counts.len() != n_mat {
            return Err(QuantizeError::Imatrix(format!(
                "{name}: inconsistent shape ({n_cols} columns × {n_mat} matrices, previously {} × {})",
                e.n_cols,
                e.counts.len()
            )));
        }
        Ok(e)
    }

    fn check_input(
        name: &str,
        x: &[f32],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<(), QuantizeError> {
        if n_cols == 0 || x.len() != n_rows * n_cols {
            return Err(QuantizeError::Imatrix(format!(
                "{name}: {} activations are not {n_rows} rows of {n_cols}",
                x.len()
            )));
        }
        Ok(())
    }

    /// A product of the plain (2-D) weight `name` with `n_tokens` rows `x` of `n_cols`.
    pub fn add_dense(
        &mut self,
        name: &str,
        x: &[f32],
        n_tokens: usize,
        n_cols: usize,
    ) -> Result<(), QuantizeError> {
        if !self.wants(name) || n_tokens < MIN_DENSE_TOKENS {
            return Ok(());
        }
        Self::check_input(name, x, n_tokens, n_cols)?;
        let e = self.entry(name, n_cols, 1)?;
        accumulate(&mut e.sums, x, n_cols);
        e.counts[0] += n_tokens as u64;
        if let Some(v) = e.sums.iter().find(|v| !v.is_finite()) {
            return Err(QuantizeError::Imatrix(format!(
                "{name}: non-finite value {v} in the sums of squared activations"
            )));
        }
        Ok(())
    }

    /// A product of expert `expert` of the stack `name` (`n_expert` matrices) with the `n_rows`
    /// routed rows `x` of `n_cols`.
    pub fn add_expert(
        &mut self,
        name: &str,
        expert: usize,
        n_expert: usize,
        x: &[f32],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<(), QuantizeError> {
        if !self.wants(name) {
            return Ok(());
        }
        if expert >= n_expert {
            return Err(QuantizeError::Imatrix(format!(
                "{name}: expert {expert} out of {n_expert}"
            )));
        }
        Self::check_input(name, x, n_rows, n_cols)?;
        let e = self.entry(name, n_cols, n_expert)?;
        let sums = &mut e.sums[expert * n_cols..(expert + 1) * n_cols];
        accumulate(sums, x, n_cols);
        e.counts[expert] += n_rows as u64;
        if let Some(v) = sums.iter().find(|v| !v.is_finite()) {
            return Err(QuantizeError::Imatrix(format!(
                "{name}: non-finite value {v} in the sums of squared activations of expert {expert}"
            )));
        }
        Ok(())
    }

    /// `max(counts) / chunk_size` over all entries (llama.cpp's `m_last_chunk`).
    pub fn chunk_count(&self) -> u32 {
        let max = self
            .entries
            .values()
            .flat_map(|e| e.counts.iter().copied())
            .max()
            .unwrap_or(0);
        (max / self.chunk_size as u64) as u32
    }

    /// Entries with at least one matrix that saw no token (unused experts): `(name, % filled)`.
    pub fn partial_entries(&self) -> Vec<(String, f64)> {
        self.entries
            .iter()
            .filter_map(|(name, e)| {
                let zeros = e.counts.iter().filter(|&&c| c == 0).count();
                (zeros > 0).then(|| {
                    let n = e.counts.len();
                    (name.clone(), 100.0 * (n - zeros) as f64 / n as f64)
                })
            })
            .collect()
    }

    /// Weights with statistics.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The statistics so far, in llama.cpp's file layout.
    pub fn to_imatrix(&self, datasets: Vec<String>) -> Imatrix {
        Imatrix {
            stats: self
                .entries
                .iter()
                .map(|(name, e)| {
                    (
                        name.clone(),
                        Stat {
                            in_sum2: e.sums.iter().map(|&v| v as f32).collect(),
                            counts: e.counts.iter().map(|&c| c as f32).collect(),
                        },
                    )
                })
                .collect(),
            datasets,
            chunk_count: self.chunk_count(),
            chunk_size: self.chunk_size as u32,
        }
    }
}

/// `sums[j] += Σ_rows x[row][j]²`.
fn accumulate(sums: &mut [f64], x: &[f32], n_cols: usize) {
    for row in x.chunks_exact(n_cols) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += (v as f64) * (v as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracle: the sums written out by hand.
    #[test]
    fn dense_and_expert_sums_counts_and_filters() {
        let mut c = Collector::new(16, false);
        let x: Vec<f32> = (0..16 * 2).map(|i| (i % 5) as f32 - 2.0).collect();
        c.add_dense("blk.0.attn_q.weight", &x, 16, 2).unwrap();
        c.add_dense("blk.0.attn_q.weight", &x[..30], 15, 2).unwrap(); // < 16 tokens: skipped
        c.add_dense("output.weight", &x, 16, 2).unwrap(); // not without process_output
        c.add_dense("token_embd.weight", &x, 16, 2).unwrap();
        c.add_expert("blk.0.ffn_up_exps.weight", 2, 3, &x[..4], 2, 2)
            .unwrap();
        let im = c.to_imatrix(vec!["t".into()]);
        assert_eq!(im.stats.len(), 2);
        let q = &im.stats["blk.0.attn_q.weight"];
        let want0: f32 = x.iter().step_by(2).map(|v| v * v).sum();
        let want1: f32 = x.iter().skip(1).step_by(2).map(|v| v * v).sum();
        assert_eq!(q.in_sum2, vec![want0, want1]);
        assert_eq!(q.counts, vec![16.0]);
        let u = &im.stats["blk.0.ffn_up_exps.weight"];
        assert_eq!(u.counts, vec![0.0, 0.0, 2.0]);
        assert_eq!(u.in_sum2, vec![0., 0., 0., 0., 4.0 + 0.0, 1.0 + 1.0]);
        assert_eq!(im.chunk_count, 1);
        assert_eq!(
            c.partial_entries(),
            vec![("blk.0.ffn_up_exps.weight".to_string(), 100.0 / 3.0)]
        );

        let x4 = vec![1f32; 16 * 4];
        assert!(c.add_dense("blk.0.attn_q.weight", &x4, 16, 4).is_err()); // 4 columns, was 2
        assert!(c.add_dense("blk.0.attn_k.weight", &x[..31], 16, 2).is_err());
        assert!(c
            .add_expert("blk.0.ffn_up_exps.weight", 3, 3, &x[..4], 2, 2)
            .is_err());
        let nan = vec![f32::NAN; 32];
        assert!(c.add_dense("blk.1.attn_q.weight", &nan, 16, 2).is_err());

        let mut c = Collector::new(16, true);
        c.add_dense("output.weight", &x, 16, 2).unwrap();
        c.add_dense("token_embd.weight", &x, 16, 2).unwrap();
        let im = c.to_imatrix(vec![]);
        assert_eq!(im.stats.keys().collect::<Vec<_>>(), vec!["output.weight"]);
    }
}
