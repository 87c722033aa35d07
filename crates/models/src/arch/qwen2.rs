//! Qwen2 / Qwen2.5: Llama with q/k/v biases and NeoX RoPE.

use super::{attn_output, ffn_gated, qkv_separate};
use crate::error::Result;
use crate::hparams::HParams;
use crate::model::{Act, LayerWeights};
use crate::weights::{blk, Loader};

pub(crate) fn load_layer(l: &Loader, hp: &HParams, il: usize) -> Result<LayerWeights> {
    Ok(LayerWeights {
        attn_norm: l.vector(&blk(il, "attn_norm.weight"), hp.n_embd)?,
        qkv: qkv_separate(l, hp, il)?,
        bq: Some(l.vector(&blk(il, "attn_q.bias"), hp.n_head * hp.head_dim)?),
        bk: Some(l.vector(&blk(il, "attn_k.bias"), hp.n_embd_k_gqa())?),
        bv: Some(l.vector(&blk(il, "attn_v.bias"), hp.n_embd_v_gqa())?),
        attn_q_norm: None,
        attn_k_norm: None,
        attn_output: attn_output(l, hp, il)?,
        post_attention_norm: None,
        ffn_norm: l.vector(&blk(il, "ffn_norm.weight"), hp.n_embd)?,
        ffn: ffn_gated(l, hp, il, Act::Silu)?,
        post_ffw_norm: None,
    })
}
