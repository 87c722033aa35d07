//! MXFP4 (OCP microscaling FP4): 32 E2M1 values sharing one E8M0 power-of-two scale.
//!
//! ggml stores the E2M1 values doubled as integers (`kvalues_mxfp4`) and compensates with
//! `GGML_E8M0_TO_FP32_HALF` (the scale halved). Bit-exact with ggml-quants.c
//! (`quantize_row_mxfp4_ref`, `dequantize_row_mxfp4`); `vec_dot` follows
//! `ggml_vec_dot_mxfp4_q8_0_generic`, with an AVX2 path.

// The kernels are line-by-line ports of ggml's C loops; index loops keep them auditable.
#![allow(clippy::needless_range_loop)]

use crate::iquants::{f16_at, Q8_0_BYTES};
use crate::{GgmlType, TypeKernels};
use std::mem::size_of;

/// ggml `QK_MXFP4`.
pub const QK_MXFP4: usize = 32;

/// ggml `kvalues_mxfp4`: E2M1 values ×2.
pub(crate) static KVALUES_MXFP4: [i8; 16] =
    [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml `block_mxfp4`: `y[j] = kvalues_mxfp4[nibble j] * e8m0_half(e)`; low nibbles hold
/// elements 0..16, high nibbles 16..32.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockMxfp4 {
    pub e: u8,
    pub qs: [u8; QK_MXFP4 / 2],
}

const _: () = assert!(size_of::<BlockMxfp4>() == 17);
// SAFETY: repr(C), u8 fields only (size asserted, no padding); every bit pattern is valid.
unsafe impl crate::q8::RawBlock for BlockMxfp4 {}

const BYTES: usize = size_of::<BlockMxfp4>();

/// ggml `ggml_e8m0_to_fp32_half`: `2^(x-128)` (half of the E8M0 value), subnormal for x < 2.
#[inline(always)]
pub(crate) fn e8m0_to_fp32_half(x: u8) -> f32 {
    let bits = if x < 2 {
        0x0020_0000u32 << x
    } else {
        ((x - 1) as u32) << 23
    };
    f32::from_bits(bits)
}

pub(crate) fn dequantize_row_mxfp4(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BYTES).zip(dst.chunks_exact_mut(QK_MXFP4)) {
        let d = e8m0_to_fp32_half(b[0]);
        for j in 0..QK_MXFP4 / 2 {
            y[j] = KVALUES_MXFP4[(b[1 + j] & 0xf) as usize] as f32 * d;
            y[j + QK_MXFP4 / 2] = KVALUES_MXFP4[(b[1 + j] >> 4) as usize] as f32 * d;
        }
    }
}

/// ggml `best_index_mxfp4`: first index of least `|kvalues[i]*e - x|`.
#[inline(always)]
fn best_index_mxfp4(x: f32, e: f32) -> u8 {
    let mut best_index = 0u8;
    let mut best_err = (KVALUES_MXFP4[0] as f32 * e - x).abs();
    for i in 1..16 {
        let err = (KVALUES_MXFP4[i] as f32 * e - x).abs();
        if err < best_err {
            best_index = i as u8;
            best_err = err;
        }
    }
    best_index
}

/// ggml `quantize_row_mxfp4_ref` (also what `quantize_mxfp4` runs; no imatrix use).
pub(crate) fn quantize_row_mxfp4(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_MXFP4).zip(dst.chunks_exact_mut(BYTES)) {
        let mut amax = 0.0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
            }
        }
        // C: (uint8_t)(floorf(log2f(amax)) - 2 + 127), float -> int -> uint8 as on x86.
        let e = if amax > 0.0 {
            ((amax.log2().floor() - 2.0 + 127.0) as i32) as u8
        } else {
            0
        };
        let d = e8m0_to_fp32_half(e);
        y[0] = e;
        for j in 0..QK_MXFP4 / 2 {
            let x0 = best_index_mxfp4(x[j], d);
            let x1 = best_index_mxfp4(x[j + QK_MXFP4 / 2], d);
            y[1 + j] = x0 | (x1 << 4);
        }
    }
}

/// ggml `ggml_vec_dot_mxfp4_q8_0_generic`.
pub(crate) fn vec_dot_mxfp4_q8_0_ref(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_MXFP4;
    let mut sumf = 0.0f32;
    for (x, y) in w
        .chunks_exact(BYTES)
        .zip(act.chunks_exact(Q8_0_BYTES))
        .take(nb)
    {
        let d = f16_at(y, 0) * e8m0_to_fp32_half(x[0]);
        let mut sumi1 = 0i32;
        let mut sumi2 = 0i32;
        for j in 0..QK_MXFP4 / 2 {
            sumi1 += y[2 + j] as i8 as i32 * KVALUES_MXFP4[(x[1 + j] & 0xf) as usize] as i32;
            sumi2 += y[2 + j + 16] as i8 as i32 * KVALUES_MXFP4[(x[1 + j] >> 4) as usize] as i32;
        }
        sumf += d * (sumi1 + sumi2) as f32;
    }
    sumf
}

/// MXFP4 dot at the best SIMD level (`crate::simd` dispatch), else the scalar twin.
pub(crate) fn vec_dot_mxfp4_q8_0(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::MXFP4, n, w, act)
}

/// The AVX2 kernel for `ty`, where this file has one (the AVX-512 level runs the bit-identical
/// 512-bit kernel of simd/x86/z512_more.rs).
/// Reached only through `crate::simd::dot_fn_at`, which checks the CPU first.
#[cfg(target_arch = "x86_64")]
pub(crate) fn dot_avx2(ty: GgmlType) -> Option<crate::VecDotFn> {
    // SAFETY: only reachable after the caller checked AVX2 support.
    Some(match ty {
        GgmlType::MXFP4 => |n, w, a| unsafe { avx2::vec_dot_mxfp4_q8_0(n, w, a) },
        _ => return None,
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! `pshufb` lookup of the E2M1 nibbles, sign-trick `maddubs` with the Q8_0 values; the
    //! integer block sums are exact.
    use super::*;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2; `w`/`act` hold `n/32` MXFP4 / Q8_0 blocks.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn vec_dot_mxfp4_q8_0(n: usize, w: &[u8], act: &[u8]) -> f32 {
        let nb = n / QK_MXFP4;
        assert!(w.len() >= nb * BYTES && act.len() >= nb * Q8_0_BYTES);
        let t = _mm_loadu_si128(KVALUES_MXFP4.as_ptr().cast());
        let lut = _mm256_set_m128i(t, t);
        let m4 = _mm_set1_epi8(0xf);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for ib in 0..nb {
            let x = w.as_ptr().add(ib * BYTES);
            let y = act.as_ptr().add(ib * Q8_0_BYTES);
            let q = _mm_loadu_si128(x.add(1).cast());
            let lo = _mm_and_si128(q, m4);
            let hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
            let qv = _mm256_shuffle_epi8(lut, _mm256_set_m128i(hi, lo));
            let a = _mm256_loadu_si256(y.add(2).cast());
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(qv, qv), _mm256_sign_epi8(a, qv));
            let p = _mm256_madd_epi16(p, ones);
            let d = f16_at(&act[ib * Q8_0_BYTES..], 0) * e8m0_to_fp32_half(*x);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p)));
        }
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

static MXFP4: TypeKernels = TypeKernels {
    ty: GgmlType::MXFP4,
    vec_dot_type: GgmlType::Q8_0,
    dequantize_row: dequantize_row_mxfp4,
    quantize_row: Some(quantize_row_mxfp4),
    quantize_row_imatrix: None,
    vec_dot: vec_dot_mxfp4_q8_0,
    vec_dot_ref: vec_dot_mxfp4_q8_0_ref,
};

pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels> {
    match ty {
        GgmlType::MXFP4 => Some(&MXFP4),
        _ => None,
    }
}
