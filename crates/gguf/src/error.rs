use std::path::PathBuf;

use crate::GgmlType;

/// Everything that can go wrong reading or writing a GGUF file. Offsets are byte offsets
/// into the file, so a malformed file can be examined with a hex dump.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<GgufError>,
    },
    #[error("not a GGUF file: magic bytes are {0:02x?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    #[error("GGUF version 1 is not supported (it predates 64-bit counts); re-convert the model: versions 2 and 3 are read")]
    VersionOne,
    #[error(
        "big-endian GGUF files are not supported (the version field reads {0:#010x} little-endian)"
    )]
    BigEndian(u32),
    #[error("unsupported GGUF version {0} (versions 2 and 3 are read)")]
    UnsupportedVersion(u32),
    #[error(
        "truncated file: {what} at byte {offset} needs {need} bytes, but the file has {file_len}"
    )]
    Truncated {
        what: String,
        offset: u64,
        need: u64,
        file_len: u64,
    },
    #[error("malformed GGUF at byte {offset}: {what}")]
    Malformed { offset: u64, what: String },
    #[error("metadata key '{key}': {what}")]
    BadKey { key: String, what: String },
    #[error("tensor '{name}': {what}")]
    BadTensor { name: String, what: String },
    #[error("tensor '{name}' has type {ty}, which GGUF files no longer support")]
    RemovedType { name: String, ty: GgmlType },
    #[error("metadata key '{0}' not found")]
    KeyNotFound(String),
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    TypeMismatch {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("tensor '{0}' not found")]
    TensorNotFound(String),
    #[error("shards: {0}")]
    Split(String),
    #[error("writer: {0}")]
    Writer(String),
}

impl GgufError {
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> GgufError {
        match self {
            e @ (GgufError::Io { .. } | GgufError::InFile { .. }) => e,
            e => GgufError::InFile {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;
