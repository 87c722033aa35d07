//! Ternary types for BitNet b1.58 / TriLM weights: TQ1_0 (1.6875 bpw, five trits per byte in
//! base 3, stored as a fixed-point fraction) and TQ2_0 (2.0625 bpw, 2 bits per trit).
//! Both scale the trits {-1, 0, 1} by one f16 `d` per 256 values and dot with Q8_K.
//!
//! Bit-exact with ggml-quants.c (`quantize_row_tq{1,2}_0_ref`, `dequantize_row_tq{1,2}_0`);
//! `vec_dot` follows `ggml_vec_dot_tq{1,2}_0_q8_K_generic`, with AVX2 paths (TQ2_0 below,
//! TQ1_0 in iquants/lowbit_x86.rs).

// The kernels are line-by-line ports of ggml's C loops; index loops keep them auditable.
#![allow(clippy::needless_range_loop)]

use crate::iquants::{f16_at, f32_at, fp16_bits, Q8K_BYTES, QK_K};
use crate::{GgmlType, TypeKernels};
use half::f16;
use std::mem::size_of;

/// ggml `block_tq1_0`: `qs[0..32]` hold 5 trits each for elements 0..160 (trit `n` of byte
/// `m` is element `32n + m`), `qs[32..48]` hold 5 trits each for 160..240, `qh[4]` hold 4
/// trits each for 240..256.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockTq1_0 {
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    pub qh: [u8; QK_K / 64],
    pub d: f16,
}

/// ggml `block_tq2_0`: 2-bit codes `q` (value `q - 1`), element `128j + 32l + m` in bits
/// `2l..2l+2` of `qs[32j + m]`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockTq2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: f16,
}

const _: () = assert!(size_of::<BlockTq1_0>() == 54);
const _: () = assert!(size_of::<BlockTq2_0>() == 66);
// SAFETY: repr(C), u8/f16 fields whose sizes sum to the asserted size (no padding: the f16
// sits at an even offset); every bit pattern is valid.
unsafe impl crate::q8::RawBlock for BlockTq1_0 {}
// SAFETY: as above.
unsafe impl crate::q8::RawBlock for BlockTq2_0 {}

const TQ1_BYTES: usize = size_of::<BlockTq1_0>();
const TQ2_BYTES: usize = size_of::<BlockTq2_0>();
const TQ1_QS: usize = 48;
const TQ1_QH: usize = 4;

const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];

/// The trit (0, 1, 2) in position `n` of a base-3 fixed-point byte (ggml's
/// `((uint16_t)(q * pow3[n]) * 3) >> 8` with the product wrapping in `uint8_t`).
#[inline(always)]
fn trit(q: u8, n: usize) -> i32 {
    let q = q.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as i32
}

/// Calls `f(element, trit)` for every element of a TQ1_0 block, in ggml's element order.
#[inline(always)]
fn for_each_tq1(b: &[u8], mut f: impl FnMut(usize, i32)) {
    let mut e = 0;
    for n in 0..5 {
        for m in 0..32 {
            f(e, trit(b[m], n));
            e += 1;
        }
    }
    for n in 0..5 {
        for m in 0..16 {
            f(e, trit(b[32 + m], n));
            e += 1;
        }
    }
    for n in 0..4 {
        for j in 0..TQ1_QH {
            f(e, trit(b[TQ1_QS + j], n));
            e += 1;
        }
    }
}

pub(crate) fn dequantize_row_tq1_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(TQ1_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, TQ1_QS + TQ1_QH);
        for_each_tq1(b, |e, t| y[e] = (t - 1) as f32 * d);
    }
}

pub(crate) fn dequantize_row_tq2_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(TQ2_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, QK_K / 4);
        for j in 0..2 {
            for l in 0..4 {
                for m in 0..32 {
                    let q = ((b[32 * j + m] >> (2 * l)) & 3) as i32;
                    y[128 * j + 32 * l + m] = (q - 1) as f32 * d;
                }
            }
        }
    }
}

/// `amax`, `d = amax`, `id = 1/d` (0 for an all-zero block), as ggml's TQ quantizers.
fn tq_scale(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in x {
        amax = crate::iquants::cmax(amax, v.abs());
    }
    let id = if amax != 0.0 { 1.0 / amax } else { 0.0 };
    (amax, id)
}

/// `lroundf(x * id) + 1`: the trit code 0..2 (round half away from zero).
#[inline(always)]
fn code(x: f32, id: f32) -> u8 {
    ((x * id).round() as i32 + 1) as u8
}

/// ggml `quantize_row_tq1_0_ref`.
pub(crate) fn quantize_row_tq1_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(TQ1_BYTES)) {
        let (d, id) = tq_scale(x);
        // ceiling division by 243: the trits become a fixed-point fraction of 256.
        let pack = |q: u8| ((q as u16) * 256).div_ceil(243) as u8;
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..5 {
                q = q.wrapping_mul(3).wrapping_add(code(x[m + 32 * n], id));
            }
            y[m] = pack(q);
        }
        for m in 0..16 {
            let mut q = 0u8;
            for n in 0..5 {
                q = q
                    .wrapping_mul(3)
                    .wrapping_add(code(x[160 + m + 16 * n], id));
            }
            y[32 + m] = pack(q);
        }
        for j in 0..TQ1_QH {
            let mut q = 0u8;
            for m in 0..4 {
                q = q.wrapping_mul(3).wrapping_add(code(x[240 + j + 4 * m], id));
            }
            // shift the first value to the most significant trit
            q = q.wrapping_mul(3);
            y[TQ1_QS + j] = pack(q);
        }
        y[TQ1_QS + TQ1_QH..].copy_from_slice(&fp16_bits(d));
    }
}

/// ggml `quantize_row_tq2_0_ref`.
pub(crate) fn quantize_row_tq2_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(TQ2_BYTES)) {
        let (d, id) = tq_scale(x);
        for j in 0..2 {
            for m in 0..32 {
                let mut q = 0u8;
                for n in 0..4 {
                    q = q.wrapping_add((code(x[128 * j + m + 32 * n], id) & 3) << (2 * n));
                }
                y[32 * j + m] = q;
            }
        }
        y[QK_K / 4..].copy_from_slice(&fp16_bits(d));
    }
}

/// ggml `ggml_vec_dot_tq1_0_q8_K_generic`.
pub(crate) fn vec_dot_tq1_0_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * TQ1_BYTES..(i + 1) * TQ1_BYTES];
        let y = &act[i * Q8K_BYTES..(i + 1) * Q8K_BYTES];
        let q8 = &y[4..4 + QK_K];
        let mut sum = 0i32;
        for_each_tq1(x, |e, t| sum += (t - 1) * q8[e] as i8 as i32);
        sumf += sum as f32 * (f16_at(x, TQ1_QS + TQ1_QH) * f32_at(y, 0));
    }
    sumf
}

/// TQ1_0 dot at the best SIMD level (AVX2 kernel in iquants/lowbit_x86.rs), else the twin.
fn vec_dot_tq1_0_dispatch(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::TQ1_0, n, w, act)
}

/// ggml `ggml_vec_dot_tq2_0_q8_K_generic`.
pub(crate) fn vec_dot_tq2_0_q8_k_ref(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * TQ2_BYTES..(i + 1) * TQ2_BYTES];
        let y = &act[i * Q8K_BYTES..(i + 1) * Q8K_BYTES];
        let q8 = &y[4..4 + QK_K];
        let mut sumi = 0i32;
        for j in 0..2 {
            for l in 0..4 {
                for k in 0..32 {
                    let q = ((x[32 * j + k] >> (2 * l)) & 3) as i32 - 1;
                    sumi += q8[128 * j + 32 * l + k] as i8 as i32 * q;
                }
            }
        }
        let d = f32_at(y, 0) * f16_at(x, QK_K / 4);
        sumf += sumi as f32 * d;
    }
    sumf
}

/// TQ2_0 dot at the best SIMD level (`crate::simd` dispatch), else the scalar twin.
pub(crate) fn vec_dot_tq2_0_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::TQ2_0, n, w, act)
}

/// The AVX2 kernel for `ty`, where this file has one (TQ1_0's is in iquants/lowbit_x86.rs; the
/// AVX-512 level runs the bit-identical 512-bit kernels of simd/x86/z512_more.rs). Reached
/// only through `crate::simd::dot_fn_at`, which checks the CPU first.
#[cfg(target_arch = "x86_64")]
pub(crate) fn dot_avx2(ty: GgmlType) -> Option<crate::VecDotFn> {
    // SAFETY: only reachable after the caller checked AVX2 support.
    Some(match ty {
        GgmlType::TQ2_0 => |n, w, a| unsafe { avx2::vec_dot_tq2_0_q8_k(n, w, a) },
        _ => return None,
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! TQ2_0·Q8_K with AVX2: the 2-bit codes (0..2) multiply the activations unsigned with
    //! `maddubs`, and the "-1" offset is removed with the Q8_K `bsums` (Σ(q-1)a = Σqa - Σa),
    //! as ggml's AVX2 kernel does. All integer arithmetic is exact, so the result equals the
    //! scalar reference up to the float product order.
    use super::*;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2; `w`/`act` hold `n/256` TQ2_0 / Q8_K blocks.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn vec_dot_tq2_0_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
        let nb = n / QK_K;
        assert!(w.len() >= nb * TQ2_BYTES && act.len() >= nb * Q8K_BYTES);
        let m3 = _mm256_set1_epi8(3);
        let ones = _mm256_set1_epi16(1);
        let mut sumf = 0.0f32;
        for i in 0..nb {
            let x = w.as_ptr().add(i * TQ2_BYTES);
            let y = act.as_ptr().add(i * Q8K_BYTES);
            let mut acc = _mm256_setzero_si256();
            for j in 0..2 {
                let qx = _mm256_loadu_si256(x.add(32 * j).cast());
                for l in 0..4 {
                    let q =
                        _mm256_and_si256(_mm256_srl_epi16(qx, _mm_cvtsi32_si128(2 * l as i32)), m3);
                    let a = _mm256_loadu_si256(y.add(4 + 128 * j + 32 * l).cast());
                    let p = _mm256_maddubs_epi16(q, a);
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
                }
            }
            // Σ a over the block from the 16 bsums.
            let bs = _mm256_loadu_si256(y.add(4 + QK_K).cast());
            let bsum = _mm256_madd_epi16(bs, ones);
            acc = _mm256_sub_epi32(acc, bsum);
            let s = _mm_add_epi32(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256(acc, 1),
            );
            let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01));
            let sumi = _mm_cvtsi128_si32(s);
            let d = f32_at(&act[i * Q8K_BYTES..], 0) * f16_at(&w[i * TQ2_BYTES..], QK_K / 4);
            sumf += sumi as f32 * d;
        }
        sumf
    }
}

static TQ1_0: TypeKernels = TypeKernels {
    ty: GgmlType::TQ1_0,
    vec_dot_type: GgmlType::Q8_K,
    dequantize_row: dequantize_row_tq1_0,
    quantize_row: Some(quantize_row_tq1_0),
    quantize_row_imatrix: None,
    vec_dot: vec_dot_tq1_0_dispatch,
    vec_dot_ref: vec_dot_tq1_0_q8_k,
};

static TQ2_0: TypeKernels = TypeKernels {
    ty: GgmlType::TQ2_0,
    vec_dot_type: GgmlType::Q8_K,
    dequantize_row: dequantize_row_tq2_0,
    quantize_row: Some(quantize_row_tq2_0),
    quantize_row_imatrix: None,
    vec_dot: vec_dot_tq2_0_q8_k,
    vec_dot_ref: vec_dot_tq2_0_q8_k_ref,
};

pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels> {
    match ty {
        GgmlType::TQ1_0 => Some(&TQ1_0),
        GgmlType::TQ2_0 => Some(&TQ2_0),
        _ => None,
    }
}
