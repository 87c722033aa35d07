//! BERT encoders (llama.cpp's `bert`): learned token, token-type and absolute position
//! embeddings, a LayerNorm on their sum, then post-norm blocks (attention with biases,
//! residual, LayerNorm; FFN up + bias, GELU, down + bias, residual, LayerNorm). The forward pass
//! and pooling are in `embed.rs`.

use crate::error::{ModelError, Result};
use crate::hparams::HParams;
use crate::weights::{blk, Loader, Matrix};

/// One encoder block. Matrices are `(rows, cols)` = (outputs, inputs).
pub struct EncoderLayer {
    pub wq: Matrix, // (n_head * head_dim, n_embd)
    pub bq: Vec<f32>,
    pub wk: Matrix, // (n_head_kv * head_dim, n_embd)
    pub bk: Vec<f32>,
    pub wv: Matrix, // (n_head_kv * head_dim_v, n_embd)
    pub bv: Vec<f32>,
    pub wo: Matrix, // (n_embd, n_head * head_dim_v)
    pub bo: Vec<f32>,
    /// LayerNorm after the attention residual (`attn_output_norm`).
    pub attn_out_norm_w: Vec<f32>,
    pub attn_out_norm_b: Vec<f32>,
    pub ffn_up: Matrix, // (n_ff, n_embd)
    pub ffn_up_b: Vec<f32>,
    pub ffn_down: Matrix, // (n_embd, n_ff)
    pub ffn_down_b: Vec<f32>,
    /// LayerNorm after the FFN residual (`layer_output_norm`).
    pub out_norm_w: Vec<f32>,
    pub out_norm_b: Vec<f32>,
}

/// Everything an encoder has besides `token_embd` (kept in `Model::tok_embd`).
pub struct EncoderWeights {
    /// Row 0 of `token_types.weight` `(n_token_types, n_embd)`: every input is segment 0.
    pub token_type0: Vec<f32>, // (n_embd)
    pub pos_embd: Matrix, // (n_ctx_train, n_embd)
    pub embd_norm_w: Vec<f32>,
    pub embd_norm_b: Vec<f32>,
    pub layers: Vec<EncoderLayer>,
}

pub(crate) fn load(l: &Loader, hp: &HParams) -> Result<EncoderWeights> {
    let ne = hp.n_embd;
    let n_types = match l.gguf.tensor_info("token_types.weight") {
        Some(t) if t.dims.len() == 2 && t.dims[1] >= 1 => t.dims[1] as usize,
        Some(t) => {
            return Err(ModelError::TensorShape {
                name: "token_types.weight".into(),
                expected: vec![ne, 2],
                got: t.dims.iter().map(|&d| d as usize).collect(),
            })
        }
        None => {
            return Err(ModelError::MissingTensor {
                name: "token_types.weight".into(),
            })
        }
    };
    let types = l.table("token_types.weight", ne, n_types)?; // (n_token_types, n_embd)
    let mut token_type0 = vec![0f32; ne];
    types.get_rows(&[0], &mut token_type0)?;
    let layers = (0..hp.n_layer)
        .map(|il| load_layer(l, hp, il))
        .collect::<Result<Vec<_>>>()?;
    Ok(EncoderWeights {
        token_type0,
        pos_embd: l.table("position_embd.weight", ne, hp.n_ctx_train)?,
        embd_norm_w: l.vector("token_embd_norm.weight", ne)?,
        embd_norm_b: l.vector("token_embd_norm.bias", ne)?,
        layers,
    })
}

fn load_layer(l: &Loader, hp: &HParams, il: usize) -> Result<EncoderLayer> {
    let ne = hp.n_embd;
    let nq = hp.n_head * hp.head_dim;
    let (nk, nv) = (hp.n_embd_k_gqa(), hp.n_embd_v_gqa());
    let no = hp.n_head * hp.head_dim_v;
    let m = |name: &str, cols, rows| l.matrix(&blk(il, name), cols, rows);
    let v = |name: &str, n| l.vector(&blk(il, name), n);
    Ok(EncoderLayer {
        wq: m("attn_q.weight", ne, nq)?,
        bq: v("attn_q.bias", nq)?,
        wk: m("attn_k.weight", ne, nk)?,
        bk: v("attn_k.bias", nk)?,
        wv: m("attn_v.weight", ne, nv)?,
        bv: v("attn_v.bias", nv)?,
        wo: m("attn_output.weight", no, ne)?,
        bo: v("attn_output.bias", ne)?,
        attn_out_norm_w: v("attn_output_norm.weight", ne)?,
        attn_out_norm_b: v("attn_output_norm.bias", ne)?,
        ffn_up: m("ffn_up.weight", ne, hp.n_ff)?,
        ffn_up_b: v("ffn_up.bias", hp.n_ff)?,
        ffn_down: m("ffn_down.weight", hp.n_ff, ne)?,
        ffn_down_b: v("ffn_down.bias", ne)?,
        out_norm_w: v("layer_output_norm.weight", ne)?,
        out_norm_b: v("layer_output_norm.bias", ne)?,
    })
}
