//! IQ4_NL (32-element blocks) and IQ4_XS (256-element super-blocks): 4-bit indices into the
//! non-linear table `kvalues_iq4nl`.

use super::{
    f16_at, fp16_bits, nearest_int, q8k_block, u16_at, KVALUES_IQ4NL, Q8K_BYTES, Q8_0_BYTES, QK_K,
};
use crate::GgmlType;
use half::f16;
use std::mem::size_of;

/// ggml `QK4_NL`.
pub const QK4_NL: usize = 32;

/// ggml `block_iq4_nl`: `y[j] = d * kvalues_iq4nl[nibble j]`; low nibbles hold elements
/// 0..16, high nibbles 16..32.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq4Nl {
    pub d: f16,
    pub qs: [u8; QK4_NL / 2],
}

/// ggml `block_iq4_xs`: eight 32-element sub-blocks with 6-bit scales (`ls - 32`), low 4 bits
/// in `scales_l`, high 2 bits in `scales_h`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq4Xs {
    pub d: f16,
    pub scales_h: u16,
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(size_of::<BlockIq4Nl>() == 18);
const _: () = assert!(size_of::<BlockIq4Xs>() == 136);

// SAFETY: repr(C), f16/u16/u8 fields whose sizes sum to the asserted struct size (no padding);
// every bit pattern is valid.
unsafe impl crate::q8::RawBlock for BlockIq4Nl {}
// SAFETY: as above.
unsafe impl crate::q8::RawBlock for BlockIq4Xs {}

const NL_BYTES: usize = size_of::<BlockIq4Nl>();
const XS_BYTES: usize = size_of::<BlockIq4Xs>();

// ---------------------------------------------------------------------------------------------
// Dequantize (ggml `dequantize_row_iq4_nl` / `dequantize_row_iq4_xs`).

pub(crate) fn dequantize_row_iq4_nl(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(NL_BYTES).zip(dst.chunks_exact_mut(QK4_NL)) {
        let d = f16_at(b, 0);
        let qs = &b[2..18];
        for j in 0..QK4_NL / 2 {
            y[j] = d * KVALUES_IQ4NL[(qs[j] & 0xf) as usize] as f32;
            y[j + QK4_NL / 2] = d * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
        }
    }
}

/// The 6-bit scale of sub-block `ib` of an IQ4_XS block (0..64, stored with +32 offset).
#[inline(always)]
fn xs_scale(b: &[u8], ib: usize) -> i32 {
    let scales_h = u16_at(b, 2);
    let ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
        | ((((scales_h >> (2 * ib)) & 3) as i32) << 4);
    ls - 32
}

pub(crate) fn dequantize_row_iq4_xs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(XS_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for ib in 0..QK_K / 32 {
            let dl = d * xs_scale(b, ib) as f32;
            let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
            let y = &mut y[32 * ib..32 * ib + 32];
            for j in 0..16 {
                y[j] = dl * KVALUES_IQ4NL[(qs[j] & 0xf) as usize] as f32;
                y[j + 16] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantize (ggml `quantize_row_iq4_nl_impl`).

/// ggml `best_index_int8`: the level `x` rounds to in the sorted table `val` (ties go up);
/// `val.len()` must be a power of two.
#[inline(always)]
pub(crate) fn best_index_int8(val: &[i8], x: f32) -> usize {
    let x2 = x + x;
    let mut idx = 0usize;
    let mut step = val.len() >> 1;
    while step > 0 {
        let j = idx + step;
        if x2 >= (val[j - 1] as i32 + val[j] as i32) as f32 {
            idx = j;
        }
        step >>= 1;
    }
    idx
}

/// One super-block of ggml's `quantize_row_iq4_nl_impl` with `block_size = 32`, 16 values.
/// Writes `d` (and for super-blocks > 32 the scales) into `out` laid out as `block_iq4_nl` /
/// `block_iq4_xs`.
fn quantize_iq4_superblock(x: &[f32], out: &mut [u8], qw: Option<&[f32]>, ntry: i32) {
    let sbs = x.len();
    let nb = sbs / 32;
    let values = &KVALUES_IQ4NL;
    let mut sigma2 = 0.0f32;
    for &v in x {
        sigma2 += v * v;
    }
    sigma2 *= 2.0f32 / sbs as f32;

    let mut scales = [0.0f32; QK_K / 32];
    let mut l_all = [0u8; QK_K];
    let mut weight = [0.0f32; 32];
    let mut max_scale = 0.0f32;
    let mut amax_scale = 0.0f32;
    for ib in 0..nb {
        let xb = &x[32 * ib..32 * ib + 32];
        let lb = &mut l_all[32 * ib..32 * ib + 32];
        match qw {
            Some(qw) => {
                let qw = &qw[32 * ib..32 * ib + 32];
                for j in 0..32 {
                    weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
                }
            }
            None => {
                for j in 0..32 {
                    weight[j] = xb[j] * xb[j];
                }
            }
        }
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in xb {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax < super::GROUP_MAX_EPS {
            scales[ib] = 0.0;
            lb.fill(0);
            continue;
        }
        let v0 = values[0] as f32;
        let mut d = if ntry > 0 { -max / v0 } else { max / v0 };
        let mut id = 1.0 / d;
        let mut sumqx = 0.0f32;
        let mut sumq2 = 0.0f32;
        for j in 0..32 {
            let al = id * xb[j];
            let l = best_index_int8(values, al);
            lb[j] = l as u8;
            let q = values[l] as f32;
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -ntry..=ntry {
            id = (itry + values[0] as i32) as f32 / max;
            sumqx = 0.0;
            sumq2 = 0.0;
            for j in 0..32 {
                let al = id * xb[j];
                let l = best_index_int8(values, al);
                let q = values[l] as f32;
                let w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        let abs_d = d.abs();
        if abs_d > amax_scale {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    let qs_off;
    if nb > 1 {
        // block_iq4_xs: d, scales_h, scales_l[4], qs[128]
        qs_off = 8;
        let d = -max_scale / 32.0;
        out[0..2].copy_from_slice(&fp16_bits(d));
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut scales_h = 0u16;
        let mut scales_l = [0u8; QK_K / 64];
        for ib in 0..nb {
            let mut l = nearest_int(id * scales[ib]);
            l = l.clamp(-32, 31);
            let dl = d * l as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            let xb = &x[32 * ib..32 * ib + 32];
            for j in 0..32 {
                l_all[32 * ib + j] = best_index_int8(values, idl * xb[j]) as u8;
            }
            let l = (l + 32) as u8;
            let l_l = l & 0xf;
            let l_h = l >> 4;
            if ib % 2 == 0 {
                scales_l[ib / 2] = l_l;
            } else {
                scales_l[ib / 2] |= l_l << 4;
            }
            scales_h |= (l_h as u16) << (2 * (ib % 8));
        }
        out[2..4].copy_from_slice(&scales_h.to_le_bytes());
        out[4..8].copy_from_slice(&scales_l);
    } else {
        qs_off = 2;
        out[0..2].copy_from_slice(&fp16_bits(scales[0]));
        if ntry > 0 {
            let id = if scales[0] != 0.0 {
                1.0 / scales[0]
            } else {
                0.0
            };
            for j in 0..sbs {
                l_all[j] = best_index_int8(values, id * x[j]) as u8;
            }
        }
    }
    for i in 0..sbs / 32 {
        for j in 0..16 {
            out[qs_off + 16 * i + j] = l_all[32 * i + j] | (l_all[32 * i + 16 + j] << 4);
        }
    }
}

/// ggml `quantize_iq4_nl` (what `ggml_quantize_chunk` runs, `ntry = 7`), optional imatrix.
pub(crate) fn quantize_iq4_nl(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    for (ib, (x, y)) in src
        .chunks_exact(QK4_NL)
        .zip(dst.chunks_exact_mut(NL_BYTES))
        .enumerate()
    {
        let qw = imatrix.map(|w| &w[QK4_NL * ib..QK4_NL * (ib + 1)]);
        quantize_iq4_superblock(x, y, qw, 7);
    }
}

/// No-imatrix IQ4_NL as `ggml_quantize_chunk` / `llama-quantize` produce it
/// (`quantize_iq4_nl(.., NULL)`, `ntry = 7`). Note: ggml's separate `quantize_row_iq4_nl_ref`
/// (`ntry = -1`) is only the CPU `from_float` of IQ4_NL, which ggml never uses for matmul
/// (IQ4_NL's `vec_dot_type` is Q8_0), so it is not reproduced here.
pub(crate) fn quantize_row_iq4_nl(src: &[f32], dst: &mut [u8]) {
    quantize_iq4_nl(src, dst, None)
}

/// ggml `quantize_iq4_xs` (= `quantize_row_iq4_xs_ref` without imatrix).
pub(crate) fn quantize_iq4_xs(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    for (ib, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(XS_BYTES))
        .enumerate()
    {
        let qw = imatrix.map(|w| &w[QK_K * ib..QK_K * (ib + 1)]);
        quantize_iq4_superblock(x, y, qw, 7);
    }
}

pub(crate) fn quantize_row_iq4_xs(src: &[f32], dst: &mut [u8]) {
    quantize_iq4_xs(src, dst, None)
}

// ---------------------------------------------------------------------------------------------
// Dot products.

/// ggml `ggml_vec_dot_iq4_nl_q8_0_generic`.
pub(crate) fn vec_dot_iq4_nl_q8_0_ref(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK4_NL;
    let mut sumf = 0.0f32;
    for (x, y) in w
        .chunks_exact(NL_BYTES)
        .zip(act.chunks_exact(Q8_0_BYTES))
        .take(nb)
    {
        let d = f16_at(y, 0) * f16_at(x, 0);
        let (qs, q8) = (&x[2..18], &y[2..34]);
        let mut sumi1 = 0i32;
        let mut sumi2 = 0i32;
        for j in 0..16 {
            sumi1 += q8[j] as i8 as i32 * KVALUES_IQ4NL[(qs[j] & 0xf) as usize] as i32;
            sumi2 += q8[j + 16] as i8 as i32 * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
        }
        sumf += d * (sumi1 + sumi2) as f32;
    }
    sumf
}

/// ggml `ggml_vec_dot_iq4_xs_q8_K_generic`.
pub(crate) fn vec_dot_iq4_xs_q8_k_ref(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for ibl in 0..nb {
        let x = &w[ibl * XS_BYTES..(ibl + 1) * XS_BYTES];
        let (yd, q8, _) = q8k_block(act, ibl);
        let d4d8 = f16_at(x, 0) * yd;
        for ib in 0..QK_K / 32 {
            let dl = d4d8 * xs_scale(x, ib) as f32;
            let qs = &x[8 + 16 * ib..8 + 16 * ib + 16];
            let q8 = &q8[32 * ib..32 * ib + 32];
            let mut sumi1 = 0i32;
            let mut sumi2 = 0i32;
            for j in 0..16 {
                sumi1 += q8[j] as i8 as i32 * KVALUES_IQ4NL[(qs[j] & 0xf) as usize] as i32;
                sumi2 += q8[j + 16] as i8 as i32 * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
            }
            sumf += dl * (sumi1 + sumi2) as f32;
        }
    }
    sumf
}

/// IQ4_NL dot at the best SIMD level (`crate::simd` dispatch), else the scalar twin.
pub(crate) fn vec_dot_iq4_nl_q8_0(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ4_NL, n, w, act)
}

/// IQ4_XS dot at the best SIMD level (`crate::simd` dispatch), else the scalar twin.
pub(crate) fn vec_dot_iq4_xs_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::IQ4_XS, n, w, act)
}

/// The AVX2 kernel for `ty`, where this file has one (the AVX-512 level runs the bit-identical
/// 512-bit kernels of simd/x86/z512_more.rs).
/// Reached only through `crate::simd::dot_fn_at`, which checks the CPU first.
#[cfg(target_arch = "x86_64")]
pub(crate) fn dot_avx2(ty: GgmlType) -> Option<crate::VecDotFn> {
    // SAFETY (both closures): only reachable after the caller checked AVX2 support.
    Some(match ty {
        GgmlType::IQ4_NL => |n, w, a| unsafe { avx2::vec_dot_iq4_nl_q8_0(n, w, a) },
        GgmlType::IQ4_XS => |n, w, a| unsafe { avx2::vec_dot_iq4_xs_q8_k(n, w, a) },
        _ => return None,
    })
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    //! AVX2 IQ4 dot products: `pshufb` table lookup of the nibbles, then `maddubs` with the
    //! sign trick (|w| * sign(w)·a) and `madd` to i32, as ggml's AVX2 kernels. Integer sums are
    //! exact; only the float accumulation order differs from the scalar reference.
    use super::*;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn kvalues_lut() -> __m256i {
        let t = _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast());
        _mm256_set_m128i(t, t)
    }

    /// i8×i8 products of 32 lanes summed in pairs to i16, then to 8×i32.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn mul_sum_i8_pairs(x: __m256i, y: __m256i) -> __m256i {
        let ax = _mm256_sign_epi8(x, x);
        let sy = _mm256_sign_epi8(y, x);
        let dot = _mm256_maddubs_epi16(ax, sy);
        _mm256_madd_epi16(dot, _mm256_set1_epi16(1))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01));
        _mm_cvtsi128_si32(s)
    }

    /// 16 nibble bytes → 32 table values: low nibbles in lanes 0..16, high in 16..32.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lookup32(lut: __m256i, qs: *const u8) -> __m256i {
        let q = _mm_loadu_si128(qs.cast());
        let lo = _mm_and_si128(q, _mm_set1_epi8(0xf));
        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0xf));
        _mm256_shuffle_epi8(lut, _mm256_set_m128i(hi, lo))
    }

    /// # Safety
    /// The CPU must support AVX2; `w`/`act` hold `n/32` IQ4_NL / Q8_0 blocks.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn vec_dot_iq4_nl_q8_0(n: usize, w: &[u8], act: &[u8]) -> f32 {
        let nb = n / QK4_NL;
        assert!(w.len() >= nb * NL_BYTES && act.len() >= nb * Q8_0_BYTES);
        let lut = kvalues_lut();
        let mut acc = _mm256_setzero_ps();
        for ib in 0..nb {
            let x = w.as_ptr().add(ib * NL_BYTES);
            let y = act.as_ptr().add(ib * Q8_0_BYTES);
            let q4 = lookup32(lut, x.add(2));
            let q8 = _mm256_loadu_si256(y.add(2).cast());
            let p = mul_sum_i8_pairs(q4, q8);
            let d = f16_at(&act[ib * Q8_0_BYTES..], 0) * f16_at(&w[ib * NL_BYTES..], 0);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p)));
        }
        hsum_ps(acc)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX2; `w`/`act` hold `n/256` IQ4_XS / Q8_K blocks.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn vec_dot_iq4_xs_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
        let nb = n / QK_K;
        assert!(w.len() >= nb * XS_BYTES && act.len() >= nb * Q8K_BYTES);
        let lut = kvalues_lut();
        let mut sumf = 0.0f32;
        for ibl in 0..nb {
            let x = &w[ibl * XS_BYTES..(ibl + 1) * XS_BYTES];
            let y = &act[ibl * Q8K_BYTES..(ibl + 1) * Q8K_BYTES];
            let mut sumi = _mm256_setzero_si256();
            for ib in 0..QK_K / 32 {
                let q4 = lookup32(lut, x.as_ptr().add(8 + 16 * ib));
                let q8 = _mm256_loadu_si256(y.as_ptr().add(4 + 32 * ib).cast());
                let p = mul_sum_i8_pairs(q4, q8);
                sumi = _mm256_add_epi32(
                    sumi,
                    _mm256_mullo_epi32(p, _mm256_set1_epi32(xs_scale(x, ib))),
                );
            }
            let d4d8 = f16_at(x, 0) * crate::iquants::f32_at(y, 0);
            sumf += d4d8 * hsum_i32(sumi) as f32;
        }
        sumf
    }
}
