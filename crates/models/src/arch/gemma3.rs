//! Gemma 3: Gemma 2's block plus per-head q/k RMSNorm, no soft-caps, a local/global layer
//! pattern with separate RoPE bases (see `HParams::load`). Norm weights are stored `1 + w`.

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
        attn_q_norm: Some(l.vector(&blk(il, "attn_q_norm.weight"), hp.head_dim)?),
        attn_k_norm: Some(l.vector(&blk(il, "attn_k_norm.weight"), hp.head_dim)?),
        attn_output: attn_output(l, hp, il)?,
        post_attention_norm: Some(l.vector(&blk(il, "post_attention_norm.weight"), hp.n_embd)?),
        ffn_norm: l.vector(&blk(il, "ffn_norm.weight"), hp.n_embd)?,
        ffn: ffn_gated(l, hp, il, Act::Gelu)?,
        post_ffw_norm: Some(l.vector(&blk(il, "post_ffw_norm.weight"), hp.n_embd)?),
    })
}
