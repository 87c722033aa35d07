//! A loaded model: hyper-parameters plus weight views into the GGUF mmap.

use crate::arch;
use crate::arch::bert::EncoderWeights;
use crate::error::Result;
use crate::hparams::{Arch, HParams};
use crate::weights::{Loader, Matrix};
use ferrite_gguf::GgufModel;
use std::path::Path;

/// Element-wise activation of a gated FFN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Silu,
    /// tanh approximation.
    Gelu,
}

pub enum Ffn {
    /// `down(act(gate x) · up x)`.
    Gated {
        gate: Matrix,
        up: Matrix,
        down: Matrix,
        act: Act,
    },
    /// One `(2 * n_ff, n_embd)` matrix whose first half is the gate (Phi-3's `gate_up_proj`).
    FusedGateUp {
        gate_up: Matrix,
        down: Matrix,
        act: Act,
    },
    /// Softmax router, top-k experts, each a gated FFN.
    Moe {
        gate_inp: Matrix,
        gate_exps: Matrix,
        up_exps: Matrix,
        down_exps: Matrix,
        act: Act,
    },
}

pub enum Qkv {
    Separate {
        q: Matrix,
        k: Matrix,
        v: Matrix,
    },
    /// `(n_head*head_dim + 2*n_head_kv*head_dim, n_embd)`, rows q | k | v.
    Fused(Matrix),
}

/// One transformer block. Which fields are present is decided per architecture (arch/*.rs).
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub qkv: Qkv,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    /// Per-head RMSNorm of q/k before RoPE (Qwen3, Gemma 3).
    pub attn_q_norm: Option<Vec<f32>>,
    pub attn_k_norm: Option<Vec<f32>>,
    pub attn_output: Matrix,
    /// RMSNorm of the attention output before the residual add (Gemma 2/3).
    pub post_attention_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub ffn: Ffn,
    /// RMSNorm of the FFN output before the residual add (Gemma 2/3).
    pub post_ffw_norm: Option<Vec<f32>>,
}

pub struct Model {
    pub hp: HParams,
    pub n_vocab: usize,
    pub tok_embd: Matrix,
    /// Decoders' final RMSNorm weight (empty for encoders).
    pub output_norm: Vec<f32>,
    /// `output.weight`, or `token_embd.weight` when tied; `None` for encoders (no LM head).
    pub output: Option<Matrix>,
    /// Decoder blocks (empty for encoders, whose blocks are in `encoder`).
    pub layers: Vec<LayerWeights>,
    /// Encoder-only architectures (BERT): embeddings, norms and blocks.
    pub encoder: Option<EncoderWeights>,
    // Declared last: the views above point into it.
    gguf: GgufModel,
}

impl Model {
    /// Open a GGUF (or the first shard of a split model) and bind every weight, repacking
    /// where that is faster (see `crate::weights`; not with `FERRITE_NO_REPACK=1`).
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::from_gguf(GgufModel::open(path)?)
    }

    /// [`Model::open`] with repacking chosen by the caller instead of the environment.
    pub fn open_with(path: impl AsRef<Path>, repack: bool) -> Result<Model> {
        Model::from_gguf_with(GgufModel::open(path)?, repack)
    }

    pub fn from_gguf(gguf: GgufModel) -> Result<Model> {
        Model::from_gguf_with(gguf, crate::weights::repack_enabled())
    }

    /// Bind the weights of `gguf`; `repack`: pack the matrices this CPU has x4 kernels for.
    pub fn from_gguf_with(gguf: GgufModel, repack: bool) -> Result<Model> {
        let l = Loader {
            gguf: &gguf,
            repack,
        };
        let factor = |name: &str| -> Result<Option<Vec<f32>>> {
            match gguf.tensor_info(name) {
                Some(t) => Ok(Some(l.vector(name, t.n_elements() as usize)?)),
                None => Ok(None),
            }
        };
        let factors = crate::hparams::RopeFactorTensors {
            freqs: factor("rope_freqs.weight")?,
            long: factor("rope_factors_long.weight")?,
            short: factor("rope_factors_short.weight")?,
        };
        let hp = HParams::load(gguf.meta(), factors)?;
        let n_embd = hp.n_embd;
        let n_vocab = match gguf.tensor_info("token_embd.weight") {
            Some(t) if t.dims.len() >= 2 => t.dims[1] as usize,
            _ => {
                return Err(crate::ModelError::MissingTensor {
                    name: "token_embd.weight".into(),
                })
            }
        };
        let mut tok_embd = l.table("token_embd.weight", n_embd, n_vocab)?; // (n_vocab, n_embd)
        type LoadLayer = fn(&Loader, &HParams, usize) -> Result<LayerWeights>;
        let decoder_layer: Option<LoadLayer> = match hp.arch {
            Arch::Llama => Some(arch::llama::load_layer),
            Arch::Qwen2 => Some(arch::qwen2::load_layer),
            Arch::Qwen3 => Some(arch::qwen3::load_layer),
            Arch::Qwen3Moe => Some(arch::qwen3moe::load_layer),
            Arch::Gemma2 => Some(arch::gemma2::load_layer),
            Arch::Gemma3 => Some(arch::gemma3::load_layer),
            Arch::Phi3 => Some(arch::phi3::load_layer),
            Arch::Bert => None,
        };
        let (output_norm, output, layers, encoder) = match decoder_layer {
            Some(load_layer) => {
                let output_norm = l.vector("output_norm.weight", n_embd)?;
                // (n_vocab, n_embd)
                let output = match l.matrix_opt("output.weight", n_embd, n_vocab)? {
                    Some(m) => m,
                    None => l.matrix("token_embd.weight", n_embd, n_vocab)?,
                };
                // Tied and packed: look tokens up in the packed copy too, so the table's
                // mmap pages (released by the packing) stay out of memory.
                if output.packed() && output.name == tok_embd.name {
                    tok_embd = output.share();
                }
                let layers = (0..hp.n_layer)
                    .map(|il| load_layer(&l, &hp, il))
                    .collect::<Result<Vec<_>>>()?;
                (output_norm, Some(output), layers, None)
            }
            None => (
                Vec::new(),
                None,
                Vec::new(),
                Some(arch::bert::load(&l, &hp)?),
            ),
        };
        Ok(Model {
            hp,
            n_vocab,
            tok_embd,
            output_norm,
            output,
            layers,
            encoder,
            gguf,
        })
    }

    pub fn gguf(&self) -> &GgufModel {
        &self.gguf
    }

    /// Largest FFN width any layer needs (dense or expert).
    pub(crate) fn max_ff(&self) -> usize {
        self.hp.n_ff.max(self.hp.n_ff_exp)
    }
}
