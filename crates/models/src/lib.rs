//! Transformer models built from GGUF metadata alone, and the context that runs them.
//!
//! - [`Model`]: hyper-parameters ([`HParams`]) plus weight views into the GGUF mmap; one file
//!   per architecture under `arch/` says which tensors a block has.
//! - [`Context`]: KV cache ([`KvCache`], several sequences), thread pool and scratch;
//!   [`Context::decode`] runs a [`Batch`] of tokens from any sequences and returns logits.
//! - [`Embedder`]: encoder models (BERT): one pooled, L2-normalised vector per sequence.

mod arch;
mod context;
mod embed;
mod error;
mod hparams;
mod kv_cache;
mod model;
mod observe;
mod weights;

pub use arch::bert::{EncoderLayer, EncoderWeights};
pub use context::{Batch, Context, ContextParams};
pub use embed::{EmbedParams, Embedder, Pooling};
pub use error::{ModelError, Result};
pub use ferrite_compute::GeluImpl;
pub use hparams::{Arch, HParams};
pub use kv_cache::KvCache;
pub use model::{Act, Ffn, LayerWeights, Model, Qkv};
pub use observe::{ExpertRows, MatmulEvent, MatmulObserver};
pub use weights::Matrix;
