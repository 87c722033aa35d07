//! SIMD kernels (AVX2, AVX-512) with run-time dispatch.
//!
//! The CPU level is detected once (cached in a `OnceLock`); every kernel has a scalar reference
//! twin in its family module, which is also the fallback on other architectures. Tests can run a
//! specific level with [`vec_dot_at`] / [`quantize_at`] to check every path this CPU supports.

use crate::GgmlType;
use std::sync::OnceLock;

/// A SIMD implementation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable scalar reference code.
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX-512 F/BW/VL (+VNNI where available) on top of AVX2.
    Avx512,
}

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("FERRITE_NO_SIMD").is_some() {
            return Level::Scalar;
        }
        // FERRITE_SIMD=avx2 caps the level (debugging, comparisons across paths).
        if std::env::var("FERRITE_SIMD").as_deref() == Ok("avx2") {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            return if avx2 { Level::Avx2 } else { Level::Scalar };
        }
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni");
        if avx512 {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// The level chosen for this process (detected once).
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

/// Every level this CPU can run, scalar first.
pub fn available_levels() -> Vec<Level> {
    let best = detect_all();
    [Level::Scalar, Level::Avx2, Level::Avx512]
        .into_iter()
        .filter(|l| *l <= best)
        .collect()
}

fn detect_all() -> Level {
    // Cached: the kernel lookups call this on every dispatch.
    static ALL: OnceLock<Level> = OnceLock::new();
    *ALL.get_or_init(detect_all_uncached)
}

fn detect_all_uncached() -> Level {
    // Like `detect` but ignoring FERRITE_NO_SIMD, so tests still see what the CPU has.
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        if avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
        {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

type DotFn = fn(usize, &[u8], &[u8]) -> f32;

fn scalar_dot(ty: GgmlType) -> DotFn {
    crate::kernels(ty)
        .map(|k| k.vec_dot_ref)
        .unwrap_or(|_, _, _| f32::NAN)
}

/// The dot kernel for `ty` at `level`, or `None` if that level has no kernel for `ty` or the CPU
/// lacks it. `Level::Scalar` always answers for supported types.
pub fn dot_fn_at(level: Level, ty: GgmlType) -> Option<DotFn> {
    if level > detect_all() {
        return None;
    }
    match level {
        Level::Scalar => crate::kernels(ty).ok().map(|k| k.vec_dot_ref),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::dot_avx2(ty).or_else(|| family_avx2(ty)),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => x86::dot_avx512(ty)
            .or_else(|| crate::iquants::iq_z512::dot(ty))
            .or_else(|| family_avx2(ty)),
        #[cfg(not(target_arch = "x86_64"))]
        _ => None,
    }
}

/// AVX2 dot kernels kept in the family modules (also run at the AVX-512 level where it has no
/// 512-bit kernel for the type): the IQ types (iquants), MXFP4 and TQ2_0.
#[cfg(target_arch = "x86_64")]
fn family_avx2(ty: GgmlType) -> Option<DotFn> {
    crate::iquants::iq_x86::dot(ty)
        .or_else(|| crate::mxfp4::dot_avx2(ty))
        .or_else(|| crate::ternary::dot_avx2(ty))
}

/// Run `ty`'s dot kernel at `level` (None when unavailable). Lengths are the caller's duty, as
/// for `TypeKernels::vec_dot`.
pub fn vec_dot_at(level: Level, ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Option<f32> {
    dot_fn_at(level, ty).map(|f| f(n, w, a))
}

/// The best dot kernel for `ty` on this CPU (falls back to lower levels, then scalar).
pub(crate) fn best_dot(ty: GgmlType) -> DotFn {
    let mut l = level();
    loop {
        if let Some(f) = dot_fn_at(l, ty) {
            return f;
        }
        l = match l {
            Level::Avx512 => Level::Avx2,
            Level::Avx2 => Level::Scalar,
            Level::Scalar => return scalar_dot(ty),
        };
    }
}

/// The fastest dot kernel for `ty` on this CPU, resolved once by the caller (hot loops that
/// call many short dots, e.g. attention, skip the per-call dispatch). Same results as
/// `TypeKernels::vec_dot`; lengths are the caller's duty as for it.
pub fn best_dot_fn(ty: GgmlType) -> DotFn {
    best_dot(ty)
}

/// Dispatched dot product (used by the `vec_dot` entries of the kernel tables).
#[inline]
pub(crate) fn vec_dot(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    best_dot(ty)(n, w, a)
}

type QuantFn = fn(&[f32], &mut [u8]);

/// A kernel computing four weight rows against one activation row.
pub type Rows4Fn = fn(usize, [&[u8]; 4], &[u8]) -> [f32; 4];

/// The 4-row kernel for `ty` at `level` (None where that level has none).
pub fn rows4_fn_at(level: Level, ty: GgmlType) -> Option<Rows4Fn> {
    if level > detect_all() {
        return None;
    }
    match level {
        Level::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::rows4_avx2(ty),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => x86::rows4_avx512(ty),
        #[cfg(not(target_arch = "x86_64"))]
        _ => None,
    }
}

/// `nrows = out.len()` contiguous weight rows (each `row_bytes` long) against one activation,
/// using 4-row kernels where available. Lengths must already be checked by the caller.
pub(crate) fn vec_dot_rows(
    ty: GgmlType,
    n: usize,
    row_bytes: usize,
    w: &[u8],
    act: &[u8],
    out: &mut [f32],
) {
    let one = best_dot(ty);
    let mut r = 0;
    if let Some(four) = rows4_fn_at(level(), ty) {
        while r + 4 <= out.len() {
            let rows = [
                &w[r * row_bytes..(r + 1) * row_bytes],
                &w[(r + 1) * row_bytes..(r + 2) * row_bytes],
                &w[(r + 2) * row_bytes..(r + 3) * row_bytes],
                &w[(r + 3) * row_bytes..(r + 4) * row_bytes],
            ];
            out[r..r + 4].copy_from_slice(&four(n, rows, act));
            r += 4;
        }
    }
    while r < out.len() {
        out[r] = one(n, &w[r * row_bytes..(r + 1) * row_bytes], act);
        r += 1;
    }
}

/// Whether [`vec_dot_rows_x4`] has kernels for `ty` on this CPU (`crate::packed`).
pub fn has_x4_kernel(ty: GgmlType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        level() == Level::Avx512 && x86::x4::supports(ty)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        false
    }
}

/// Rows in the x4 layout (`crate::packed`) against one activation; false (nothing written)
/// where this CPU has no kernel for `ty`. Lengths must already be checked by the caller.
pub(crate) fn vec_dot_rows_x4(
    ty: GgmlType,
    n: usize,
    row_bytes: usize,
    w: &[u8],
    act: &[u8],
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_x4_kernel(ty) {
        // SAFETY: AVX-512 level and kernel support checked above; lengths by the caller.
        return unsafe { x86::x4::rows(ty, n / ty.block_size(), row_bytes, w, act, out) };
    }
    let _ = (ty, n, row_bytes, w, act, out);
    false
}

/// Columns below which a tile is computed column by column with the 4-row kernels (packing
/// the weight rows costs about as much as a few dozen columns).
pub const TILE_MIN_COLS: usize = 16;

/// Whether [`vec_dot_tile`] has a GEMM micro-kernel for `ty` rows of `n` elements on this CPU
/// (otherwise it runs the 4-row kernels column by column).
pub fn has_tile_kernel(ty: GgmlType, n: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        level() == Level::Avx512 && x86::tile::supports(ty, n)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ty, n);
        false
    }
}

/// `out[c·out_stride + r]` = row `r` of `w` (`nrows` rows of `row_bytes`) · activation row `c`
/// of `act` (`ncols` rows of `act_bytes`). Lengths must already be checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn vec_dot_tile(
    ty: GgmlType,
    n: usize,
    row_bytes: usize,
    w: &[u8],
    nrows: usize,
    act: &[u8],
    act_bytes: usize,
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
    batched: &[bool],
) {
    #[cfg(target_arch = "x86_64")]
    if (ncols >= TILE_MIN_COLS || batched.iter().any(|&b| b)) && has_tile_kernel(ty, n) {
        // SAFETY: AVX-512 level checked by `has_tile_kernel`; lengths checked by the caller.
        unsafe { x86::tile::vec_dot_tile(ty, n, w, nrows, act, ncols, out, out_stride, batched) };
        return;
    }
    let _ = batched;
    for c in 0..ncols {
        vec_dot_rows(
            ty,
            n,
            row_bytes,
            &w[..nrows * row_bytes],
            &act[c * act_bytes..(c + 1) * act_bytes],
            &mut out[c * out_stride..c * out_stride + nrows],
        );
    }
}

/// The activation quantizer (`ty` in Q8_0, Q8_1, Q8_K) at `level`, or None if unavailable.
pub fn quantize_fn_at(level: Level, ty: GgmlType) -> Option<QuantFn> {
    if level > detect_all() {
        return None;
    }
    match (level, ty) {
        (Level::Scalar, GgmlType::Q8_0) => Some(crate::q8::quantize_bytes_q8_0_act_ref),
        (Level::Scalar, GgmlType::Q8_1) => Some(crate::q8::quantize_bytes_q8_1_act_ref),
        (Level::Scalar, GgmlType::Q8_K) => Some(crate::q8::quantize_bytes_q8_k_ref),
        #[cfg(target_arch = "x86_64")]
        (Level::Avx2 | Level::Avx512, _) => x86::quant_avx2(ty),
        _ => None,
    }
}

fn best_quant(ty: GgmlType) -> QuantFn {
    quantize_fn_at(level(), ty)
        .or_else(|| quantize_fn_at(Level::Scalar, ty))
        .expect("q8 quantizer")
}

pub(crate) fn quantize_q8_0(x: &[f32], y: &mut [u8]) {
    best_quant(GgmlType::Q8_0)(x, y)
}
pub(crate) fn quantize_q8_1(x: &[f32], y: &mut [u8]) {
    best_quant(GgmlType::Q8_1)(x, y)
}
pub(crate) fn quantize_q8_k(x: &[f32], y: &mut [u8]) {
    best_quant(GgmlType::Q8_K)(x, y)
}

#[cfg(target_arch = "x86_64")]
mod x86;
