//! Conversion errors. Each names the file (and key or tensor) it is about.

use std::path::PathBuf;

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{}: missing: a Hugging Face checkpoint folder needs a config.json", path.display())]
    MissingConfig { path: PathBuf },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{}: key `{key}`: {what}", path.display())]
    BadConfig {
        path: PathBuf,
        key: String,
        what: String,
    },

    #[error(
        "{}: architecture {arch:?} is not supported (supported: {})",
        path.display(),
        supported.join(", ")
    )]
    UnknownArchitecture {
        path: PathBuf,
        arch: String,
        supported: Vec<&'static str>,
    },

    #[error("{}: no model.safetensors (nor model-0000N-of-0000M.safetensors shards)", dir.display())]
    NoWeights { dir: PathBuf },

    #[error("{}: {what}", path.display())]
    Safetensors { path: PathBuf, what: String },

    #[error("{}: tensor `{name}` is missing", path.display())]
    MissingTensor { path: PathBuf, name: String },

    #[error(
        "{}: tensor `{name}` has no GGUF name for architecture {arch} (llama.cpp's converter rejects unmapped tensors too)",
        path.display()
    )]
    UnexpectedTensor {
        path: PathBuf,
        name: String,
        arch: &'static str,
    },

    #[error("{}: tensor `{name}` has dtype {dtype}; only F32, F16, BF16 and F64 weights convert", path.display())]
    BadDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },

    #[error("{}: tensor `{name}`: {what}", path.display())]
    BadTensor {
        path: PathBuf,
        name: String,
        what: String,
    },

    #[error("{}: {what}", path.display())]
    Tokenizer { path: PathBuf, what: String },

    #[error(
        "{}: the BPE pre-tokenizer was not recognized (chkhsh {hash}) and its split regex is not one of a known pre-tokenizer",
        path.display()
    )]
    UnknownPreTokenizer { path: PathBuf, hash: String },

    #[error("quantizing tensor `{name}` to {ty}: {what}")]
    Quantize {
        name: String,
        ty: String,
        what: String,
    },

    #[error(transparent)]
    Gguf(#[from] ferrite_gguf::GgufError),
}

impl ConvertError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConvertError::Io {
            path: path.into(),
            source,
        }
    }
}
