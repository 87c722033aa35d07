//! Llama 1/2/3, SmolLM2, Mistral (sliding window from `{arch}.attention.sliding_window`, see
//! `HParams::load`) and Mixtral (experts when `{arch}.expert_count` is present).

use super::{attn_output, ffn_gated, ffn_moe, qkv_separate};
use crate::error::Result;
use crate::hparams::HParams;
use crate::model::{Act, LayerWeights};
use crate::weights::{blk, Loader};

pub(crate) fn load_layer(l: &Loader, hp: &HParams, il: usize) -> Result<LayerWeights> {
    Ok(LayerWeights {
        attn_norm: l.vector(&blk(il, "attn_norm.weight"), hp.n_embd)?,
        qkv: qkv_separate(l, hp, il)?,
        // Some Llama-family conversions carry biases (e.g. InternLM-style); optional.
        bq: l.vector_opt(&blk(il, "attn_q.bias"), hp.n_head * hp.head_dim)?,
        bk: l.vector_opt(&blk(il, "attn_k.bias"), hp.n_embd_k_gqa())?,
        bv: l.vector_opt(&blk(il, "attn_v.bias"), hp.n_embd_v_gqa())?,
        attn_q_norm: None,
        attn_k_norm: None,
        attn_output: attn_output(l, hp, il)?,
        post_attention_norm: None,
        ffn_norm: l.vector(&blk(il, "ffn_norm.weight"), hp.n_embd)?,
        ffn: if hp.n_expert > 0 {
            ffn_moe(l, hp, il, Act::Silu)?
        } else {
            ffn_gated(l, hp, il, Act::Silu)?
        },
        post_ffw_norm: None,
    })
}
