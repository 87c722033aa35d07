//! Gemma 2: embeddings × √n_embd, GeGLU, post-attention / post-FFN norms, sliding window on
//! even layers, attention and final logit soft-caps (see `HParams::load`). The converter
//! stores the norm weights as `1 + w`, so they are applied as plain RMSNorm weights.

use super::{attn_output, ffn_gated, qkv_separate};
use crate::error::Result;
use crate::hparams::HParams;
use crate::model::{Act, LayerWeights};
use crate::weights::{blk, Loader};

pub(crate) fn load_layer(l: &Loader, hp: &HParams, il: usize) -> Result<LayerWeights> {
    Ok(LayerWeights {
        attn_norm: l.vector(&blk(il, "attn_norm.weight"), hp.n_embd)?,
        qkv: qkv_separate(l, hp, il)?,
        bq: None,
        bk: None,
        bv: None,
        attn_q_norm: None,
        attn_k_norm: None,
        attn_output: attn_output(l, hp, il)?,
        post_attention_norm: Some(l.vector(&blk(il, "post_attention_norm.weight"), hp.n_embd)?),
        ffn_norm: l.vector(&blk(il, "ffn_norm.weight"), hp.n_embd)?,
        ffn: ffn_gated(l, hp, il, Act::Gelu)?,
        post_ffw_norm: Some(l.vector(&blk(il, "post_ffw_norm.weight"), hp.n_embd)?),
    })
}
