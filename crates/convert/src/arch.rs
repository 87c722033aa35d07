//! One table per architecture: Hugging Face tensor names → GGUF names, hparams → metadata keys,
//! and the tensor rewrites llama.cpp's converter applies (Q/K row permutation for llama-style
//! RoPE, Gemma's stored `1 + w` norms, expert stacking, Gemma 3's embedding cut).
//!
//! Facts are from llama.cpp's convert_hf_to_gguf.py and checked against its output for the
//! hf-tiny checkpoints (tests/hf_tiny.rs).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ferrite_gguf::keys::{arch as ak, general as gk, tokenizer as tk};
use ferrite_gguf::Value;
use serde_json::Value as Json;

use crate::error::{ConvertError, Result};
use crate::hf::{read_json_opt, HfConfig};
use crate::meta::Kv;
use crate::source::{float_size, Weights};
use crate::vocab::{self, VocabInfo};

/// The supported `architectures[0]` values of config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    Llama,
    Mistral,
    Mixtral,
    Qwen2,
    Qwen3,
    Qwen3Moe,
    Gemma2,
    Gemma3,
    Phi3,
    Bert,
}

impl Architecture {
    pub const ALL: [Architecture; 10] = [
        Architecture::Llama,
        Architecture::Mistral,
        Architecture::Mixtral,
        Architecture::Qwen2,
        Architecture::Qwen3,
        Architecture::Qwen3Moe,
        Architecture::Gemma2,
        Architecture::Gemma3,
        Architecture::Phi3,
        Architecture::Bert,
    ];

    /// The transformers class name in `architectures`.
    pub fn hf_class(self) -> &'static str {
        match self {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Mistral => "MistralForCausalLM",
            Architecture::Mixtral => "MixtralForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Qwen3 => "Qwen3ForCausalLM",
            Architecture::Qwen3Moe => "Qwen3MoeForCausalLM",
            Architecture::Gemma2 => "Gemma2ForCausalLM",
            Architecture::Gemma3 => "Gemma3ForCausalLM",
            Architecture::Phi3 => "Phi3ForCausalLM",
            Architecture::Bert => "BertModel",
        }
    }

    pub fn from_hf_class(s: &str) -> Option<Architecture> {
        Self::ALL.into_iter().find(|a| a.hf_class() == s)
    }

    /// `general.architecture` (Mistral and Mixtral are llama.cpp's `llama`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            Architecture::Llama | Architecture::Mistral | Architecture::Mixtral => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Qwen3Moe => "qwen3moe",
            Architecture::Gemma2 => "gemma2",
            Architecture::Gemma3 => "gemma3",
            Architecture::Phi3 => "phi3",
            Architecture::Bert => "bert",
        }
    }

    fn is_llama_family(self) -> bool {
        match self {
            Architecture::Llama | Architecture::Mistral | Architecture::Mixtral => true,
            Architecture::Qwen2
            | Architecture::Qwen3
            | Architecture::Qwen3Moe
            | Architecture::Gemma2
            | Architecture::Gemma3
            | Architecture::Phi3
            | Architecture::Bert => false,
        }
    }

    /// HF name templates (`{bid}` = layer) → GGUF name templates, without `.weight`/`.bias`.
    fn table(self) -> Vec<(&'static str, &'static str)> {
        const BASE: &[(&str, &str)] = &[
            ("model.embed_tokens", "token_embd"),
            ("model.norm", "output_norm"),
            ("lm_head", "output"),
            ("model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"),
            ("model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"),
            ("model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"),
            ("model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"),
            (
                "model.layers.{bid}.self_attn.o_proj",
                "blk.{bid}.attn_output",
            ),
        ];
        const FFN_NORM: &[(&str, &str)] = &[(
            "model.layers.{bid}.post_attention_layernorm",
            "blk.{bid}.ffn_norm",
        )];
        const DENSE: &[(&str, &str)] = &[
            ("model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"),
            ("model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"),
            ("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),
        ];
        const QK_NORM: &[(&str, &str)] = &[
            (
                "model.layers.{bid}.self_attn.q_norm",
                "blk.{bid}.attn_q_norm",
            ),
            (
                "model.layers.{bid}.self_attn.k_norm",
                "blk.{bid}.attn_k_norm",
            ),
        ];
        const GEMMA_NORMS: &[(&str, &str)] = &[
            (
                "model.layers.{bid}.post_attention_layernorm",
                "blk.{bid}.post_attention_norm",
            ),
            (
                "model.layers.{bid}.pre_feedforward_layernorm",
                "blk.{bid}.ffn_norm",
            ),
            (
                "model.layers.{bid}.post_feedforward_layernorm",
                "blk.{bid}.post_ffw_norm",
            ),
        ];
        const BERT: &[(&str, &str)] = &[
            ("embeddings.word_embeddings", "token_embd"),
            ("embeddings.position_embeddings", "position_embd"),
            ("embeddings.token_type_embeddings", "token_types"),
            ("embeddings.LayerNorm", "token_embd_norm"),
            (
                "encoder.layer.{bid}.attention.self.query",
                "blk.{bid}.attn_q",
            ),
            ("encoder.layer.{bid}.attention.self.key", "blk.{bid}.attn_k"),
            (
                "encoder.layer.{bid}.attention.self.value",
                "blk.{bid}.attn_v",
            ),
            (
                "encoder.layer.{bid}.attention.output.dense",
                "blk.{bid}.attn_output",
            ),
            (
                "encoder.layer.{bid}.attention.output.LayerNorm",
                "blk.{bid}.attn_output_norm",
            ),
            ("encoder.layer.{bid}.intermediate.dense", "blk.{bid}.ffn_up"),
            ("encoder.layer.{bid}.output.dense", "blk.{bid}.ffn_down"),
            (
                "encoder.layer.{bid}.output.LayerNorm",
                "blk.{bid}.layer_output_norm",
            ),
        ];
        let parts: Vec<&[(&str, &str)]> = match self {
            Architecture::Llama | Architecture::Mistral | Architecture::Qwen2 => {
                vec![BASE, FFN_NORM, DENSE]
            }
            Architecture::Mixtral => {
                vec![
                    BASE,
                    FFN_NORM,
                    &[(
                        "model.layers.{bid}.block_sparse_moe.gate",
                        "blk.{bid}.ffn_gate_inp",
                    )],
                ]
            }
            Architecture::Qwen3 => vec![BASE, FFN_NORM, DENSE, QK_NORM],
            Architecture::Qwen3Moe => {
                vec![
                    BASE,
                    FFN_NORM,
                    QK_NORM,
                    &[("model.layers.{bid}.mlp.gate", "blk.{bid}.ffn_gate_inp")],
                ]
            }
            Architecture::Gemma2 => vec![BASE, GEMMA_NORMS, DENSE],
            Architecture::Gemma3 => vec![BASE, GEMMA_NORMS, DENSE, QK_NORM],
            Architecture::Phi3 => vec![
                BASE,
                FFN_NORM,
                &[
                    (
                        "model.layers.{bid}.self_attn.qkv_proj",
                        "blk.{bid}.attn_qkv",
                    ),
                    ("model.layers.{bid}.mlp.gate_up_proj", "blk.{bid}.ffn_up"),
                    ("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),
                ],
            ],
            Architecture::Bert => vec![BERT],
        };
        parts.into_iter().flatten().copied().collect()
    }

    /// Stacked-expert layout: (HF expert name pattern pieces, the order llama.cpp emits the
    /// stacked tensors in, with their GGUF names).
    fn experts(self) -> Option<(&'static str, [(&'static str, &'static str); 3])> {
        match self {
            Architecture::Mixtral => Some((
                "block_sparse_moe.experts",
                [
                    ("w1", "ffn_gate_exps"),
                    ("w2", "ffn_down_exps"),
                    ("w3", "ffn_up_exps"),
                ],
            )),
            Architecture::Qwen3Moe => Some((
                "mlp.experts",
                [
                    ("down_proj", "ffn_down_exps"),
                    ("gate_proj", "ffn_gate_exps"),
                    ("up_proj", "ffn_up_exps"),
                ],
            )),
            Architecture::Llama
            | Architecture::Mistral
            | Architecture::Qwen2
            | Architecture::Qwen3
            | Architecture::Gemma2
            | Architecture::Gemma3
            | Architecture::Phi3
            | Architecture::Bert => None,
        }
    }
}

/// A rewrite applied to a source tensor (in f32) before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transform {
    /// llama.cpp's `LlamaModel.permute`: per head, rows `[2][hd/2]` → `[hd/2][2]`.
    PermuteRows { n_head: usize },
    /// Gemma norms: the GGUF stores `1 + w`.
    AddOne,
    /// Keep the first rows (Gemma 3 cuts the embedding to the vocabulary).
    KeepRows(usize),
}

#[derive(Debug, Clone)]
pub(crate) enum TensorSource {
    Tensor {
        name: String,
        transforms: Vec<Transform>,
    },
    /// Experts stacked along a new first dimension.
    Stack(Vec<String>),
    /// Computed by the converter (llama-3 `rope_freqs`, Phi-3 long-rope factors).
    Values(Vec<f32>),
}

#[derive(Debug, Clone)]
pub(crate) struct PlannedTensor {
    pub name: String,
    /// Torch order (first = outermost); GGUF dims are this reversed.
    pub shape: Vec<usize>,
    pub source: TensorSource,
}

impl PlannedTensor {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Replace the first all-digit dot component with `{bid}`.
fn templatize(name: &str) -> (String, Option<usize>) {
    let mut bid = None;
    let parts: Vec<String> = name
        .split('.')
        .map(|p| {
            if bid.is_none() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                bid = p.parse().ok();
                "{bid}".to_owned()
            } else {
                p.to_owned()
            }
        })
        .collect();
    (parts.join("."), bid)
}

fn map_name(table: &[(&str, &str)], name: &str, n_layer: usize) -> Option<String> {
    let (base, suffix) = if let Some(b) = name.strip_suffix(".weight") {
        (b, ".weight")
    } else if let Some(b) = name.strip_suffix(".bias") {
        (b, ".bias")
    } else {
        (name, "")
    };
    let (tmpl, bid) = templatize(base);
    if bid.is_some_and(|b| b >= n_layer) {
        return None;
    }
    let (_, g) = table.iter().find(|(h, _)| *h == tmpl)?;
    let g = match bid {
        Some(b) => g.replace("{bid}", &b.to_string()),
        None => (*g).to_owned(),
    };
    Some(format!("{g}{suffix}"))
}

/// Rename or drop a source tensor before mapping (`None` = llama.cpp drops it).
fn preprocess_name(arch: Architecture, name: &str) -> Option<String> {
    if name.ends_with(".attention.masked_bias")
        || name.ends_with(".attention.bias")
        || name.ends_with(".rotary_emb.inv_freq")
    {
        return None;
    }
    match arch {
        Architecture::Bert => {
            let mut n = name.strip_prefix("bert.").unwrap_or(name).to_owned();
            if let Some(b) = n.strip_suffix(".gamma") {
                n = format!("{b}.weight");
            } else if let Some(b) = n.strip_suffix(".beta") {
                n = format!("{b}.bias");
            }
            let dropped = matches!(
                n.as_str(),
                "embeddings.position_ids" | "pooler.dense.weight" | "pooler.dense.bias"
            ) || n.starts_with("cls.predictions")
                || n.starts_with("cls.seq_relationship");
            (!dropped).then_some(n)
        }
        // "lm_head is not used in llama.cpp" (Gemma's are tied to the embedding).
        Architecture::Gemma2 | Architecture::Gemma3 => {
            (name != "lm_head.weight").then(|| name.to_owned())
        }
        Architecture::Llama
        | Architecture::Mistral
        | Architecture::Mixtral
        | Architecture::Qwen2
        | Architecture::Qwen3
        | Architecture::Qwen3Moe
        | Architecture::Phi3 => Some(name.to_owned()),
    }
}

/// `model.layers.{bid}.{prefix}.{xid}.{wid}.weight` → (bid, xid, wid).
fn parse_expert<'a>(name: &'a str, prefix: &str) -> Option<(usize, usize, &'a str)> {
    let rest = name.strip_prefix("model.layers.")?;
    let (bid, rest) = rest.split_once('.')?;
    let rest = rest.strip_prefix(prefix)?.strip_prefix('.')?;
    let (xid, rest) = rest.split_once('.')?;
    let wid = rest.strip_suffix(".weight")?;
    Some((bid.parse().ok()?, xid.parse().ok()?, wid))
}

pub(crate) struct Plan {
    pub tensors: Vec<PlannedTensor>,
}

/// Decide every output tensor, in llama.cpp's order, without reading tensor data.
pub(crate) fn plan_tensors(
    arch: Architecture,
    cfg: &HfConfig,
    w: &Weights,
    n_vocab: usize,
) -> Result<Plan> {
    let n_layer =
        cfg.req_u64(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])? as usize;
    let table = arch.table();
    let mut out = extra_tensors(arch, cfg)?;
    let n_head = cfg.find_u64(&["num_attention_heads"])?.unwrap_or(0) as usize;
    let n_head_kv = cfg.find_u64(&["num_key_value_heads"])?.map(|v| v as usize);
    let experts = arch.experts();
    let n_expert = match experts {
        Some(_) => cfg.req_u64(&["num_local_experts", "num_experts"])? as usize,
        None => 0,
    };
    // Per layer: HF expert tensor names collected so far.
    let mut pending: BTreeMap<usize, HashMap<String, String>> = BTreeMap::new();

    for t in &w.tensors {
        let path = w.path_of(t);
        let Some(name) = preprocess_name(arch, &t.name) else {
            continue;
        };
        if float_size(t.dtype).is_none() {
            return Err(ConvertError::BadDtype {
                path: path.to_owned(),
                name: t.name.clone(),
                dtype: format!("{:?}", t.dtype),
            });
        }
        if let Some((prefix, order)) = experts {
            if let Some((bid, xid, wid)) = parse_expert(&name, prefix) {
                if bid >= n_layer || xid >= n_expert || !order.iter().any(|(w, _)| *w == wid) {
                    return Err(ConvertError::UnexpectedTensor {
                        path: path.to_owned(),
                        name: t.name.clone(),
                        arch: arch.gguf_name(),
                    });
                }
                let layer = pending.entry(bid).or_default();
                layer.insert(format!("{xid}.{wid}"), t.name.clone());
                if layer.len() >= n_expert * 3 {
                    let layer = pending.remove(&bid).expect("just inserted");
                    for (wid, gguf) in order {
                        let names: Vec<String> = (0..n_expert)
                            .map(|x| {
                                layer.get(&format!("{x}.{wid}")).cloned().ok_or_else(|| {
                                    ConvertError::MissingTensor {
                                        path: path.to_owned(),
                                        name: format!(
                                            "model.layers.{bid}.{prefix}.{x}.{wid}.weight"
                                        ),
                                    }
                                })
                            })
                            .collect::<Result<_>>()?;
                        let first = w.get(&names[0]).expect("listed");
                        for n in &names[1..] {
                            let o = w.get(n).expect("listed");
                            if o.shape != first.shape {
                                return Err(ConvertError::BadTensor {
                                    path: path.to_owned(),
                                    name: n.clone(),
                                    what: format!(
                                        "shape {:?} differs from expert 0's {:?}",
                                        o.shape, first.shape
                                    ),
                                });
                            }
                        }
                        let mut shape = vec![n_expert];
                        shape.extend(&first.shape);
                        out.push(PlannedTensor {
                            name: format!("blk.{bid}.{gguf}.weight"),
                            shape,
                            source: TensorSource::Stack(names),
                        });
                    }
                }
                continue;
            }
        }
        let Some(gguf) = map_name(&table, &name, n_layer) else {
            return Err(ConvertError::UnexpectedTensor {
                path: path.to_owned(),
                name: t.name.clone(),
                arch: arch.gguf_name(),
            });
        };
        let mut shape = t.shape.clone();
        let mut transforms = Vec::new();
        if arch.is_llama_family() {
            let heads = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
                Some(n_head)
            } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
                Some(n_head_kv.filter(|&kv| kv != n_head).unwrap_or(n_head))
            } else {
                None
            };
            if let Some(h) = heads {
                let rows = shape.first().copied().unwrap_or(0);
                if h == 0 || rows % (2 * h) != 0 {
                    return Err(ConvertError::BadTensor {
                        path: path.to_owned(),
                        name: t.name.clone(),
                        what: format!("{rows} rows cannot be permuted for {h} heads"),
                    });
                }
                transforms.push(Transform::PermuteRows { n_head: h });
            }
        }
        match arch {
            Architecture::Gemma2 | Architecture::Gemma3 => {
                if name.ends_with("norm.weight") {
                    transforms.push(Transform::AddOne);
                }
                if arch == Architecture::Gemma3 && gguf == "token_embd.weight" && shape[0] > n_vocab
                {
                    transforms.push(Transform::KeepRows(n_vocab));
                    shape[0] = n_vocab;
                }
            }
            Architecture::Llama
            | Architecture::Mistral
            | Architecture::Mixtral
            | Architecture::Qwen2
            | Architecture::Qwen3
            | Architecture::Qwen3Moe
            | Architecture::Phi3
            | Architecture::Bert => {}
        }
        if shape.is_empty() {
            shape = vec![1];
        }
        out.push(PlannedTensor {
            name: gguf,
            shape,
            source: TensorSource::Tensor {
                name: t.name.clone(),
                transforms,
            },
        });
    }
    if let Some((bid, layer)) = pending.into_iter().next() {
        let mut names: Vec<_> = layer.into_values().collect();
        names.sort();
        return Err(ConvertError::MissingTensor {
            path: w.shards[0].0.clone(),
            name: format!(
                "experts of layer {bid}: only {} found ({})",
                names.len(),
                names.join(", ")
            ),
        });
    }
    check_required(arch, cfg, w, &table, &out, n_layer)?;
    Ok(Plan { tensors: out })
}

/// Every architecture needs its embedding, and every layer its attention; name the first HF
/// tensor that is missing.
fn check_required(
    arch: Architecture,
    cfg: &HfConfig,
    w: &Weights,
    table: &[(&str, &str)],
    out: &[PlannedTensor],
    n_layer: usize,
) -> Result<()> {
    let mut required: Vec<&str> = vec!["token_embd"];
    match arch {
        Architecture::Bert => required.extend([
            "blk.{bid}.attn_q",
            "blk.{bid}.attn_k",
            "blk.{bid}.attn_v",
            "blk.{bid}.attn_output",
        ]),
        Architecture::Phi3 => required.extend([
            "output_norm",
            "blk.{bid}.attn_norm",
            "blk.{bid}.attn_qkv",
            "blk.{bid}.attn_output",
        ]),
        Architecture::Llama
        | Architecture::Mistral
        | Architecture::Mixtral
        | Architecture::Qwen2
        | Architecture::Qwen3
        | Architecture::Qwen3Moe
        | Architecture::Gemma2
        | Architecture::Gemma3 => required.extend([
            "output_norm",
            "blk.{bid}.attn_norm",
            "blk.{bid}.attn_q",
            "blk.{bid}.attn_k",
            "blk.{bid}.attn_v",
            "blk.{bid}.attn_output",
        ]),
    }
    let tied = cfg.bool_opt("tie_word_embeddings").unwrap_or(false);
    if !tied
        && !matches!(
            arch,
            Architecture::Bert | Architecture::Gemma2 | Architecture::Gemma3
        )
    {
        required.push("output");
    }
    for g in required {
        let layers: Vec<Option<usize>> = if g.contains("{bid}") {
            (0..n_layer).map(Some).collect()
        } else {
            vec![None]
        };
        for bid in layers {
            let gname = match bid {
                Some(b) => format!("{}.weight", g.replace("{bid}", &b.to_string())),
                None => format!("{g}.weight"),
            };
            if out.iter().any(|t| t.name == gname) {
                continue;
            }
            let hf = table
                .iter()
                .find(|(_, gg)| *gg == g)
                .map(|(h, _)| *h)
                .unwrap_or(g);
            let hf = match bid {
                Some(b) => hf.replace("{bid}", &b.to_string()),
                None => hf.to_owned(),
            };
            return Err(ConvertError::MissingTensor {
                path: w.shards[0].0.clone(),
                name: format!("{hf}.weight"),
            });
        }
    }
    Ok(())
}

/// Tensors the converter computes: llama-3 `rope_freqs`, Phi-3 long-rope factors.
fn extra_tensors(arch: Architecture, cfg: &HfConfig) -> Result<Vec<PlannedTensor>> {
    let mut out = Vec::new();
    let rope = cfg.rope_full();
    match arch {
        Architecture::Llama | Architecture::Mistral | Architecture::Mixtral => {
            let is_llama3 = rope
                .get("rope_type")
                .and_then(Json::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("llama3"));
            if is_llama3 {
                let f = llama3_rope_factors(cfg)?;
                out.push(PlannedTensor {
                    name: "rope_freqs.weight".into(),
                    shape: vec![f.len()],
                    source: TensorSource::Values(f),
                });
            }
        }
        Architecture::Phi3 => {
            if let Some((long, short)) = phi3_rope_factors(cfg)? {
                out.push(PlannedTensor {
                    name: "rope_factors_long.weight".into(),
                    shape: vec![long.len()],
                    source: TensorSource::Values(long),
                });
                out.push(PlannedTensor {
                    name: "rope_factors_short.weight".into(),
                    shape: vec![short.len()],
                    source: TensorSource::Values(short),
                });
            }
        }
        Architecture::Qwen2
        | Architecture::Qwen3
        | Architecture::Qwen3Moe
        | Architecture::Gemma2
        | Architecture::Gemma3
        | Architecture::Bert => {}
    }
    Ok(out)
}

fn head_dim(cfg: &HfConfig) -> Result<u64> {
    match cfg.find_u64(&["head_dim"])? {
        Some(h) => Ok(h),
        None => Ok(cfg.req_u64(&["hidden_size"])? / cfg.req_u64(&["num_attention_heads"])?),
    }
}

/// llama.cpp's llama-3 rope factors (computed in f32 as torch does).
fn llama3_rope_factors(cfg: &HfConfig) -> Result<Vec<f32>> {
    let rope = cfg.rope_full();
    let num = |k: &str, d: f64| rope.get(k).and_then(Json::as_f64).unwrap_or(d);
    let base = num("rope_theta", 10000.0);
    let dim = head_dim(cfg)? as usize;
    let factor = num("factor", 8.0) as f32;
    let low = num("low_freq_factor", 1.0) as f32;
    let high = num("high_freq_factor", 4.0) as f32;
    let old_ctx = match rope
        .get("original_max_position_embeddings")
        .and_then(Json::as_f64)
    {
        Some(v) => v,
        None => cfg
            .find_f64(&["original_max_position_embeddings"])?
            .unwrap_or(8192.0),
    } as f32;
    let low_wavelen = old_ctx / low;
    let high_wavelen = old_ctx / high;
    if low_wavelen == high_wavelen {
        return Err(cfg.bad(
            "rope_scaling",
            "llama3 low_freq_factor equals high_freq_factor".into(),
        ));
    }
    let base = base as f32;
    Ok((0..dim)
        .step_by(2)
        .map(|i| {
            let freq = 1.0f32 / base.powf(i as f32 / dim as f32);
            let wavelen = (2.0 * std::f64::consts::PI) as f32 / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect())
}

/// Phi-3 `longrope`/`su`: the long and short factor tensors (`None` without rope scaling).
fn phi3_rope_factors(cfg: &HfConfig) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    let Some(Json::Object(rs)) = cfg.get("rope_scaling") else {
        return Ok(None);
    };
    let n_embd = cfg.req_u64(&["hidden_size", "n_embd"])? as f64;
    let n_head = cfg.req_u64(&["num_attention_heads", "n_head"])? as f64;
    let rot = cfg.find_f64(&["partial_rotary_factor"])?.unwrap_or(1.0);
    let rope_dims = ((rot * n_embd) as u64 / n_head as u64) as usize;
    let list = |k: &str| -> Result<Vec<f32>> {
        let v = rs
            .get(k)
            .and_then(Json::as_array)
            .ok_or_else(|| cfg.bad(&format!("rope_scaling.{k}"), "missing".into()))?;
        let f: Vec<f32> = v
            .iter()
            .filter_map(|x| x.as_f64().map(|x| x as f32))
            .collect();
        if f.len() != rope_dims / 2 {
            return Err(cfg.bad(
                &format!("rope_scaling.{k}"),
                format!("{} values, expected {}", f.len(), rope_dims / 2),
            ));
        }
        Ok(f)
    };
    let ty = rs
        .get("rope_type")
        .or_else(|| rs.get("type"))
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_lowercase();
    match ty.as_str() {
        "su" | "longrope" | "yarn" => Ok(Some((list("long_factor")?, list("short_factor")?))),
        "" | "default" => Ok(None),
        other => Err(cfg.bad(
            "rope_scaling.rope_type",
            format!("{other:?} is not supported for Phi-3"),
        )),
    }
}

/// `TextModel.set_gguf_parameters` (the shared part).
fn text_model_params(a: &str, cfg: &HfConfig, kv: &mut Kv, file_type: u32) -> Result<()> {
    let k = |s: &str| ak::key(a, s);
    kv.u32(
        k(ak::BLOCK_COUNT),
        cfg.req_u64(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?,
    );
    if let Some(v) = cfg.find_u64(&[
        "max_position_embeddings",
        "n_ctx",
        "n_positions",
        "max_length",
        "max_sequence_length",
        "model_max_length",
    ])? {
        kv.u32(k(ak::CONTEXT_LENGTH), v);
    }
    if let Some(v) = cfg.find_u64(&["hidden_size", "n_embd", "dim"])? {
        kv.u32(k(ak::EMBEDDING_LENGTH), v);
    }
    if let Some(v) = cfg.find_u64(&["intermediate_size", "n_inner", "hidden_dim"])? {
        kv.u32(k(ak::FEED_FORWARD_LENGTH), v);
    }
    if let Some(v) = cfg.find_u64(&["num_attention_heads", "n_head", "n_heads"])? {
        kv.u32(k(ak::ATTENTION_HEAD_COUNT), v);
    }
    if let Some(v) = cfg.find_u64(&["num_key_value_heads", "n_kv_heads"])? {
        kv.u32(k(ak::ATTENTION_HEAD_COUNT_KV), v);
    }
    if cfg.bool_opt("is_causal") == Some(false) {
        kv.add(k(ak::ATTENTION_CAUSAL), false);
    }
    let rope = cfg.rope_full().clone();
    let num = |key: &str| rope.get(key).and_then(Json::as_f64);
    if let Some(rope_type) = rope.get("rope_type").and_then(Json::as_str) {
        let factor = num("factor");
        match (rope_type, factor) {
            ("linear", Some(f)) => {
                kv.add(k(ak::ROPE_SCALING_TYPE), "linear");
                kv.f32(k(ak::ROPE_SCALING_FACTOR), f);
            }
            ("yarn", Some(f)) => {
                kv.add(k(ak::ROPE_SCALING_TYPE), "yarn");
                kv.f32(k(ak::ROPE_SCALING_FACTOR), f);
                let orig = rope
                    .get("original_max_position_embeddings")
                    .and_then(Json::as_u64)
                    .ok_or_else(|| {
                        cfg.bad(
                            "rope_scaling.original_max_position_embeddings",
                            "missing for yarn".into(),
                        )
                    })?;
                kv.u32(k(ak::ROPE_SCALING_ORIG_CTX_LEN), orig);
                if let Some(v) = num("extrapolation_factor") {
                    kv.f32(k("rope.scaling.yarn_ext_factor"), v);
                }
                if let Some(v) = num("attention_factor").or_else(|| num("attn_factor")) {
                    kv.f32(k("rope.scaling.yarn_attn_factor"), v);
                }
                if let Some(v) = num("beta_fast") {
                    kv.f32(k("rope.scaling.yarn_beta_fast"), v);
                }
                if let Some(v) = num("beta_slow") {
                    kv.f32(k("rope.scaling.yarn_beta_slow"), v);
                }
            }
            ("su" | "longrope", _) => kv.add(k(ak::ROPE_SCALING_TYPE), "longrope"),
            // dynamic: model-specific; llama3: the rope_freqs tensor; others: llama.cpp warns.
            _ => {}
        }
    }
    if let Some(theta) = num("rope_theta") {
        kv.f32(k(ak::ROPE_FREQ_BASE), theta);
    }
    if let Some(theta) = cfg.rope_local_theta() {
        kv.f32(k(ak::ROPE_FREQ_BASE_SWA), theta);
    }
    if let Some(v) = cfg.find_f64(&["rms_norm_eps", "norm_eps"])? {
        kv.f32(k(ak::ATTENTION_LAYERNORM_RMS_EPS), v);
    }
    if let Some(v) = cfg.find_f64(&["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])? {
        kv.f32(k(ak::ATTENTION_LAYERNORM_EPS), v);
    }
    if let Some(v) = cfg.find_u64(&["num_local_experts", "num_experts"])? {
        kv.u32(k(ak::EXPERT_COUNT), v);
    }
    if let Some(v) = cfg.find_u64(&[
        "num_experts_per_tok",
        "num_experts_per_token",
        "top_k_experts",
    ])? {
        kv.u32(k(ak::EXPERT_USED_COUNT), v);
    }
    if let Some(v) = cfg.find_u64(&["n_group"])? {
        kv.u32(k("expert_group_count"), v);
    }
    if let Some(v) = cfg.find_u64(&["topk_group"])? {
        kv.u32(k("expert_group_used_count"), v);
    }
    if let Some(f) = cfg
        .find(&[
            "score_function",
            "scoring_func",
            "score_func",
            "moe_router_activation",
            "moe_router_activation_func",
        ])
        .filter(|v| !v.is_null())
    {
        match f.as_str() {
            Some("softmax") => kv.u32(k("expert_gating_func"), 1),
            Some("sigmoid") => kv.u32(k("expert_gating_func"), 2),
            _ => {
                return Err(cfg.bad(
                    "score_function",
                    format!("unsupported expert gating function {f}"),
                ))
            }
        }
    }
    if let Some(h) = cfg.find_u64(&["head_dim"])? {
        kv.u32(k(ak::ATTENTION_KEY_LENGTH), h);
        kv.u32(k(ak::ATTENTION_VALUE_LENGTH), h);
    }
    kv.u32(gk::FILE_TYPE, u64::from(file_type));
    Ok(())
}

/// Per-layer sliding-window flags from `layer_types`, else HF's default pattern.
fn sliding_layers(cfg: &HfConfig, n_layer: usize, default_period: u64) -> Result<Vec<bool>> {
    if let Some(Json::Array(types)) = cfg.get("layer_types") {
        if types.len() != n_layer {
            return Err(cfg.bad(
                "layer_types",
                format!("{} entries for {n_layer} layers", types.len()),
            ));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(cfg.bad("layer_types", format!("unknown layer type {t}"))),
            })
            .collect();
    }
    let p = cfg
        .find_u64(&["sliding_window_pattern"])?
        .unwrap_or(default_period)
        .max(1) as usize;
    Ok((0..n_layer).map(|il| (il + 1) % p != 0).collect())
}

/// `query_pre_attn_scalar` as written: U32 when integral (as configs spell it), else F32.
fn scalar_value(v: &Json) -> Option<Value> {
    match v.as_u64() {
        Some(u) => u32::try_from(u).ok().map(Value::U32),
        None => v.as_f64().map(|f| Value::F32(f as f32)),
    }
}

/// The `{arch}.*` hyperparameters.
pub(crate) fn set_params(
    arch: Architecture,
    cfg: &HfConfig,
    kv: &mut Kv,
    file_type: u32,
) -> Result<()> {
    let a = arch.gguf_name();
    let k = |s: &str| ak::key(a, s);
    let n_layer =
        cfg.req_u64(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])? as usize;
    match arch {
        Architecture::Llama | Architecture::Mistral | Architecture::Mixtral => {
            text_model_params(a, cfg, kv, file_type)?;
            kv.u32(k(ak::VOCAB_SIZE), cfg.req_u64(&["vocab_size"])?);
            kv.u32(k(ak::ROPE_DIMENSION_COUNT), head_dim(cfg)?);
            // Beyond llama.cpp (its converter drops it): Mistral's sliding window, on every layer.
            if let Some(sw) = cfg.find_u64(&["sliding_window"])? {
                kv.u32(k(ak::ATTENTION_SLIDING_WINDOW), sw);
            }
        }
        Architecture::Qwen2 | Architecture::Qwen3 => text_model_params(a, cfg, kv, file_type)?,
        Architecture::Qwen3Moe => {
            text_model_params(a, cfg, kv, file_type)?;
            if let Some(v) = cfg.find_u64(&["moe_intermediate_size"])? {
                kv.u32(k(ak::EXPERT_FEED_FORWARD_LENGTH), v);
            }
            if let Some(v) = cfg.find_u64(&["shared_expert_intermediate_size"])? {
                kv.u32(k("expert_shared_feed_forward_length"), v);
            }
        }
        Architecture::Gemma2 => {
            kv.u32(
                k(ak::CONTEXT_LENGTH),
                cfg.req_u64(&["max_position_embeddings"])?,
            );
            kv.u32(k(ak::EMBEDDING_LENGTH), cfg.req_u64(&["hidden_size"])?);
            kv.u32(k(ak::BLOCK_COUNT), n_layer as u64);
            kv.u32(
                k(ak::FEED_FORWARD_LENGTH),
                cfg.req_u64(&["intermediate_size"])?,
            );
            let n_head = cfg.req_u64(&["num_attention_heads"])?;
            kv.u32(k(ak::ATTENTION_HEAD_COUNT), n_head);
            kv.u32(
                k(ak::ATTENTION_HEAD_COUNT_KV),
                cfg.find_u64(&["num_key_value_heads"])?.unwrap_or(n_head),
            );
            kv.f32(
                k(ak::ATTENTION_LAYERNORM_RMS_EPS),
                cfg.find_f64(&["rms_norm_eps"])?
                    .ok_or_else(|| cfg.bad("rms_norm_eps", "missing".into()))?,
            );
            let hd = cfg.req_u64(&["head_dim"])?;
            kv.u32(k(ak::ATTENTION_KEY_LENGTH), hd);
            kv.u32(k(ak::ATTENTION_VALUE_LENGTH), hd);
            kv.u32(gk::FILE_TYPE, u64::from(file_type));
            let req_f = |key: &str| {
                cfg.find_f64(&[key])?
                    .ok_or_else(|| cfg.bad(key, "missing".into()))
            };
            kv.f32(
                k(ak::ATTN_LOGIT_SOFTCAPPING),
                req_f("attn_logit_softcapping")?,
            );
            kv.f32(
                k(ak::FINAL_LOGIT_SOFTCAPPING),
                req_f("final_logit_softcapping")?,
            );
            kv.u32(
                k(ak::ATTENTION_SLIDING_WINDOW),
                cfg.req_u64(&["sliding_window"])?,
            );
            gemma_extras(a, cfg, kv, n_layer, 2)?;
        }
        Architecture::Gemma3 => {
            text_model_params(a, cfg, kv, file_type)?;
            kv.u32(
                k(ak::CONTEXT_LENGTH),
                cfg.u64_or("max_position_embeddings", 131072)?,
            );
            kv.u32(
                k(ak::ATTENTION_HEAD_COUNT),
                cfg.u64_or("num_attention_heads", 8)?,
            );
            kv.f32(
                k(ak::ATTENTION_LAYERNORM_RMS_EPS),
                cfg.find_f64(&["rms_norm_eps"])?.unwrap_or(1e-6),
            );
            let hd = cfg.u64_or("head_dim", 256)?;
            kv.u32(k(ak::ATTENTION_KEY_LENGTH), hd);
            kv.u32(k(ak::ATTENTION_VALUE_LENGTH), hd);
            kv.f32(
                k(ak::ROPE_FREQ_BASE),
                cfg.rope_full()
                    .get("rope_theta")
                    .and_then(Json::as_f64)
                    .unwrap_or(1_000_000.0),
            );
            if cfg
                .get("attn_logit_softcapping")
                .is_some_and(|v| !v.is_null())
            {
                return Err(cfg.bad(
                    "attn_logit_softcapping",
                    "Gemma 3 has no attention softcap".into(),
                ));
            }
            if let Some(v) = cfg
                .find_f64(&["final_logit_softcapping"])?
                .filter(|v| *v != 0.0)
            {
                kv.f32(k(ak::FINAL_LOGIT_SOFTCAPPING), v);
            }
            if cfg.find_u64(&["sliding_window_pattern"])? != Some(1) {
                kv.u32(
                    k(ak::ATTENTION_SLIDING_WINDOW),
                    cfg.req_u64(&["sliding_window"])?,
                );
            }
            kv.u32(
                k(ak::ATTENTION_HEAD_COUNT_KV),
                cfg.u64_or("num_key_value_heads", 4)?,
            );
            gemma_extras(a, cfg, kv, n_layer, 6)?;
        }
        Architecture::Phi3 => {
            let n_embd = cfg.req_u64(&["hidden_size", "n_embd"])?;
            let n_head = cfg.req_u64(&["num_attention_heads", "n_head"])?;
            let n_head_kv = cfg.req_u64(&["num_key_value_heads", "n_head_kv"])?;
            let rms_eps = cfg
                .find_f64(&["rms_norm_eps"])?
                .ok_or_else(|| cfg.bad("rms_norm_eps", "missing".into()))?;
            let max_pos = cfg.req_u64(&["n_positions", "max_position_embeddings"])?;
            let orig_max_pos = cfg.req_u64(&["original_max_position_embeddings"])?;
            let rot = cfg.find_f64(&["partial_rotary_factor"])?.unwrap_or(1.0);
            let rope_dims = (rot * n_embd as f64) as u64 / n_head;
            kv.u32(k(ak::CONTEXT_LENGTH), max_pos);
            kv.u32(k(ak::ROPE_SCALING_ORIG_CTX_LEN), orig_max_pos);
            kv.u32(k(ak::EMBEDDING_LENGTH), n_embd);
            kv.u32(
                k(ak::FEED_FORWARD_LENGTH),
                cfg.req_u64(&["intermediate_size"])?,
            );
            kv.u32(k(ak::BLOCK_COUNT), n_layer as u64);
            kv.u32(k(ak::ATTENTION_HEAD_COUNT), n_head);
            kv.u32(k(ak::ATTENTION_HEAD_COUNT_KV), n_head_kv);
            kv.f32(k(ak::ATTENTION_LAYERNORM_RMS_EPS), rms_eps);
            kv.u32(k(ak::ROPE_DIMENSION_COUNT), rope_dims);
            let theta = cfg
                .rope_full()
                .get("rope_theta")
                .and_then(Json::as_f64)
                .ok_or_else(|| cfg.bad("rope_theta", "missing".into()))?;
            kv.f32(k(ak::ROPE_FREQ_BASE), theta);
            kv.u32(gk::FILE_TYPE, u64::from(file_type));
            // 0 marks "no sliding window" (Phi-4), as llama.cpp writes it.
            kv.u32(
                k(ak::ATTENTION_SLIDING_WINDOW),
                cfg.find_u64(&["sliding_window"])?.unwrap_or(0),
            );
            if let Some(Json::Object(rs)) = cfg.get("rope_scaling") {
                let scale = max_pos as f64 / orig_max_pos as f64;
                let ty = rs
                    .get("rope_type")
                    .or_else(|| rs.get("type"))
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_lowercase();
                let attn = match ty.as_str() {
                    "su" | "longrope" if scale > 1.0 => {
                        Some((1.0 + scale.ln() / (orig_max_pos as f64).ln()).sqrt())
                    }
                    "yarn" if scale > 1.0 => Some(0.1 * scale.ln() + 1.0),
                    "su" | "longrope" | "yarn" => Some(1.0),
                    _ => None,
                };
                if let Some(f) = attn {
                    kv.f32(k(ak::ROPE_SCALING_ATTN_FACTOR), f);
                }
            }
        }
        Architecture::Bert => {
            text_model_params(a, cfg, kv, file_type)?;
            kv.add(k(ak::ATTENTION_CAUSAL), false);
            if let Some(p) = pooling_type(cfg)? {
                kv.u32(k(ak::POOLING_TYPE), p);
            }
        }
    }
    Ok(())
}

/// Beyond llama.cpp: `{arch}.attention.query_pre_attn_scalar`, and the layer pattern as
/// `{arch}.attention.sliding_window_pattern` written as one BOOL per layer (true = sliding-window
/// layer), the per-layer-array form newer llama.cpp converters use (not a period), taken from
/// config.json `layer_types` (or HF's default pattern when absent).
fn gemma_extras(
    a: &str,
    cfg: &HfConfig,
    kv: &mut Kv,
    n_layer: usize,
    default_period: u64,
) -> Result<()> {
    if let Some(v) = cfg.get("query_pre_attn_scalar").and_then(scalar_value) {
        kv.add(ak::key(a, ak::ATTENTION_QUERY_PRE_ATTN_SCALAR), v);
    }
    if cfg.find_u64(&["sliding_window"])?.is_some() {
        let pattern = sliding_layers(cfg, n_layer, default_period)?;
        kv.bools(&ak::key(a, ak::ATTENTION_SLIDING_WINDOW_PATTERN), pattern);
    }
    Ok(())
}

/// sentence-transformers pooling (modules.json → `<Pooling>/config.json`): gguf PoolingType.
fn pooling_type(cfg: &HfConfig) -> Result<Option<u64>> {
    let dir = cfg.path.parent().unwrap_or(Path::new("."));
    let Some(Json::Array(modules)) = read_json_opt(&dir.join("modules.json"))? else {
        return Ok(None);
    };
    let Some(path) = modules
        .iter()
        .find(|m| {
            m.get("type")
                .and_then(Json::as_str)
                .is_some_and(|t| t.ends_with("Pooling"))
        })
        .and_then(|m| m.get("path").and_then(Json::as_str))
    else {
        return Ok(None);
    };
    let pcfg_path = dir.join(path).join("config.json");
    let pooling = read_json_opt(&pcfg_path)?.unwrap_or(Json::Null);
    let flag = |k: &str| pooling.get(k).and_then(Json::as_bool).unwrap_or(false);
    let t = if flag("pooling_mode_mean_tokens") {
        1
    } else if flag("pooling_mode_cls_token") {
        2
    } else if flag("pooling_mode_lasttoken") {
        3
    } else {
        match pooling.get("pooling_mode").and_then(Json::as_str) {
            Some("mean") => 1,
            Some("cls") => 2,
            Some("lasttoken") => 3,
            _ => {
                return Err(ConvertError::BadConfig {
                    path: pcfg_path,
                    key: "pooling_mode".into(),
                    what: "only MEAN, CLS and LAST pooling are supported".into(),
                })
            }
        }
    };
    Ok(Some(t))
}

/// The tokenizer part, per architecture.
pub(crate) fn set_vocab(
    arch: Architecture,
    dir: &Path,
    cfg: &HfConfig,
    kv: &mut Kv,
) -> Result<VocabInfo> {
    match arch {
        Architecture::Llama | Architecture::Mistral | Architecture::Mixtral => {
            let tc = read_json_opt(&dir.join("tokenizer_config.json"))?;
            if let Some(Json::Bool(b)) = tc.as_ref().and_then(|t| t.get("add_prefix_space")) {
                kv.add(tk::ADD_SPACE_PREFIX, *b);
            }
            vocab::set_vocab_llama_chain(dir, cfg, kv)
        }
        Architecture::Qwen2 | Architecture::Qwen3 | Architecture::Qwen3Moe => {
            vocab::set_vocab_spm_or_gpt2(dir, cfg, kv)
        }
        Architecture::Gemma2 => {
            let v = vocab::set_vocab_sentencepiece(dir, cfg, kv)?;
            kv.add(tk::ADD_SPACE_PREFIX, false);
            Ok(v)
        }
        Architecture::Gemma3 => {
            if dir.join("tokenizer.model").is_file() {
                let v = vocab::set_vocab_sentencepiece(dir, cfg, kv)?;
                kv.add(tk::ADD_SPACE_PREFIX, false);
                Ok(v)
            } else {
                vocab::set_vocab_gpt2(dir, cfg, kv)
            }
        }
        Architecture::Phi3 => {
            let tc = read_json_opt(&dir.join("tokenizer_config.json"))?;
            let gpt2 = tc
                .as_ref()
                .and_then(|t| t.get("tokenizer_class"))
                .and_then(Json::as_str)
                == Some("GPT2Tokenizer");
            if gpt2 {
                vocab::set_vocab_gpt2(dir, cfg, kv)
            } else {
                vocab::set_vocab_sentencepiece(dir, cfg, kv)
            }
        }
        Architecture::Bert => vocab::set_vocab_wpm(dir, cfg, kv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_per_architecture() {
        let t = Architecture::Gemma3.table();
        assert_eq!(
            map_name(&t, "model.layers.1.post_attention_layernorm.weight", 3).as_deref(),
            Some("blk.1.post_attention_norm.weight")
        );
        assert_eq!(
            map_name(&t, "model.layers.1.pre_feedforward_layernorm.weight", 3).as_deref(),
            Some("blk.1.ffn_norm.weight")
        );
        assert_eq!(
            map_name(&t, "model.layers.3.self_attn.q_proj.weight", 3),
            None,
            "layer past block_count"
        );
        let q = Architecture::Qwen2.table();
        assert_eq!(
            map_name(&q, "model.layers.0.self_attn.q_proj.bias", 2).as_deref(),
            Some("blk.0.attn_q.bias")
        );
        assert_eq!(
            map_name(&q, "model.layers.0.post_attention_layernorm.weight", 2).as_deref(),
            Some("blk.0.ffn_norm.weight")
        );
        assert_eq!(
            map_name(&q, "model.layers.0.self_attn.q_norm.weight", 2),
            None,
            "no q_norm in qwen2"
        );
        let b = Architecture::Bert.table();
        assert_eq!(
            map_name(&b, "encoder.layer.5.output.LayerNorm.bias", 6).as_deref(),
            Some("blk.5.layer_output_norm.bias")
        );
    }

    #[test]
    fn expert_names_parse() {
        assert_eq!(
            parse_expert(
                "model.layers.1.block_sparse_moe.experts.3.w2.weight",
                "block_sparse_moe.experts"
            ),
            Some((1, 3, "w2"))
        );
        assert_eq!(
            parse_expert("model.layers.0.mlp.experts.2.up_proj.weight", "mlp.experts"),
            Some((0, 2, "up_proj"))
        );
        assert_eq!(
            parse_expert("model.layers.0.mlp.gate.weight", "mlp.experts"),
            None
        );
    }

    #[test]
    fn bert_names_are_cleaned() {
        assert_eq!(
            preprocess_name(Architecture::Bert, "bert.embeddings.LayerNorm.gamma").as_deref(),
            Some("embeddings.LayerNorm.weight")
        );
        assert_eq!(
            preprocess_name(Architecture::Bert, "embeddings.position_ids"),
            None
        );
        assert_eq!(
            preprocess_name(Architecture::Bert, "pooler.dense.weight"),
            None
        );
        assert_eq!(
            preprocess_name(Architecture::Gemma2, "lm_head.weight"),
            None
        );
        assert_eq!(
            preprocess_name(
                Architecture::Llama,
                "model.layers.0.self_attn.rotary_emb.inv_freq"
            ),
            None
        );
    }
}
