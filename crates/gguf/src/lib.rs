//! GGUF: the file format of ggml models. Pure format, no math.

pub mod types;
pub use types::{GgmlType, TypeTraits};
