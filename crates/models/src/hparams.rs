//! Hyper-parameters read from GGUF metadata, with llama.cpp's per-architecture defaults.

use crate::embed::Pooling;
use crate::error::{ModelError, Result};
use ferrite_compute::{RopeMode, RopeParams};
use ferrite_gguf::keys::arch as ak;
use ferrite_gguf::{keys, FromValue, GgufFile, ValueRef};

/// The supported architectures (GGUF `general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 1/2/3, SmolLM, Mistral (sliding window when the key is present), Mixtral (experts).
    Llama,
    Qwen2,
    Qwen3,
    Qwen3Moe,
    Gemma2,
    Gemma3,
    Phi3,
    /// BERT encoders (all-MiniLM, bge, ...): absolute positions, post-LayerNorm, bidirectional
    /// attention; pooled embeddings instead of logits (see `embed.rs`).
    Bert,
}

impl Arch {
    pub const ALL: [Arch; 8] = [
        Arch::Llama,
        Arch::Qwen2,
        Arch::Qwen3,
        Arch::Qwen3Moe,
        Arch::Gemma2,
        Arch::Gemma3,
        Arch::Phi3,
        Arch::Bert,
    ];

    /// The GGUF architecture name (the prefix of `{arch}.*` keys).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Qwen3Moe => "qwen3moe",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
            Arch::Phi3 => "phi3",
            Arch::Bert => "bert",
        }
    }

    pub fn from_name(name: &str) -> Result<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| ModelError::UnsupportedArch {
                name: name.to_owned(),
                supported: Arch::ALL.map(Arch::name).join(", "),
            })
    }

    /// Encoder-only: the model makes embeddings ([`crate::Embedder`]), not logits
    /// ([`crate::Context::decode`]).
    pub fn is_encoder(self) -> bool {
        match self {
            Arch::Bert => true,
            Arch::Llama
            | Arch::Qwen2
            | Arch::Qwen3
            | Arch::Qwen3Moe
            | Arch::Gemma2
            | Arch::Gemma3
            | Arch::Phi3 => false,
        }
    }

    /// ggml's rope mode: Llama GGUFs have q/k rows permuted for adjacent-pair rotation.
    pub fn rope_mode(self) -> RopeMode {
        match self {
            // BERT has learned absolute position embeddings; its RoPE parameters are unused.
            Arch::Llama | Arch::Bert => RopeMode::Normal,
            Arch::Qwen2
            | Arch::Qwen3
            | Arch::Qwen3Moe
            | Arch::Gemma2
            | Arch::Gemma3
            | Arch::Phi3 => RopeMode::Neox,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HParams {
    pub arch: Arch,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    /// Dense FFN width (0 where every layer is MoE).
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// q/k head size (`attention.key_length`).
    pub head_dim: usize,
    /// v head size (`attention.value_length`).
    pub head_dim_v: usize,
    pub n_rot: usize,
    /// Norm epsilon: RMSNorm's (`attention.layer_norm_rms_epsilon`) for decoders, LayerNorm's
    /// (`attention.layer_norm_epsilon`) for BERT.
    pub rms_eps: f32,
    /// `{arch}.pooling_type` (llama.cpp's enum; none when absent).
    pub pooling: Pooling,
    /// Causal attention (decoders always; BERT when `attention.causal` says so, default not).
    pub causal: bool,
    /// RoPE of full-attention layers.
    pub rope: RopeParams,
    /// RoPE of sliding-window layers (Gemma 3's local base; otherwise equal to `rope`).
    pub rope_swa: RopeParams,
    /// LongRoPE's long factors (`rope_factors_long.weight`), used instead of `rope`'s
    /// (short) ones when a context is longer than the original training context.
    pub rope_long_factors: Option<Vec<f32>>,
    /// Sliding-window size in tokens (0 = none).
    pub n_swa: usize,
    /// Per layer: does it use the sliding window?
    pub swa_layers: Vec<bool>,
    /// Multiplies `q·k`.
    pub attn_scale: f32,
    /// Whether `attn_scale` multiplies `q` (f32, after RoPE) before attention instead of the
    /// scores: llama.cpp's Gemma graphs scale Q first (`ggml_scale(Qcur, f_attention_scale)`)
    /// and run attention with scale 1, which rounds differently once Q is converted to f16.
    pub attn_scale_q: bool,
    /// Attention logit soft-cap (0 = off).
    pub attn_softcap: f32,
    /// Final logit soft-cap (0 = off).
    pub final_softcap: f32,
    /// Embedding multiplier (Gemma: √n_embd).
    pub embd_scale: Option<f32>,
    pub n_expert: usize,
    pub n_expert_used: usize,
    pub n_ff_exp: usize,
    /// Renormalize the top-k expert weights to sum to 1.
    pub expert_weights_norm: bool,
}

pub(crate) struct Meta<'a> {
    pub f: &'a GgufFile,
    pub arch: &'a str,
}

impl<'a> Meta<'a> {
    fn key(&self, suffix: &str) -> String {
        ak::key(self.arch, suffix)
    }
    pub fn req<T: FromValue<'a>>(&self, suffix: &str) -> Result<T> {
        let k = self.key(suffix);
        match self.f.get_opt::<T>(&k)? {
            Some(v) => Ok(v),
            None => Err(ModelError::MissingKey { key: k }),
        }
    }
    pub fn opt<T: FromValue<'a>>(&self, suffix: &str) -> Result<Option<T>> {
        Ok(self.f.get_opt::<T>(&self.key(suffix))?)
    }
    /// A number stored as any integer or float type (converters disagree on some keys).
    pub fn opt_num(&self, suffix: &str) -> Result<Option<f64>> {
        let k = self.key(suffix);
        match self.f.value(&k) {
            None => Ok(None),
            Some(v) => match v.as_f64().or_else(|| v.as_i128().map(|i| i as f64)) {
                Some(x) => Ok(Some(x)),
                None => Err(bad(
                    k,
                    format!("expected a number, found {}", v.type_name()),
                )),
            },
        }
    }
}

fn bad(key: String, reason: impl Into<String>) -> ModelError {
    ModelError::BadKey {
        key,
        reason: reason.into(),
    }
}

/// RoPE frequency-factor tensors a GGUF may carry (`n_rot / 2` values each).
#[derive(Debug, Default)]
pub(crate) struct RopeFactorTensors {
    /// `rope_freqs.weight` (Llama 3 scaling).
    pub freqs: Option<Vec<f32>>,
    /// `rope_factors_long.weight` / `rope_factors_short.weight` (Phi-3 LongRoPE).
    pub long: Option<Vec<f32>>,
    pub short: Option<Vec<f32>>,
}

impl HParams {
    /// The RoPE of full and sliding-window layers for a context of `n_ctx` cells: LongRoPE
    /// models use their long factors when `n_ctx` exceeds the original training context, as
    /// llama.cpp decides it (by context size, not by position).
    pub fn ropes_for_context(&self, n_ctx: usize) -> (RopeParams, RopeParams) {
        let (mut full, mut swa) = (self.rope.clone(), self.rope_swa.clone());
        if let Some(long) = &self.rope_long_factors {
            if n_ctx > self.rope.n_ctx_orig {
                full.freq_factors = Some(long.clone());
                swa.freq_factors = Some(long.clone());
            }
        }
        (full, swa)
    }

    /// Read every hyper-parameter; `factors` holds the RoPE frequency-factor tensors present.
    pub(crate) fn load(f: &GgufFile, factors: RopeFactorTensors) -> Result<HParams> {
        let arch_name: &str =
            f.get_opt(keys::general::ARCHITECTURE)?
                .ok_or_else(|| ModelError::MissingKey {
                    key: keys::general::ARCHITECTURE.into(),
                })?;
        let arch = Arch::from_name(arch_name)?;
        let m = Meta { f, arch: arch_name };

        let n_embd: usize = m.req(ak::EMBEDDING_LENGTH)?;
        let n_layer: usize = m.req(ak::BLOCK_COUNT)?;
        let n_head: usize = m.req(ak::ATTENTION_HEAD_COUNT)?;
        let n_head_kv: usize = m.opt(ak::ATTENTION_HEAD_COUNT_KV)?.unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || !n_head.is_multiple_of(n_head_kv) {
            return Err(bad(
                m.key(ak::ATTENTION_HEAD_COUNT_KV),
                format!("n_head {n_head} is not a multiple of n_head_kv {n_head_kv}"),
            ));
        }
        let head_dim: usize = m.opt(ak::ATTENTION_KEY_LENGTH)?.unwrap_or(n_embd / n_head);
        let head_dim_v: usize = m.opt(ak::ATTENTION_VALUE_LENGTH)?.unwrap_or(head_dim);
        let n_rot: usize = m.opt(ak::ROPE_DIMENSION_COUNT)?.unwrap_or(head_dim);
        if n_rot > head_dim || !n_rot.is_multiple_of(2) {
            return Err(bad(
                m.key(ak::ROPE_DIMENSION_COUNT),
                format!("{n_rot} must be even and ≤ head_dim {head_dim}"),
            ));
        }
        let n_ctx_train: usize = m.opt(ak::CONTEXT_LENGTH)?.unwrap_or(2048);
        let rms_eps: f32 = match arch {
            Arch::Bert => m.req(ak::ATTENTION_LAYERNORM_EPS)?,
            Arch::Llama
            | Arch::Qwen2
            | Arch::Qwen3
            | Arch::Qwen3Moe
            | Arch::Gemma2
            | Arch::Gemma3
            | Arch::Phi3 => m.req(ak::ATTENTION_LAYERNORM_RMS_EPS)?,
        };
        let pooling = match m.opt_num(ak::POOLING_TYPE)? {
            None => Pooling::None,
            Some(v) => Pooling::from_gguf(v).ok_or_else(|| {
                bad(
                    m.key(ak::POOLING_TYPE),
                    format!("{v} is not a pooling type (0 none, 1 mean, 2 cls, 3 last, 4 rank)"),
                )
            })?,
        };
        let causal = match arch {
            Arch::Bert => m.opt::<bool>(ak::ATTENTION_CAUSAL)?.unwrap_or(false),
            Arch::Llama
            | Arch::Qwen2
            | Arch::Qwen3
            | Arch::Qwen3Moe
            | Arch::Gemma2
            | Arch::Gemma3
            | Arch::Phi3 => true,
        };
        let n_expert: usize = m.opt(ak::EXPERT_COUNT)?.unwrap_or(0);
        let n_expert_used: usize = if n_expert > 0 {
            m.req(ak::EXPERT_USED_COUNT)?
        } else {
            0
        };
        if n_expert_used > n_expert {
            return Err(bad(
                m.key(ak::EXPERT_USED_COUNT),
                format!("{n_expert_used} > expert_count {n_expert}"),
            ));
        }
        let n_ff: usize = match arch {
            Arch::Qwen3Moe => m.opt(ak::FEED_FORWARD_LENGTH)?.unwrap_or(0),
            Arch::Llama
            | Arch::Qwen2
            | Arch::Qwen3
            | Arch::Gemma2
            | Arch::Gemma3
            | Arch::Phi3
            | Arch::Bert => m.req(ak::FEED_FORWARD_LENGTH)?,
        };
        let n_ff_exp: usize = match arch {
            Arch::Qwen3Moe => m.req(ak::EXPERT_FEED_FORWARD_LENGTH)?,
            // Mixtral-style experts have the dense width.
            Arch::Llama => m.opt(ak::EXPERT_FEED_FORWARD_LENGTH)?.unwrap_or(n_ff),
            Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma2 | Arch::Gemma3 | Arch::Phi3 | Arch::Bert => 0,
        };
        // llama.cpp's build_moe_ffn(norm_w = true) for both MoE families unless the key says.
        let expert_weights_norm = m
            .opt::<bool>(ak::EXPERT_WEIGHTS_NORM)?
            .unwrap_or(match arch {
                Arch::Llama | Arch::Qwen3Moe => true,
                Arch::Qwen2
                | Arch::Qwen3
                | Arch::Gemma2
                | Arch::Gemma3
                | Arch::Phi3
                | Arch::Bert => false,
            });

        // RoPE.
        let freq_base: f32 = m.opt(ak::ROPE_FREQ_BASE)?.unwrap_or(10000.0);
        let factor: f32 = m.opt(ak::ROPE_SCALING_FACTOR)?.unwrap_or(0.0);
        let freq_scale = if factor == 0.0 { 1.0 } else { 1.0 / factor };
        let scaling: Option<&str> = m.opt(ak::ROPE_SCALING_TYPE)?;
        let ext_factor = match scaling {
            // LongRoPE (Phi-3): plain RoPE with per-dimension factors (the tensors below).
            None | Some("none") | Some("linear") | Some("longrope") => 0.0,
            Some("yarn") => 1.0,
            Some(other) => {
                return Err(bad(
                    m.key(ak::ROPE_SCALING_TYPE),
                    format!("unsupported rope scaling {other:?} (none, linear, yarn, longrope)"),
                ))
            }
        };
        // The magnitude factor as llama.cpp's context setup computes it (llama-context.cpp,
        // commit 0c1e570): with YaRN, ggml's rope multiplies by 1 + 0.1·ln(factor) itself, so
        // the factor passed is that cancelled, times the YaRN log-multiplier correction, times
        // `rope.scaling.attn_factor` (Phi-3 LongRoPE's sqrt(1 + ln s / ln n_orig)).
        let rope_attn_factor: f32 = m.opt(ak::ROPE_SCALING_ATTN_FACTOR)?.unwrap_or(1.0);
        let attn_factor = if ext_factor != 0.0 {
            let f = 1.0 / freq_scale;
            let mscale = |m: f32| {
                if f <= 1.0 {
                    1.0
                } else {
                    0.1 * m * f.ln() + 1.0
                }
            };
            let log_mul: f32 = m.opt(ak::ROPE_SCALING_YARN_LOG_MUL)?.unwrap_or(0.0);
            let yarn = if log_mul != 0.0 {
                mscale(1.0) / mscale(log_mul)
            } else {
                mscale(1.0)
            };
            yarn / (1.0 + 0.1 * f.ln()) * rope_attn_factor
        } else {
            rope_attn_factor
        };
        let n_ctx_orig: usize = m.opt(ak::ROPE_SCALING_ORIG_CTX_LEN)?.unwrap_or(n_ctx_train);
        for (name, ff) in [
            ("rope_freqs.weight", &factors.freqs),
            ("rope_factors_long.weight", &factors.long),
            ("rope_factors_short.weight", &factors.short),
        ] {
            if let Some(ff) = ff {
                if ff.len() != n_rot / 2 {
                    return Err(ModelError::TensorShape {
                        name: name.into(),
                        expected: vec![n_rot / 2],
                        got: vec![ff.len()],
                    });
                }
            }
        }
        // As llama.cpp's get_rope_factors: `rope_freqs` wins; else LongRoPE's short factors,
        // switched to the long ones by `ropes_for_context` when the context exceeds n_ctx_orig.
        let (freq_factors, rope_long_factors) = match factors.freqs {
            Some(ff) => (Some(ff), None),
            None => (factors.short, factors.long),
        };
        let rope = RopeParams {
            mode: arch.rope_mode(),
            n_rot,
            freq_base,
            freq_scale,
            ext_factor,
            attn_factor,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig,
            freq_factors,
        };
        let rope_swa = match arch {
            // Local layers: their own base (default 10000 as in llama.cpp) and no scaling.
            Arch::Gemma3 => RopeParams {
                freq_base: m.opt(ak::ROPE_FREQ_BASE_SWA)?.unwrap_or(10000.0),
                freq_scale: 1.0,
                ext_factor: 0.0,
                ..rope.clone()
            },
            Arch::Llama
            | Arch::Qwen2
            | Arch::Qwen3
            | Arch::Qwen3Moe
            | Arch::Gemma2
            | Arch::Phi3
            | Arch::Bert => RopeParams {
                freq_base: m.opt(ak::ROPE_FREQ_BASE_SWA)?.unwrap_or(freq_base),
                ..rope.clone()
            },
        };

        // Sliding window: which layers, how wide.
        let window: usize = m.opt(ak::ATTENTION_SLIDING_WINDOW)?.unwrap_or(0);
        let (n_swa, default_period) = match arch {
            // Mistral-style: every layer, when the key is present.
            Arch::Llama => (window, 0),
            Arch::Gemma2 => (m.req(ak::ATTENTION_SLIDING_WINDOW)?, 2),
            Arch::Gemma3 => (m.req(ak::ATTENTION_SLIDING_WINDOW)?, 6),
            // llama.cpp runs Qwen2/3 with full attention (use_sliding_window is false in their
            // configs) and disables Phi-3's window ("Phi SWA is currently disabled").
            Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen3Moe | Arch::Phi3 => (0, 0),
            // Full bidirectional attention within each sequence.
            Arch::Bert => (0, 0),
        };
        let swa_layers = if n_swa == 0 {
            vec![false; n_layer]
        } else {
            swa_pattern(&m, n_layer, default_period)?
        };

        let attn_scale = match arch {
            Arch::Gemma2 | Arch::Gemma3 => match m.opt_num(ak::ATTENTION_QUERY_PRE_ATTN_SCALAR)? {
                Some(s) => (1.0 / s.sqrt()) as f32,
                // llama.cpp's rule: 1/√head_dim, except the 27B models (n_embd / n_head).
                None => {
                    let is_27b = matches!((arch, n_layer), (Arch::Gemma2, 46) | (Arch::Gemma3, 62));
                    if is_27b {
                        1.0 / ((n_embd / n_head) as f32).sqrt()
                    } else {
                        1.0 / (head_dim as f32).sqrt()
                    }
                }
            },
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen3Moe | Arch::Phi3 | Arch::Bert => {
                1.0 / (head_dim as f32).sqrt()
            }
        };
        let attn_scale_q = match arch {
            Arch::Gemma2 | Arch::Gemma3 => true,
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen3Moe | Arch::Phi3 | Arch::Bert => {
                false
            }
        };
        let (attn_softcap, final_softcap) = match arch {
            // llama.cpp's defaults when the keys are absent: 50 and 30.
            Arch::Gemma2 => (
                m.opt(ak::ATTN_LOGIT_SOFTCAPPING)?.unwrap_or(50.0),
                m.opt(ak::FINAL_LOGIT_SOFTCAPPING)?.unwrap_or(30.0),
            ),
            Arch::Llama
            | Arch::Qwen2
            | Arch::Qwen3
            | Arch::Qwen3Moe
            | Arch::Gemma3
            | Arch::Phi3
            | Arch::Bert => (0.0, 0.0),
        };
        let embd_scale = match arch {
            Arch::Gemma2 | Arch::Gemma3 => Some((n_embd as f32).sqrt()),
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen3Moe | Arch::Phi3 | Arch::Bert => {
                None
            }
        };

        Ok(HParams {
            arch,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_rot,
            rms_eps,
            pooling,
            causal,
            rope,
            rope_swa,
            rope_long_factors,
            n_swa,
            swa_layers,
            attn_scale,
            attn_scale_q,
            attn_softcap,
            final_softcap,
            embd_scale,
            n_expert,
            n_expert_used,
            n_ff_exp,
            expert_weights_norm,
        })
    }

    pub fn n_embd_k_gqa(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
    pub fn n_embd_v_gqa(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }
}

/// `attention.sliding_window_pattern`: a period `p` with llama.cpp's `set_swa_pattern` meaning
/// (layer `il` is local iff `p == 0 || il % p < p - 1`; 0 = every layer) or one bool per layer;
/// else the architecture's default period.
fn swa_pattern(m: &Meta<'_>, n_layer: usize, default_period: usize) -> Result<Vec<bool>> {
    let key = m.key(ak::ATTENTION_SLIDING_WINDOW_PATTERN);
    let period = match m.f.value(&key) {
        None => default_period,
        Some(ValueRef::Array(a)) => {
            let v: Vec<bool> = a
                .to_vec()
                .ok_or_else(|| bad(key.clone(), "expected an array of bool"))?;
            if v.len() != n_layer {
                return Err(bad(
                    key,
                    format!("{} entries for {n_layer} layers", v.len()),
                ));
            }
            return Ok(v);
        }
        Some(v) => v
            .as_i128()
            .and_then(|p| usize::try_from(p).ok())
            .ok_or_else(|| bad(key.clone(), "expected a period or bool array"))?,
    };
    Ok((0..n_layer)
        .map(|il| period == 0 || il % period < period - 1)
        .collect())
}
