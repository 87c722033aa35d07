//! Which type each tensor gets: llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp) for
//! the presets of [`FileType`], including the fallbacks for rows that are not a multiple of
//! the target's block size.

use ferrite_gguf::GgmlType;

use crate::ftype::{is_quantized, FileType};
use crate::QuantizeError;

/// Broad role of a tensor, from its name (`tensor_get_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl Category {
    pub fn of(name: &str) -> Category {
        if name == "output.weight" {
            return Category::Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return Category::TokenEmbd;
        }
        let table = [
            ("attn_qkv.weight", Category::AttnQkv),
            ("attn_kv_b.weight", Category::AttnKvB),
            ("attn_v.weight", Category::AttnV),
            ("attn_k.weight", Category::AttnK),
            ("attn_q.weight", Category::AttnQ),
            ("attn_output.weight", Category::AttnOutput),
            ("ffn_up", Category::FfnUp),
            ("ffn_gate", Category::FfnGate),
            ("ffn_down", Category::FfnDown),
        ];
        table
            .iter()
            .find(|(pat, _)| name.contains(pat))
            .map_or(Category::Other, |&(_, c)| c)
    }

    fn is_attn_v(self) -> bool {
        matches!(
            self,
            Category::AttnV | Category::AttnQkv | Category::AttnKvB
        )
    }
}

/// Model facts the rules look at.
#[derive(Debug, Clone, Default)]
pub struct ModelFacts {
    pub arch: String,
    /// `{arch}.block_count`
    pub n_layer: usize,
    /// `n_head / n_head_kv` of layer 0 (0 when `n_head_kv` is 0).
    pub n_gqa: usize,
    /// `{arch}.expert_count`
    pub n_expert: usize,
}

impl ModelFacts {
    fn is_falcon(&self) -> bool {
        self.arch == "falcon"
    }
    /// llama.cpp's `LLM_TYPE_70B` for the architectures it names so (80-layer llama).
    fn is_70b(&self) -> bool {
        self.arch == "llama" && self.n_layer == 80
    }
}

/// User choices that change the mixture.
#[derive(Debug, Clone, Default)]
pub struct TypeOptions {
    pub output_tensor_type: Option<GgmlType>,
    pub token_embedding_type: Option<GgmlType>,
    /// Every quantizable tensor gets the preset's default type (fallbacks still apply).
    pub pure: bool,
    pub has_imatrix: bool,
}

/// Number of dimensions as ggml counts them (trailing 1s dropped).
pub fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// `tensor_allows_quantization`: 2-D/3-D weights other than norms, gates and small tables.
pub fn allows_quantization(name: &str, dims: &[u64]) -> bool {
    if n_dims(dims) < 2 || !name.ends_with("weight") {
        return false;
    }
    const NEVER: &[&str] = &[
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    if NEVER.iter().any(|p| name.contains(p)) {
        return false;
    }
    name != "position_embd.weight" && name != "token_types.weight"
}

/// `tensor_type_fallback`: a type whose block divides the row length.
fn fallback(
    ncols: u64,
    target: GgmlType,
    n_fallback: &mut usize,
) -> Result<GgmlType, QuantizeError> {
    use GgmlType as T;
    let block = target.block_size() as u64;
    if ncols.is_multiple_of(block) {
        return Ok(target);
    }
    *n_fallback += 1;
    let mut ty = match target {
        T::IQ1_S
        | T::IQ1_M
        | T::IQ2_XXS
        | T::IQ2_XS
        | T::IQ2_S
        | T::IQ3_XXS
        | T::IQ3_S
        | T::IQ4_XS => T::IQ4_NL,
        T::Q2_K | T::Q3_K | T::TQ1_0 | T::TQ2_0 => T::Q4_0,
        T::Q4_K => T::Q5_0,
        T::Q5_K => T::Q5_1,
        T::Q6_K => T::Q8_0,
        t if block <= 32 => t,
        t => return Err(QuantizeError::NoFallback(t)),
    };
    if !ncols.is_multiple_of(ty.block_size() as u64) {
        ty = T::F16;
    }
    Ok(ty)
}

/// The running state of the choice over the tensors, in file order (llama.cpp counts the
/// attn_v / ffn tensors it has seen).
pub struct Chooser<'a> {
    ftype: FileType,
    facts: &'a ModelFacts,
    opts: &'a TypeOptions,
    tied_embeddings: bool,
    n_attention_wv: usize,
    i_attention_wv: usize,
    i_ffn_down: usize,
    i_ffn_gate: usize,
    i_ffn_up: usize,
    pub n_fallback: usize,
}

fn use_more_bits(i: usize, n: usize) -> bool {
    let (i, n) = (i as i64, n as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

impl<'a> Chooser<'a> {
    /// `names`: every tensor name of the model (in any order).
    pub fn new<'n>(
        ftype: FileType,
        facts: &'a ModelFacts,
        opts: &'a TypeOptions,
        names: impl Iterator<Item = &'n str>,
    ) -> Self {
        let mut n_attention_wv = 0;
        let mut tied_embeddings = true;
        for n in names {
            let c = Category::of(n);
            if c.is_attn_v() {
                n_attention_wv += 1;
            }
            if c == Category::Output {
                tied_embeddings = false;
            }
        }
        Chooser {
            ftype,
            facts,
            opts,
            tied_embeddings,
            n_attention_wv,
            i_attention_wv: 0,
            i_ffn_down: 0,
            i_ffn_gate: 0,
            i_ffn_up: 0,
            n_fallback: 0,
        }
    }

    /// Target type of one tensor; call once per tensor, in file order.
    pub fn choose(
        &mut self,
        name: &str,
        dims: &[u64],
        cur: GgmlType,
    ) -> Result<GgmlType, QuantizeError> {
        if !allows_quantization(name, dims) {
            return Ok(cur);
        }
        let cat = Category::of(name);
        if let (Some(t), Category::TokenEmbd) = (self.opts.token_embedding_type, cat) {
            return Ok(t);
        }
        if let (Some(t), Category::Output) = (self.opts.output_tensor_type, cat) {
            return Ok(t);
        }
        let mut ty = self.ftype.default_type();
        if is_quantized(ty) {
            if !self.opts.pure {
                ty = self.mixture(ty, name, dims, cat)?;
            }
            ty = fallback(dims[0], ty, &mut self.n_fallback)?;
        }
        Ok(ty)
    }

    fn layer_info(&self, counter: usize, name: &str) -> Result<(usize, usize), QuantizeError> {
        let n_layer = self.facts.n_layer;
        if self.facts.n_expert > 1 {
            let layer = layer_of(name).ok_or_else(|| QuantizeError::BadLayer(name.to_owned()))?;
            if layer < 0 || layer as usize >= n_layer {
                return Err(QuantizeError::BadLayer(name.to_owned()));
            }
            return Ok((layer as usize, n_layer));
        }
        Ok((counter, n_layer))
    }

    /// `llama_tensor_get_type_impl` for the presets ferrite offers.
    fn mixture(
        &mut self,
        mut ty: GgmlType,
        name: &str,
        dims: &[u64],
        cat: Category,
    ) -> Result<GgmlType, QuantizeError> {
        use FileType as F;
        use GgmlType as T;
        let ft = self.ftype;
        let f = self.facts;
        let falcon = f.is_falcon();
        if cat == Category::Output || (self.tied_embeddings && cat == Category::TokenEmbd) {
            if let Some(t) = self.opts.output_tensor_type {
                ty = t;
            } else if falcon || !dims[0].is_multiple_of(ty.block_size() as u64) {
                ty = T::Q8_0;
            } else if ty != T::Q8_0 {
                ty = T::Q6_K;
            }
        } else if cat == Category::TokenEmbd {
            if let Some(t) = self.opts.token_embedding_type {
                ty = t;
            }
        } else if cat.is_attn_v() {
            let (i, n) = (self.i_attention_wv, self.n_attention_wv);
            match ft {
                F::Q2_K => ty = if f.n_gqa >= 4 { T::Q4_K } else { T::Q3_K },
                F::Q3_K_M => ty = if i < 2 { T::Q5_K } else { T::Q4_K },
                F::Q3_K_L => ty = T::Q5_K,
                F::IQ4_NL | F::IQ4_XS if f.n_gqa >= 4 => ty = T::Q5_K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(i, n) => ty = T::Q6_K,
                F::Q4_K_S if i < 4 => ty = T::Q5_K,
                _ => {}
            }
            if f.is_70b() && (ty == T::Q3_K || ty == T::Q4_K) {
                ty = T::Q5_K;
            }
            if f.n_expert == 8 {
                ty = T::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttnK {
            if f.n_expert == 8 {
                ty = T::Q8_0;
            }
        } else if cat == Category::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, name)?;
            match ft {
                F::Q2_K => ty = T::Q3_K,
                F::Q3_K_M => {
                    ty = if i < n / 16 {
                        T::Q5_K
                    } else if !falcon || use_more_bits(i, n) {
                        T::Q4_K
                    } else {
                        T::Q3_K
                    }
                }
                F::Q3_K_L => ty = if falcon { T::Q4_K } else { T::Q5_K },
                F::Q4_K_M => {
                    if falcon {
                        ty = if i < n / 16 {
                            T::Q6_K
                        } else if use_more_bits(i, n) {
                            T::Q5_K
                        } else {
                            T::Q4_K
                        };
                    } else if use_more_bits(i, n) {
                        ty = T::Q6_K;
                    }
                }
                F::IQ4_NL | F::IQ4_XS if i < n / 8 && !self.opts.has_imatrix => ty = T::Q5_K,
                F::Q5_K_M if use_more_bits(i, n) => ty = T::Q6_K,
                F::Q4_K_S if !falcon && i < n / 8 => ty = T::Q5_K,
                F::Q4_0 | F::Q5_0 if self.opts.has_imatrix && i < n / 8 => {
                    ty = if ft == F::Q4_0 { T::Q4_1 } else { T::Q5_1 };
                }
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            if !falcon {
                if f.n_expert == 8 {
                    if matches!(
                        ft,
                        F::Q2_K
                            | F::Q3_K_S
                            | F::Q3_K_M
                            | F::IQ4_NL
                            | F::Q4_K_S
                            | F::Q4_K_M
                            | F::IQ4_XS
                    ) {
                        ty = T::Q5_K;
                    }
                } else {
                    match ft {
                        F::Q2_K => ty = T::Q3_K,
                        F::Q3_K_M => ty = T::Q4_K,
                        F::Q3_K_L => ty = T::Q5_K,
                        _ => {}
                    }
                }
            } else if ft == F::Q3_K_L {
                ty = T::Q4_K;
            }
        } else if cat == Category::AttnQkv {
            match ft {
                F::Q3_K_M | F::Q3_K_L => ty = T::Q4_K,
                F::Q4_K_M => ty = T::Q5_K,
                F::Q5_K_M => ty = T::Q6_K,
                _ => {}
            }
        } else if cat == Category::FfnGate {
            self.layer_info(self.i_ffn_gate, name)?;
            self.i_ffn_gate += 1;
        } else if cat == Category::FfnUp {
            self.layer_info(self.i_ffn_up, name)?;
            self.i_ffn_up += 1;
        }
        Ok(ty)
    }
}

/// `blk.N.` prefix → N (as `sscanf("blk.%d.")`), else `None`.
pub fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest.find('.')?;
    rest[..end].parse().ok()
}

/// llama.cpp's tensor order in the output file: by layer (non-block tensors first), then name.
pub fn sort_key(name: &str) -> (i64, &str) {
    (layer_of(name).unwrap_or(-1), name)
}
