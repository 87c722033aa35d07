//! One file per architecture: which tensors a block has and how they are shaped. The forward
//! pass (context.rs) runs whatever a block holds, so each architecture's behaviour is fixed here
//! and in `HParams::load`'s per-architecture `match`es.

pub(crate) mod bert;
pub(crate) mod gemma2;
pub(crate) mod gemma3;
pub(crate) mod llama;
pub(crate) mod phi3;
pub(crate) mod qwen2;
pub(crate) mod qwen3;
pub(crate) mod qwen3moe;

use crate::error::Result;
use crate::hparams::HParams;
use crate::model::{Act, Ffn, Qkv};
use crate::weights::{blk, Loader};

/// `attn_q` `(n_head * head_dim, n_embd)`, `attn_k` / `attn_v` `(n_head_kv * head_dim, n_embd)`.
pub(crate) fn qkv_separate(l: &Loader, hp: &HParams, il: usize) -> Result<Qkv> {
    Ok(Qkv::Separate {
        q: l.matrix(
            &blk(il, "attn_q.weight"),
            hp.n_embd,
            hp.n_head * hp.head_dim,
        )?,
        k: l.matrix(&blk(il, "attn_k.weight"), hp.n_embd, hp.n_embd_k_gqa())?,
        v: l.matrix(&blk(il, "attn_v.weight"), hp.n_embd, hp.n_embd_v_gqa())?,
    })
}

/// `attn_output` `(n_embd, n_head * head_dim_v)`.
pub(crate) fn attn_output(l: &Loader, hp: &HParams, il: usize) -> Result<crate::weights::Matrix> {
    l.matrix(
        &blk(il, "attn_output.weight"),
        hp.n_head * hp.head_dim_v,
        hp.n_embd,
    )
}

/// `ffn_gate` / `ffn_up` `(n_ff, n_embd)`, `ffn_down` `(n_embd, n_ff)`.
pub(crate) fn ffn_gated(l: &Loader, hp: &HParams, il: usize, act: Act) -> Result<Ffn> {
    Ok(Ffn::Gated {
        gate: l.matrix(&blk(il, "ffn_gate.weight"), hp.n_embd, hp.n_ff)?,
        up: l.matrix(&blk(il, "ffn_up.weight"), hp.n_embd, hp.n_ff)?,
        down: l.matrix(&blk(il, "ffn_down.weight"), hp.n_ff, hp.n_embd)?,
        act,
    })
}

/// Router `ffn_gate_inp` `(n_expert, n_embd)`; experts stacked `[n_embd, n_ff_exp, n_expert]`
/// (gate, up) and `[n_ff_exp, n_embd, n_expert]` (down).
pub(crate) fn ffn_moe(l: &Loader, hp: &HParams, il: usize, act: Act) -> Result<Ffn> {
    Ok(Ffn::Moe {
        gate_inp: l.matrix(&blk(il, "ffn_gate_inp.weight"), hp.n_embd, hp.n_expert)?,
        gate_exps: l.stack(
            &blk(il, "ffn_gate_exps.weight"),
            hp.n_embd,
            hp.n_ff_exp,
            hp.n_expert,
        )?,
        up_exps: l.stack(
            &blk(il, "ffn_up_exps.weight"),
            hp.n_embd,
            hp.n_ff_exp,
            hp.n_expert,
        )?,
        down_exps: l.stack(
            &blk(il, "ffn_down_exps.weight"),
            hp.n_ff_exp,
            hp.n_embd,
            hp.n_expert,
        )?,
        act,
    })
}
