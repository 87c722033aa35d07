//! Standard GGUF metadata keys: the vocabulary every other crate uses. Per-architecture keys
//! are templates over the architecture name (`{arch}.block_count`), built with [`arch`].

/// `general.*`
pub mod general {
    pub const ARCHITECTURE: &str = "general.architecture";
    pub const QUANTIZATION_VERSION: &str = "general.quantization_version";
    pub const ALIGNMENT: &str = "general.alignment";
    pub const FILE_TYPE: &str = "general.file_type";
    pub const NAME: &str = "general.name";
    pub const BASENAME: &str = "general.basename";
    pub const SIZE_LABEL: &str = "general.size_label";
    pub const TYPE: &str = "general.type";
    pub const AUTHOR: &str = "general.author";
    pub const VERSION: &str = "general.version";
    pub const ORGANIZATION: &str = "general.organization";
    pub const FINETUNE: &str = "general.finetune";
    pub const DESCRIPTION: &str = "general.description";
    pub const LICENSE: &str = "general.license";
    pub const URL: &str = "general.url";
    pub const SOURCE_URL: &str = "general.source.url";
    pub const SOURCE_HF_REPO: &str = "general.source.huggingface.repository";
}

/// `{arch}.*` keys: `arch::BLOCK_COUNT` is the suffix; `arch::key("llama", arch::BLOCK_COUNT)`
/// gives `llama.block_count`.
pub mod arch {
    pub fn key(arch: &str, suffix: &str) -> String {
        format!("{arch}.{suffix}")
    }

    pub const VOCAB_SIZE: &str = "vocab_size";
    pub const CONTEXT_LENGTH: &str = "context_length";
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    pub const BLOCK_COUNT: &str = "block_count";
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    pub const EXPERT_FEED_FORWARD_LENGTH: &str = "expert_feed_forward_length";
    pub const USE_PARALLEL_RESIDUAL: &str = "use_parallel_residual";
    pub const EXPERT_COUNT: &str = "expert_count";
    pub const EXPERT_USED_COUNT: &str = "expert_used_count";
    pub const EXPERT_WEIGHTS_NORM: &str = "expert_weights_norm";
    pub const POOLING_TYPE: &str = "pooling_type";
    pub const LOGIT_SCALE: &str = "logit_scale";
    pub const ATTN_LOGIT_SOFTCAPPING: &str = "attn_logit_softcapping";
    pub const FINAL_LOGIT_SOFTCAPPING: &str = "final_logit_softcapping";

    pub const ATTENTION_HEAD_COUNT: &str = "attention.head_count";
    pub const ATTENTION_HEAD_COUNT_KV: &str = "attention.head_count_kv";
    pub const ATTENTION_KEY_LENGTH: &str = "attention.key_length";
    pub const ATTENTION_VALUE_LENGTH: &str = "attention.value_length";
    pub const ATTENTION_LAYERNORM_EPS: &str = "attention.layer_norm_epsilon";
    pub const ATTENTION_LAYERNORM_RMS_EPS: &str = "attention.layer_norm_rms_epsilon";
    pub const ATTENTION_CAUSAL: &str = "attention.causal";
    pub const ATTENTION_SLIDING_WINDOW: &str = "attention.sliding_window";
    pub const ATTENTION_SLIDING_WINDOW_PATTERN: &str = "attention.sliding_window_pattern";
    pub const ATTENTION_SCALE: &str = "attention.scale";
    /// Written by ferrite's converter (llama.cpp's drops it): gemma2/3 query scaling.
    pub const ATTENTION_QUERY_PRE_ATTN_SCALAR: &str = "attention.query_pre_attn_scalar";

    pub const ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";
    pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
    pub const ROPE_FREQ_BASE_SWA: &str = "rope.freq_base_swa";
    pub const ROPE_SCALING_TYPE: &str = "rope.scaling.type";
    pub const ROPE_SCALING_FACTOR: &str = "rope.scaling.factor";
    pub const ROPE_SCALING_ATTN_FACTOR: &str = "rope.scaling.attn_factor";
    pub const ROPE_SCALING_ORIG_CTX_LEN: &str = "rope.scaling.original_context_length";
    pub const ROPE_SCALING_FINETUNED: &str = "rope.scaling.finetuned";
    pub const ROPE_SCALING_YARN_LOG_MUL: &str = "rope.scaling.yarn_log_multiplier";
}

/// `tokenizer.*`
pub mod tokenizer {
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const PRE: &str = "tokenizer.ggml.pre";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const TOKEN_TYPE_COUNT: &str = "tokenizer.ggml.token_type_count";
    pub const SCORES: &str = "tokenizer.ggml.scores";
    pub const MERGES: &str = "tokenizer.ggml.merges";
    pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    pub const EOT_ID: &str = "tokenizer.ggml.eot_token_id";
    pub const EOM_ID: &str = "tokenizer.ggml.eom_token_id";
    pub const UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    pub const SEP_ID: &str = "tokenizer.ggml.seperator_token_id";
    pub const PAD_ID: &str = "tokenizer.ggml.padding_token_id";
    pub const CLS_ID: &str = "tokenizer.ggml.cls_token_id";
    pub const MASK_ID: &str = "tokenizer.ggml.mask_token_id";
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    pub const ADD_SEP: &str = "tokenizer.ggml.add_sep_token";
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
    pub const REMOVE_EXTRA_WHITESPACES: &str = "tokenizer.ggml.remove_extra_whitespaces";
    pub const PRECOMPILED_CHARSMAP: &str = "tokenizer.ggml.precompiled_charsmap";
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
    pub const NORMALIZER_LOWERCASE: &str = "tokenizer.ggml.normalizer.lowercase";
    pub const NORMALIZER_STRIP_ACCENTS: &str = "tokenizer.ggml.normalizer.strip_accents";
    pub const HF_JSON: &str = "tokenizer.huggingface.json";
}

/// `imatrix.*`: llama.cpp's GGUF importance-matrix files (`general.type = "imatrix"`).
pub mod imatrix {
    /// Array of strings: the text files the statistics were collected on.
    pub const DATASETS: &str = "imatrix.datasets";
    /// u32: chunks evaluated.
    pub const CHUNK_COUNT: &str = "imatrix.chunk_count";
    /// u32: tokens per chunk.
    pub const CHUNK_SIZE: &str = "imatrix.chunk_size";
}

/// `split.*` (sharded models: `name-00001-of-00003.gguf`).
pub mod split {
    pub const NO: &str = "split.no";
    pub const COUNT: &str = "split.count";
    pub const TENSORS_COUNT: &str = "split.tensors.count";
}
