//! A hook on every weight product of the forward pass, for tools that need the activations
//! entering each matrix (`ferrite imatrix`, llama.cpp's `cb_eval` on `MUL_MAT`/`MUL_MAT_ID`).
//!
//! Set with [`crate::Context::set_matmul_observer`]. Unset, each product costs one branch.

use crate::weights::Matrix;

/// Which expert of a stacked (MoE) weight a product used, and on which tokens.
#[derive(Debug, Clone, Copy)]
pub struct ExpertRows<'a> {
    /// Expert index (matrix `id` of the `[cols, rows, n_expert]` stack).
    pub id: usize,
    /// Experts in the stack (GGUF `dims[2]`).
    pub n_expert: usize,
    /// For each input row, the index of its token in the micro-batch.
    pub tokens: &'a [usize],
}

/// One weight product `out = input · Wᵀ`, reported before it runs.
#[derive(Debug, Clone, Copy)]
pub struct MatmulEvent<'a> {
    /// The weight's GGUF tensor name (`blk.0.attn_q.weight`, `output.weight`; a tied output
    /// head reports `token_embd.weight`).
    pub weight: &'a str,
    /// Row-major `(n_tokens, n_cols)` input activations.
    pub input: &'a [f32],
    pub n_tokens: usize,
    /// Row length of the weight (GGUF `dims[0]`).
    pub n_cols: usize,
    /// Set for the per-expert products of a MoE block; `None` for plain 2-D weights.
    pub expert: Option<ExpertRows<'a>>,
}

/// The callback type of [`crate::Context::set_matmul_observer`].
pub type MatmulObserver = Box<dyn FnMut(MatmulEvent<'_>) + Send>;

/// Report a plain product of `w` with the first `n` rows of `x`.
#[inline]
pub(crate) fn observe(obs: &mut Option<MatmulObserver>, w: &Matrix, x: &[f32], n: usize) {
    if let Some(f) = obs {
        f(MatmulEvent {
            weight: &w.name,
            input: &x[..n * w.cols],
            n_tokens: n,
            n_cols: w.cols,
            expert: None,
        });
    }
}

/// Report the product of expert `id` of the stack `w` with the rows `x` of `tokens`.
#[inline]
pub(crate) fn observe_expert(
    obs: &mut Option<MatmulObserver>,
    w: &Matrix,
    id: usize,
    tokens: &[usize],
    x: &[f32],
) {
    if let Some(f) = obs {
        let n = tokens.len();
        f(MatmulEvent {
            weight: &w.name,
            input: &x[..n * w.cols],
            n_tokens: n,
            n_cols: w.cols,
            expert: Some(ExpertRows {
                id,
                n_expert: w.n_mat,
                tokens,
            }),
        });
    }
}
