//! AVX2 dot kernels for the grid-coded IQ types (IQ2_XXS, IQ3_XXS), after ggml's AVX2 kernels
//! in ggml-cpu/arch/x86/quants.c: grid rows gathered into a 256-bit register, signs applied to
//! the activation with `vpsignb` from a 128-entry ±1 table, `vpmaddubsw` then a per-32 odd
//! scale through `vpmaddwd`. Integer sums are exact and combined in the f32 order of the scalar
//! twins in iq2.rs / iq3.rs (the `vec_dot_ref` oracles), so results are bit-identical to them
//! (tests/c_lowbit_simd_props.rs).
//!
//! Safety: the `unsafe fn`s need AVX2; they are only reachable through `dot`, which
//! `crate::simd::dot_fn_at` calls after checking the CPU. Each asserts its slice lengths.
#![allow(clippy::missing_safety_doc)]

use super::grids::{IQ2XXS_GRID, IQ3XXS_GRID};
use crate::GgmlType;
use std::arch::x86_64::*;

/// ggml `keven_signs_q2xs` as 8 bytes of ±1: entry k has byte j = -1 where bit j of
/// `KSIGNS_IQ2XS[k]` (k plus an even-parity bit 7) is set.
pub(super) static SIGNS64: [u64; 128] = signs64();

const fn signs64() -> [u64; 128] {
    let mut t = [0u64; 128];
    let mut k = 0;
    while k < 128 {
        let s = (k as u32
            | if (k as u32).count_ones() % 2 == 1 {
                0x80
            } else {
                0
            }) as u64;
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            v |= (if s >> j & 1 == 1 { 0xffu64 } else { 0x01 }) << (8 * j);
            j += 1;
        }
        t[k] = v;
        k += 1;
    }
    t
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn signs4(aux: u32) -> __m256i {
    _mm256_set_epi64x(
        SIGNS64[(aux >> 21 & 127) as usize] as i64,
        SIGNS64[(aux >> 14 & 127) as usize] as i64,
        SIGNS64[(aux >> 7 & 127) as usize] as i64,
        SIGNS64[(aux & 127) as usize] as i64,
    )
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

#[inline]
fn rd_u32(p: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]])
}

#[target_feature(enable = "avx2")]
unsafe fn iq2_xxs(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(
        w.len() >= nb * 66 && a.len() >= nb * 292,
        "vec_dot: buffers shorter than n"
    );
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * 66..i * 66 + 66];
        let y = &a[i * 292..i * 292 + 292];
        let d = super::f16_at(x, 0) * f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        let mut sumi = _mm256_setzero_si256();
        for ib32 in 0..8 {
            let g = &x[2 + 8 * ib32..2 + 8 * ib32 + 4];
            let aux = rd_u32(x, 2 + 8 * ib32 + 4);
            let q2 = _mm256_set_epi64x(
                IQ2XXS_GRID[g[3] as usize] as i64,
                IQ2XXS_GRID[g[2] as usize] as i64,
                IQ2XXS_GRID[g[1] as usize] as i64,
                IQ2XXS_GRID[g[0] as usize] as i64,
            );
            let q8 = _mm256_loadu_si256(y.as_ptr().add(4 + 32 * ib32) as *const __m256i);
            let p = _mm256_maddubs_epi16(q2, _mm256_sign_epi8(q8, signs4(aux)));
            let ls = (2 * (aux >> 28) + 1) as i16;
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16(ls)));
        }
        sumf += d * hsum_i32(sumi) as f32;
    }
    0.125 * sumf
}

#[target_feature(enable = "avx2")]
unsafe fn iq3_xxs(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    assert!(
        w.len() >= nb * 98 && a.len() >= nb * 292,
        "vec_dot: buffers shorter than n"
    );
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * 98..i * 98 + 98];
        let y = &a[i * 292..i * 292 + 292];
        let d = super::f16_at(x, 0) * f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        let mut sumi = _mm256_setzero_si256();
        for ib32 in 0..8 {
            let g = &x[2 + 8 * ib32..2 + 8 * ib32 + 8];
            let aux = rd_u32(x, 66 + 4 * ib32);
            let q3 = _mm256_setr_epi32(
                IQ3XXS_GRID[g[0] as usize] as i32,
                IQ3XXS_GRID[g[1] as usize] as i32,
                IQ3XXS_GRID[g[2] as usize] as i32,
                IQ3XXS_GRID[g[3] as usize] as i32,
                IQ3XXS_GRID[g[4] as usize] as i32,
                IQ3XXS_GRID[g[5] as usize] as i32,
                IQ3XXS_GRID[g[6] as usize] as i32,
                IQ3XXS_GRID[g[7] as usize] as i32,
            );
            let q8 = _mm256_loadu_si256(y.as_ptr().add(4 + 32 * ib32) as *const __m256i);
            let p = _mm256_maddubs_epi16(q3, _mm256_sign_epi8(q8, signs4(aux)));
            let ls = (2 * (aux >> 28) + 1) as i16;
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16(ls)));
        }
        sumf += d * hsum_i32(sumi) as f32;
    }
    0.25 * sumf
}

/// The AVX2 kernel for `ty` (also used at the AVX-512 level without a 512-bit one, see
/// iq_z512.rs), where one exists (IQ4_NL/IQ4_XS
/// are in iq4.rs, the other low-bit types in lowbit_x86.rs).
pub(crate) fn dot(ty: GgmlType) -> Option<crate::VecDotFn> {
    // SAFETY (all closures): only reachable after the caller checked AVX2 support.
    Some(match ty {
        GgmlType::IQ2_XXS => |n, w, a| unsafe { iq2_xxs(n, w, a) },
        GgmlType::IQ3_XXS => |n, w, a| unsafe { iq3_xxs(n, w, a) },
        _ => return super::iq4::dot_avx2(ty).or_else(|| super::lowbit_x86::dot(ty)),
    })
}

#[cfg(test)]
mod tests {
    /// Oracle: ggml's `KSIGNS_IQ2XS` table in grids.rs; exact.
    #[test]
    fn signs64_matches_ksigns() {
        for (k, &s) in super::super::grids::KSIGNS_IQ2XS.iter().enumerate() {
            for j in 0..8 {
                let b = (super::SIGNS64[k] >> (8 * j)) as u8 as i8;
                assert_eq!(b, if s >> j & 1 == 1 { -1 } else { 1 }, "k={k} j={j}");
            }
        }
    }
}
