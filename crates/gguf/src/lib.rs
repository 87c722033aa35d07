//! GGUF: the file format of ggml models. Pure format, no math.
//!
//! - [`GgufFile`]: a validating reader over a memory map. Every count, length and offset is
//!   checked against the file size before use; tensor data is addressed in place.
//! - [`GgufWriter`]: streams metadata then tensor data into a temp file renamed on success.
//! - [`GgufModel`]: one model from one file or from `name-0000N-of-0000M.gguf` shards.
//! - [`keys`]: the standard metadata keys; [`GgmlType`]: the tensor type table.

mod error;
pub mod keys;
mod reader;
mod split;
pub mod types;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
pub use split::{parse_split_path, split_path, GgufModel};
pub use types::{GgmlType, TypeTraits};
pub use value::{ArrayRef, FromValue, Value, ValueRef, ValueType};
pub use writer::{copy_file, GgufDataWriter, GgufWriter};
