//! llama.cpp's chunked evaluation of a text file, shared by `perplexity` and `imatrix`: the
//! whole file is tokenized with the model's special tokens (BOS) but no special-token parsing,
//! cut into non-overlapping chunks of `n_ctx` tokens, and each chunk is run from an empty KV
//! cache with its first token replaced by BOS when the model adds one.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use ferrite_models::{Batch, Context};
use ferrite_tokenizer::Tokenizer;

/// Tokens of the text file `path` (invalid UTF-8 replaced), as `common_tokenize(text, true)`.
pub fn tokenize_file(tok: &Tokenizer, path: &Path) -> Result<Vec<u32>> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    Ok(tok.tokenize(&text, true, false))
}

/// llama.cpp's minimum for perplexity and imatrix: two chunks.
pub fn require_two_chunks(n_tokens: usize, n_ctx: usize, what: &str) -> Result<()> {
    if n_tokens < 2 * n_ctx {
        bail!(
            "you need at least {} tokens to {what} with a context of {n_ctx}; the text tokenizes to only {n_tokens} tokens",
            2 * n_ctx
        );
    }
    Ok(())
}

/// Run one chunk (`chunk.len()` tokens, sequence 0, positions from 0) from an empty cache in
/// batches of `n_batch`, the first token replaced by `bos` when given. With `logits`, every
/// position's logits are copied there (`chunk.len() * n_vocab`); without, none are computed.
pub fn eval_chunk(
    ctx: &mut Context<'_>,
    chunk: &[u32],
    n_batch: usize,
    bos: Option<u32>,
    mut logits: Option<&mut [f32]>,
) -> Result<()> {
    let n_vocab = ctx.n_vocab();
    let n_ctx = chunk.len();
    ctx.kv_cache_mut().clear();
    let mut j = 0;
    while j < n_ctx {
        let n = n_batch.max(1).min(n_ctx - j);
        let mut batch_tokens = chunk[j..j + n].to_vec();
        if j == 0 {
            if let Some(b) = bos {
                batch_tokens[0] = b;
            }
        }
        let pos: Vec<u32> = (j as u32..(j + n) as u32).collect();
        let seq = vec![0u32; n];
        let want = vec![logits.is_some(); n];
        let l = ctx.decode(&Batch {
            tokens: &batch_tokens,
            pos: &pos,
            seq_id: &seq,
            want_logits: &want,
        })?;
        if let Some(dst) = logits.as_deref_mut() {
            dst[j * n_vocab..(j + n) * n_vocab].copy_from_slice(l);
        }
        j += n;
    }
    Ok(())
}
