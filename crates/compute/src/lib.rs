//! The CPU backend: a persistent thread pool and the ops a transformer forward pass needs.
//! Block-type kernels (dequantize, quantize, vec_dot) come from `ferrite-quants`; this crate
//! schedules them (matmul, attention) and implements the float ops (norms, RoPE, activations).
//!
//! Layout conventions: a matrix "(rows, cols)" is `rows` contiguous rows of `cols` elements,
//! GGUF's `dims = [cols, rows]`. Activations are `[n_tokens × n]` row-major f32.

pub mod attention;
pub mod f16ops;
pub mod matmul;
pub mod ops;
pub mod pool;
pub mod rope;

pub use attention::{
    attention, attention_ref, attention_tiled, AttnParams, AttnScratch, AttnTiles, KvView, FA_TILE,
    SPLIT_KV_MIN,
};
pub use matmul::{
    matmul, matmul_many, matmul_ref, MatmulScratch, WeightView, BATCHED_GE64, BATCHED_GE8,
    BATCHED_GEMM4,
};
pub use ops::GeluImpl;
pub use pool::{SendPtr, ThreadPool};
pub use rope::{llama3_freq_factors, RopeMode, RopeParams};

pub use ferrite_quants::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error(transparent)]
    Quant(#[from] ferrite_quants::QuantError),
    #[error("{what}: expected {expected} elements, got {got}")]
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// View an f32 slice as bytes (for the byte-level kernel table).
pub fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), std::mem::size_of_val(x)) }
}

/// View bytes as f32 when aligned and sized (tensor data of F32 tensors in the mmap).
pub fn bytes_f32(b: &[u8]) -> Option<&[f32]> {
    if !b.len().is_multiple_of(4) || b.as_ptr().align_offset(4) != 0 {
        return None;
    }
    // SAFETY: alignment and length checked; every bit pattern is a valid f32.
    Some(unsafe { std::slice::from_raw_parts(b.as_ptr().cast(), b.len() / 4) })
}
