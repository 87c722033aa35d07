use ferrite_compute::ComputeError;
use ferrite_gguf::GgufError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unsupported architecture {name:?}; supported: {supported}")]
    UnsupportedArch { name: String, supported: String },
    #[error("missing required metadata key {key:?}")]
    MissingKey { key: String },
    #[error("metadata key {key:?}: {reason}")]
    BadKey { key: String, reason: String },
    #[error("missing required tensor {name:?}")]
    MissingTensor { name: String },
    #[error("tensor {name:?} has shape {got:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("tensor {name:?}: type {ty} has no kernels: {source}")]
    TensorType {
        name: String,
        ty: ferrite_gguf::GgmlType,
        source: ferrite_quants::QuantError,
    },
    #[error("batch: {0}")]
    Batch(String),
    #[error("context full: batch needs {needed} KV cells, {free} of {n_ctx} free")]
    ContextFull {
        needed: usize,
        free: usize,
        n_ctx: usize,
    },
    #[error("position {pos} is beyond the context length {n_ctx}")]
    PosBeyondContext { pos: u32, n_ctx: usize },
    #[error("sequence id {seq} out of range (n_seq = {n_seq})")]
    BadSeq { seq: u32, n_seq: usize },
    #[error("token id {id} out of range (n_vocab = {n_vocab})")]
    BadToken { id: u32, n_vocab: usize },
    #[error("{op} is not supported for architecture {arch:?}: {why}")]
    Unsupported {
        op: &'static str,
        arch: &'static str,
        why: String,
    },
    #[error("sequence {seq} has {n_tokens} tokens, more than the model's context of {n_ctx}")]
    SeqTooLong {
        seq: usize,
        n_tokens: usize,
        n_ctx: usize,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Compute(#[from] ComputeError),
    #[error(transparent)]
    Quant(#[from] ferrite_quants::QuantError),
}

pub type Result<T> = std::result::Result<T, ModelError>;
