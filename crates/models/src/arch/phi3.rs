//! Phi-3: fused `attn_qkv` and `ffn_up` (= gate | up), NeoX RoPE over `rope.dimension_count`
//! dims of each head (partial rotary).

use super::attn_output;
use crate::error::Result;
use crate::hparams::HParams;
use crate::model::{Act, Ffn, LayerWeights, Qkv};
use crate::weights::{blk, Loader};

pub(crate) fn load_layer(l: &Loader, hp: &HParams, il: usize) -> Result<LayerWeights> {
    let n_qkv = hp.n_head * hp.head_dim + hp.n_embd_k_gqa() + hp.n_embd_v_gqa();
    Ok(LayerWeights {
        attn_norm: l.vector(&blk(il, "attn_norm.weight"), hp.n_embd)?,
        // (n_head*head_dim + 2*n_head_kv*head_dim, n_embd)
        qkv: Qkv::Fused(l.matrix(&blk(il, "attn_qkv.weight"), hp.n_embd, n_qkv)?),
        bq: None,
        bk: None,
        bv: None,
        attn_q_norm: None,
        attn_k_norm: None,
        attn_output: attn_output(l, hp, il)?,
        post_attention_norm: None,
        ffn_norm: l.vector(&blk(il, "ffn_norm.weight"), hp.n_embd)?,
        ffn: Ffn::FusedGateUp {
            // (2 * n_ff, n_embd)
            gate_up: l.matrix(&blk(il, "ffn_up.weight"), hp.n_embd, 2 * hp.n_ff)?,
            down: l.matrix(&blk(il, "ffn_down.weight"), hp.n_ff, hp.n_embd)?,
            act: Act::Silu,
        },
        post_ffw_norm: None,
    })
}
