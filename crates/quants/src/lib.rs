//! ggml tensor block types: dequantize (bit-exact with ggml), reference quantizers (bit-exact
//! with ggml's `quantize_row_*_ref` / `quantize_*` without imatrix), importance-weighted
//! quantizers, and dot-product kernels with a scalar reference twin plus AVX2 / AVX-512 paths
//! chosen once at run time.
//!
//! Each family of types lives in its own module, which exposes
//! `pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels>`; this file only
//! chains them and validates sizes, so callers never index out of bounds.

pub use ferrite_gguf::GgmlType;

pub mod float;
pub mod iquants;
pub mod kquants;
pub mod legacy;
pub mod mxfp4;
pub mod packed;
pub mod q8;
pub mod simd;
pub mod ternary;

/// `dst = dequantize(src)`; `src` is whole blocks.
pub type DequantizeFn = fn(src: &[u8], dst: &mut [f32]);
/// ggml's reference quantizer.
pub type QuantizeFn = fn(src: &[f32], dst: &mut [u8]);
/// ggml's quantizer with optional importance weights (one per column).
pub type QuantizeImatrixFn = fn(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>);
/// Dot product of `n` elements of a weight row and an activation row.
pub type VecDotFn = fn(n: usize, w: &[u8], act: &[u8]) -> f32;

/// What the quants crate can do with one weight type.
pub struct TypeKernels {
    pub ty: GgmlType,
    /// Type the activation row must be quantized to for `vec_dot` (ggml's `vec_dot_type`).
    pub vec_dot_type: GgmlType,
    /// `src` is a whole number of blocks; `dst.len()` = blocks * block_size.
    pub dequantize_row: DequantizeFn,
    /// ggml's reference quantizer (no importance matrix); `None` when ggml needs an imatrix.
    pub quantize_row: Option<QuantizeFn>,
    /// ggml's `quantize_<type>` with optional importance weights (`quant_weights`, one per column).
    pub quantize_row_imatrix: Option<QuantizeImatrixFn>,
    /// Dot product of one weight row with one activation row of `vec_dot_type`, `n` elements.
    /// Uses the fastest path this CPU supports.
    pub vec_dot: VecDotFn,
    /// The plain scalar twin of `vec_dot`, the oracle for the SIMD paths.
    pub vec_dot_ref: VecDotFn,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantError {
    #[error("{0} is not supported yet")]
    Unsupported(GgmlType),
    #[error("{ty}: quantizing needs an importance matrix")]
    NeedsImatrix { ty: GgmlType },
    #[error("{ty}: row of {n} elements is not a multiple of the block size {block}")]
    NotBlockAligned {
        ty: GgmlType,
        n: usize,
        block: usize,
    },
    #[error("{ty}: {what} buffer has {got} bytes/elements, expected {expected}")]
    BadLength {
        ty: GgmlType,
        what: &'static str,
        got: usize,
        expected: usize,
    },
}

/// The kernels for `ty`, or `Unsupported` naming the type.
pub fn kernels(ty: GgmlType) -> Result<&'static TypeKernels, QuantError> {
    float::kernels(ty)
        .or_else(|| legacy::kernels(ty))
        .or_else(|| kquants::kernels(ty))
        .or_else(|| iquants::kernels(ty))
        .or_else(|| ternary::kernels(ty))
        .or_else(|| mxfp4::kernels(ty))
        .ok_or(QuantError::Unsupported(ty))
}

fn check_len(
    ty: GgmlType,
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), QuantError> {
    if got == expected {
        Ok(())
    } else {
        Err(QuantError::BadLength {
            ty,
            what,
            got,
            expected,
        })
    }
}

/// Bytes of `n` elements of `ty`, checking block alignment.
pub fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, QuantError> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(QuantError::NotBlockAligned { ty, n, block });
    }
    Ok(n / block * ty.type_size())
}

/// Dequantize a row of `dst.len()` elements from `src`.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let k = kernels(ty)?;
    check_len(ty, "source", src.len(), row_bytes(ty, dst.len())?)?;
    (k.dequantize_row)(src, dst);
    Ok(())
}

/// Quantize `src` with ggml's reference quantizer (no importance matrix).
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let k = kernels(ty)?;
    check_len(ty, "destination", dst.len(), row_bytes(ty, src.len())?)?;
    if let Some(q) = k.quantize_row {
        q(src, dst);
        Ok(())
    } else if let Some(q) = k.quantize_row_imatrix {
        q(src, dst, None);
        Ok(())
    } else {
        Err(QuantError::NeedsImatrix { ty })
    }
}

/// Quantize with ggml's `quantize_<type>` path and optional importance weights.
pub fn quantize_row_imatrix(
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
    imatrix: Option<&[f32]>,
) -> Result<(), QuantError> {
    let k = kernels(ty)?;
    check_len(ty, "destination", dst.len(), row_bytes(ty, src.len())?)?;
    if let Some(w) = imatrix {
        check_len(ty, "imatrix", w.len(), src.len())?;
    }
    match (k.quantize_row_imatrix, k.quantize_row) {
        (Some(q), _) => q(src, dst, imatrix),
        (None, Some(q)) => q(src, dst),
        (None, None) => return Err(QuantError::NeedsImatrix { ty }),
    }
    Ok(())
}

/// Dot product of a weight row of type `ty` with an activation row already quantized to
/// `kernels(ty).vec_dot_type`, both of `n` elements.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Result<f32, QuantError> {
    let k = kernels(ty)?;
    check_len(ty, "weight", w.len(), row_bytes(ty, n)?)?;
    check_len(
        k.vec_dot_type,
        "activation",
        act.len(),
        row_bytes(k.vec_dot_type, n)?,
    )?;
    Ok((k.vec_dot)(n, w, act))
}

/// Several weight rows against one activation: `w_rows` holds `out.len()` contiguous rows of
/// type `ty` and `n` elements each; `act` is one row of `kernels(ty).vec_dot_type`. Uses 4-row
/// SIMD kernels (activation loads shared across rows) where available.
pub fn vec_dot_rows(
    ty: GgmlType,
    n: usize,
    w_rows: &[u8],
    act: &[u8],
    out: &mut [f32],
) -> Result<(), QuantError> {
    let k = kernels(ty)?;
    let rb = row_bytes(ty, n)?;
    check_len(ty, "weight rows", w_rows.len(), rb * out.len())?;
    check_len(
        k.vec_dot_type,
        "activation",
        act.len(),
        row_bytes(k.vec_dot_type, n)?,
    )?;
    simd::vec_dot_rows(ty, n, rb, w_rows, act, out);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_tile(
    ty: GgmlType,
    n: usize,
    w_rows: &[u8],
    nrows: usize,
    acts: &[u8],
    ncols: usize,
    out: &[f32],
    out_stride: usize,
) -> Result<(&'static TypeKernels, usize, usize), QuantError> {
    let k = kernels(ty)?;
    let rb = row_bytes(ty, n)?;
    let arb = row_bytes(k.vec_dot_type, n)?;
    check_len(ty, "weight rows", w_rows.len(), rb * nrows)?;
    check_len(k.vec_dot_type, "activations", acts.len(), arb * ncols)?;
    if ncols > 0 && nrows > 0 {
        if out_stride < nrows {
            return Err(QuantError::BadLength {
                ty,
                what: "output stride",
                got: out_stride,
                expected: nrows,
            });
        }
        let need = (ncols - 1) * out_stride + nrows;
        if out.len() < need {
            return Err(QuantError::BadLength {
                ty,
                what: "output",
                got: out.len(),
                expected: need,
            });
        }
    }
    Ok((k, rb, arb))
}

/// A GEMM tile: `out[c * out_stride + r] = dot(weight row r, activation row c)` for the
/// `nrows` contiguous weight rows of type `ty` in `w_rows` and the `ncols` contiguous activation
/// rows (of `kernels(ty).vec_dot_type`) in `acts`, all of `n` elements. With enough columns
/// (see [`simd::TILE_MIN_COLS`]) and a micro-kernel for the type ([`simd::has_tile_kernel`]),
/// each weight row is decoded once and dotted against every column (AVX-512 VNNI, 8 rows × 2
/// columns per register tile); otherwise the 4-row kernels run column by column.
#[allow(clippy::too_many_arguments)]
pub fn vec_dot_tile(
    ty: GgmlType,
    n: usize,
    w_rows: &[u8],
    nrows: usize,
    acts: &[u8],
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), QuantError> {
    vec_dot_tile_batched(ty, n, w_rows, nrows, acts, ncols, out, out_stride, &[])
}

/// [`vec_dot_tile`] with llama.cpp's batch-dependent float order per column: where
/// `batched[c]` is set, column `c` is summed as llama.cpp's batched kernels sum it (Q4_K: the
/// repacked 8×8 GEMM, one fma per 64-element step; Q6_K: the tiled K-quant GEMM,
/// `acc += (S·d)·dy` per superblock) instead of as its single-token `vec_dot`/GEMV does; other
/// types and unset columns are unaffected. llama.cpp (0c1e570) takes those kernels for the
/// first `n − n % 4` columns of an `n`-token batch (Q4_K, rows a multiple of 8) and for
/// batches of ≥ 8 tokens (Q6_K), so reproducing its logits needs the same choice per token
/// (`ferrite_compute::MatmulScratch::set_batched`). Only the AVX-512 tile kernels know the
/// batched orders; elsewhere the flags are ignored.
#[allow(clippy::too_many_arguments)]
pub fn vec_dot_tile_batched(
    ty: GgmlType,
    n: usize,
    w_rows: &[u8],
    nrows: usize,
    acts: &[u8],
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
    batched: &[bool],
) -> Result<(), QuantError> {
    let (_, rb, arb) = check_tile(ty, n, w_rows, nrows, acts, ncols, out, out_stride)?;
    simd::vec_dot_tile(
        ty, n, rb, w_rows, nrows, acts, arb, ncols, out, out_stride, batched,
    );
    Ok(())
}

/// The scalar twin of [`vec_dot_tile`]: `vec_dot_ref` for every (row, column) pair.
#[allow(clippy::too_many_arguments)]
pub fn vec_dot_tile_ref(
    ty: GgmlType,
    n: usize,
    w_rows: &[u8],
    nrows: usize,
    acts: &[u8],
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), QuantError> {
    let (k, rb, arb) = check_tile(ty, n, w_rows, nrows, acts, ncols, out, out_stride)?;
    for c in 0..ncols {
        for r in 0..nrows {
            out[c * out_stride + r] = (k.vec_dot_ref)(
                n,
                &w_rows[r * rb..(r + 1) * rb],
                &acts[c * arb..(c + 1) * arb],
            );
        }
    }
    Ok(())
}
