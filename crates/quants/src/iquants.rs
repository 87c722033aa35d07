//! ggml's "i-quants": IQ4_NL, IQ4_XS (non-linear 4-bit), IQ3_XXS, IQ3_S (D4-lattice grids),
//! IQ2_XXS, IQ2_XS, IQ2_S (E8-lattice grids) and IQ1_S, IQ1_M (ternary grids).
//!
//! Layouts, dequantizers, quantizers and the scalar dot products follow ggml-common.h,
//! ggml-quants.c and ggml-cpu/quants.c operation for operation (same float evaluation order,
//! no fused multiply-add), so dequantization and the no-imatrix quantizers are bit-exact with
//! ggml. Kernels read fields from `&[u8]` at fixed little-endian offsets and never cast, so
//! alignment never matters; the `#[repr(C)]` block structs document the layouts and carry the
//! compile-time size checks of ggml's `static_assert`s.
//!
//! Activation rows for `vec_dot` are raw Q8_0 (`f16 d, i8[32]`, 34 bytes) or Q8_K
//! (`f32 d, i8[256], i16[16] bsums`, 292 bytes) blocks, as produced by `crate::q8`.

// The kernels are line-by-line ports of ggml's C loops; index loops keep them auditable.
#![allow(clippy::needless_range_loop)]

use crate::{GgmlType, TypeKernels};

pub(crate) mod grids;
mod iq1;
mod iq2;
mod iq3;
mod iq4;
#[cfg(target_arch = "x86_64")]
pub(crate) mod iq_x86;
#[cfg(target_arch = "x86_64")]
pub(crate) mod iq_z512;
pub(crate) mod lattice;
#[cfg(target_arch = "x86_64")]
mod lowbit_x86;

/// ggml `QK_K`.
pub(crate) const QK_K: usize = 256;
/// Bytes of one Q8_K activation block (`f32 d`, `i8 qs[256]`, `i16 bsums[16]`).
pub(crate) const Q8K_BYTES: usize = 292;
/// Bytes of one Q8_0 activation block (`f16 d`, `i8 qs[32]`).
pub(crate) const Q8_0_BYTES: usize = 34;

/// ggml `kvalues_iq4nl`.
pub(crate) static KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// ggml `kmask_iq2xs`.
pub(crate) static KMASK_IQ2XS: [u8; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// ggml `GROUP_MAX_EPS*` thresholds (ggml-quants.c).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;
pub(crate) const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;
pub(crate) const GROUP_MAX_EPS_IQ2_S: f32 = 1e-8;
pub(crate) const GROUP_MAX_EPS_IQ1_M: f32 = 1e-7;
pub(crate) const GROUP_MAX_EPS_IQ1_S: f32 = 1e-12;

/// f16 stored little-endian at `b[off..off+2]`, as f32 (exact).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// f32 stored little-endian at `b[off..off+4]`.
#[inline(always)]
pub(crate) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// ggml `GGML_FP32_TO_FP16` (round to nearest even), as little-endian bytes.
#[inline(always)]
pub(crate) fn fp16_bits(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// ggml `nearest_int`: the `12582912.f` (1.5·2^23) magic-number round (ties to even), valid
/// for |x| <= 4194303 as in ggml.
#[inline(always)]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12582912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// `u16` stored little-endian at `b[off..off+2]`.
#[inline(always)]
pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// `u32` stored little-endian at `b[off..off+4]`.
#[inline(always)]
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The Q8_K block `i` of an activation row: `(d, qs, bsums bytes)`.
#[inline(always)]
pub(crate) fn q8k_block(act: &[u8], i: usize) -> (f32, &[u8], &[u8]) {
    let b = &act[i * Q8K_BYTES..(i + 1) * Q8K_BYTES];
    (f32_at(b, 0), &b[4..260], &b[260..292])
}

/// ggml `MAX(a, b)` = `a > b ? a : b` (NaN handling as in C).
#[inline(always)]
pub(crate) fn cmax(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// Sign (±1.0) of element `j` under an 8-bit sign mask, as ggml's `(s & kmask[j] ? -1.f : 1.f)`.
#[inline(always)]
pub(crate) fn sign_f(s: u8, j: usize) -> f32 {
    if s & KMASK_IQ2XS[j] != 0 {
        -1.0
    } else {
        1.0
    }
}

/// Sign (±1) of element `j` for the integer dot products.
#[inline(always)]
pub(crate) fn sign_i(s: u8, j: usize) -> i32 {
    if s & KMASK_IQ2XS[j] != 0 {
        -1
    } else {
        1
    }
}

/// The byte `j` of a packed grid entry.
#[inline(always)]
pub(crate) fn gbyte64(g: u64, j: usize) -> u8 {
    (g >> (8 * j)) as u8
}

#[inline(always)]
pub(crate) fn gbyte32(g: u32, j: usize) -> u8 {
    (g >> (8 * j)) as u8
}

/// Unit importance for the ggml paths that require an imatrix (IQ2_XXS, IQ2_XS, IQ1_S): ggml
/// aborts without one; here `None` means every column has importance 1, which is bit-exact
/// with ggml given an all-ones imatrix.
pub(crate) fn unit_weights(imatrix: Option<&[f32]>, n: usize) -> std::borrow::Cow<'_, [f32]> {
    match imatrix {
        Some(w) => std::borrow::Cow::Borrowed(w),
        None => std::borrow::Cow::Owned(vec![1.0; n]),
    }
}

/// IQ2_XXS dot at the best SIMD level (AVX2 kernel in iq_x86.rs), else the scalar twin.
fn vec_dot_iq2_xxs_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ2_XXS, n, w, act)
}

/// IQ3_XXS dot at the best SIMD level (AVX2 kernel in iq_x86.rs), else the scalar twin.
fn vec_dot_iq3_xxs_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ3_XXS, n, w, act)
}

/// IQ2_XS, IQ2_S, IQ3_S, IQ1_S, IQ1_M dots at the best SIMD level (AVX2 kernels in
/// lowbit_x86.rs), else the scalar twins.
fn vec_dot_iq2_xs_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ2_XS, n, w, act)
}
fn vec_dot_iq2_s_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ2_S, n, w, act)
}
fn vec_dot_iq3_s_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ3_S, n, w, act)
}
fn vec_dot_iq1_s_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ1_S, n, w, act)
}
fn vec_dot_iq1_m_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ1_M, n, w, act)
}

macro_rules! kernel_table {
    ($name:ident, $ty:ident, $vdt:ident, $deq:path, $q:expr, $qi:expr, $vd:path, $vdr:path) => {
        static $name: TypeKernels = TypeKernels {
            ty: GgmlType::$ty,
            vec_dot_type: GgmlType::$vdt,
            dequantize_row: $deq,
            quantize_row: $q,
            quantize_row_imatrix: $qi,
            vec_dot: $vd,
            vec_dot_ref: $vdr,
        };
    };
}

kernel_table!(
    IQ4_NL,
    IQ4_NL,
    Q8_0,
    iq4::dequantize_row_iq4_nl,
    Some(iq4::quantize_row_iq4_nl),
    Some(iq4::quantize_iq4_nl),
    iq4::vec_dot_iq4_nl_q8_0,
    iq4::vec_dot_iq4_nl_q8_0_ref
);
kernel_table!(
    IQ4_XS,
    IQ4_XS,
    Q8_K,
    iq4::dequantize_row_iq4_xs,
    Some(iq4::quantize_row_iq4_xs),
    Some(iq4::quantize_iq4_xs),
    iq4::vec_dot_iq4_xs_q8_k,
    iq4::vec_dot_iq4_xs_q8_k_ref
);
kernel_table!(
    IQ3_XXS,
    IQ3_XXS,
    Q8_K,
    iq3::dequantize_row_iq3_xxs,
    Some(iq3::quantize_row_iq3_xxs),
    Some(iq3::quantize_iq3_xxs),
    vec_dot_iq3_xxs_dispatch,
    iq3::vec_dot_iq3_xxs_q8_k
);
kernel_table!(
    IQ3_S,
    IQ3_S,
    Q8_K,
    iq3::dequantize_row_iq3_s,
    Some(iq3::quantize_row_iq3_s),
    Some(iq3::quantize_iq3_s),
    vec_dot_iq3_s_dispatch,
    iq3::vec_dot_iq3_s_q8_k
);
kernel_table!(
    IQ2_XXS,
    IQ2_XXS,
    Q8_K,
    iq2::dequantize_row_iq2_xxs,
    None,
    Some(iq2::quantize_iq2_xxs),
    vec_dot_iq2_xxs_dispatch,
    iq2::vec_dot_iq2_xxs_q8_k
);
kernel_table!(
    IQ2_XS,
    IQ2_XS,
    Q8_K,
    iq2::dequantize_row_iq2_xs,
    None,
    Some(iq2::quantize_iq2_xs),
    vec_dot_iq2_xs_dispatch,
    iq2::vec_dot_iq2_xs_q8_k
);
kernel_table!(
    IQ2_S,
    IQ2_S,
    Q8_K,
    iq2::dequantize_row_iq2_s,
    Some(iq2::quantize_row_iq2_s),
    Some(iq2::quantize_iq2_s),
    vec_dot_iq2_s_dispatch,
    iq2::vec_dot_iq2_s_q8_k
);
kernel_table!(
    IQ1_S,
    IQ1_S,
    Q8_K,
    iq1::dequantize_row_iq1_s,
    None,
    Some(iq1::quantize_iq1_s),
    vec_dot_iq1_s_dispatch,
    iq1::vec_dot_iq1_s_q8_k
);
kernel_table!(
    IQ1_M,
    IQ1_M,
    Q8_K,
    iq1::dequantize_row_iq1_m,
    None,
    Some(iq1::quantize_iq1_m),
    vec_dot_iq1_m_dispatch,
    iq1::vec_dot_iq1_m_q8_k
);

pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels> {
    match ty {
        GgmlType::IQ4_NL => Some(&IQ4_NL),
        GgmlType::IQ4_XS => Some(&IQ4_XS),
        GgmlType::IQ3_XXS => Some(&IQ3_XXS),
        GgmlType::IQ3_S => Some(&IQ3_S),
        GgmlType::IQ2_XXS => Some(&IQ2_XXS),
        GgmlType::IQ2_XS => Some(&IQ2_XS),
        GgmlType::IQ2_S => Some(&IQ2_S),
        GgmlType::IQ1_S => Some(&IQ1_S),
        GgmlType::IQ1_M => Some(&IQ1_M),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::grids::*;

    // Oracle: entries copied by hand from ggml-common.h (first, a middle and last entries).
    #[test]
    fn grids_match_ggml_common_h() {
        assert_eq!(IQ2XXS_GRID[0], 0x0808080808080808);
        assert_eq!(IQ2XXS_GRID[1], 0x080808080808082b);
        assert_eq!(IQ2XXS_GRID[254], 0x2b2b2b0819190808);
        assert_eq!(IQ2XXS_GRID[255], 0x2b2b2b1908081908);
        assert_eq!(IQ2XS_GRID[1], 0x080808080808082b);
        assert_eq!(IQ2S_GRID[764], 0x192b0808082b0819);
        assert_eq!(IQ2XS_GRID[511], 0x2b2b2b2b2b2b2b2b);
        assert_eq!(IQ2S_GRID[1023], 0x2b2b2b2b2b2b2b2b);
        assert_eq!(IQ3XXS_GRID[0], 0x04040404);
        assert_eq!(IQ3XXS_GRID[1], 0x04040414);
        assert_eq!(IQ3XXS_GRID[254], 0x3e2c1424);
        assert_eq!(IQ3XXS_GRID[255], 0x3e341c04);
        assert_eq!(IQ3S_GRID[0], 0x01010101);
        assert_eq!(IQ3S_GRID[1], 0x01010103);
        assert_eq!(IQ3S_GRID[510], 0x0f0d0703);
        assert_eq!(IQ3S_GRID[511], 0x0f0f0101);
        assert_eq!(IQ1S_GRID[0], 0xffffffffffffffff);
        assert_eq!(IQ1S_GRID[1], 0xffffffffffffff01);
        assert_eq!(IQ1S_GRID[120], 0xffff000100ffff00);
        assert_eq!(IQ1S_GRID[2047], 0x0101010101010101);
        assert_eq!(&KSIGNS_IQ2XS[..8], &[0, 129, 130, 3, 132, 5, 6, 135]);
        assert_eq!(KSIGNS_IQ2XS[127], 255);
        // ksigns: bit 7 makes the popcount even.
        for (i, &s) in KSIGNS_IQ2XS.iter().enumerate() {
            assert_eq!(s & 127, i as u8);
            assert_eq!(s.count_ones() % 2, 0);
        }
    }
}
