use ferrite_gguf::GgufError;

/// Why a tokenizer could not be built from a GGUF file. Every variant names the file (its path,
/// or `<memory>`) and the metadata key involved.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error("{file}: metadata key '{key}' is missing")]
    MissingKey { file: String, key: String },

    #[error("{file}: metadata key '{key}': {what}")]
    BadKey {
        file: String,
        key: String,
        what: String,
    },

    #[error("{file}: '{key}' has {len} entries but '{tokens_key}' has {n_tokens}")]
    LengthMismatch {
        file: String,
        key: String,
        len: u64,
        tokens_key: String,
        n_tokens: u64,
    },

    #[error("{file}: unknown tokenizer model '{model}' in '{key}'")]
    UnknownModel {
        file: String,
        key: String,
        model: String,
    },

    #[error("{file}: tokenizer model '{model}' in '{key}' is not supported by ferrite")]
    UnsupportedModel {
        file: String,
        key: String,
        model: String,
    },

    #[error("{file}: unknown pre-tokenizer '{pre}' in '{key}'")]
    UnknownPreTokenizer {
        file: String,
        key: String,
        pre: String,
    },

    #[error("{file}: pre-tokenizer '{pre}' in '{key}' cannot be used: {what}")]
    UnsupportedPreTokenizer {
        file: String,
        key: String,
        pre: String,
        what: String,
    },

    #[error("{file}: '{key}': duplicate token {text:?} at ids {first} and {second}")]
    DuplicateToken {
        file: String,
        key: String,
        text: String,
        first: u32,
        second: u32,
    },

    #[error("{file}: '{key}' is true, but '{id_key}' is not set")]
    MissingSpecialToken {
        file: String,
        key: String,
        id_key: String,
    },
}
