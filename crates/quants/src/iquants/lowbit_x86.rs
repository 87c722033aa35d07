//! AVX2 dot kernels (vs Q8_K activations) for the remaining low-bit types: IQ2_XS, IQ2_S,
//! IQ3_S, IQ1_S, IQ1_M and TQ1_0. Facts (layouts, sign tables, the sign trick) follow ggml's
//! ggml-cpu/arch/x86/quants.c; the code is ours.
//!
//! Every kernel is one `*_block` function (one 256-element super-block → `(d_w, Σ)`) plugged
//! into the shared `q8k_kernel!` skeleton, which asserts the lengths, walks the blocks and adds
//! `d_w · d_a · Σ` in the same order as the scalar twin. `Σ` is the block's exact integer sum
//! (for IQ1_S/IQ1_M plus `delta ·` the exact delta sum, evaluated as the twin does), so these
//! kernels are **bit-identical** to the `vec_dot_ref` twins, not merely close; the property
//! tests in tests/c_lowbit_simd_props.rs check exactly that.
//!
//! Each 32 weights need four or eight scalar table loads and inserts, and those, not the
//! multiply-adds, bound these kernels. The AVX-512 level runs 512-bit kernels instead where
//! they exist (the IQ types: iq_z512.rs, in-register grid lookups or gathers) and the CPU has
//! the extensions they use, else these AVX2 bodies.
//!
//! Safety: the `unsafe fn`s need AVX2; they are only reachable through `dot`, which
//! `crate::simd::dot_fn_at` calls after checking the CPU. Each asserts its slice lengths
//! before any raw load.
#![allow(clippy::missing_safety_doc)]

use super::grids::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ3S_GRID};
use super::iq1::{IQ1M_DELTA, IQ1S_DELTA};
use super::iq_x86::SIGNS64;
use crate::GgmlType;
use std::arch::x86_64::*;

const Q8K: usize = 292;
/// Bytes ahead of the current weight block to prefetch (as the 512-bit kernels do).
const PF: usize = 1024;

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn rd16(p: *const u8) -> usize {
    (p as *const u16).read_unaligned() as usize
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn rd32(p: *const u8) -> u32 {
    (p as *const u32).read_unaligned()
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn f16_ld(p: *const u8) -> f32 {
    half::f16::from_bits(rd16(p) as u16).to_f32()
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ld256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Four u64 table entries as one register, entry `a` in the lowest lane.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn grid4(t: &[u64], a: usize, b: usize, c: usize, d: usize) -> __m256i {
    _mm256_set_epi64x(t[d] as i64, t[c] as i64, t[b] as i64, t[a] as i64)
}

/// Bit j of `bits` → byte j = -1 (set) or +1 (clear).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sign_bytes(bits: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0,
    );
    let b = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
    let m = _mm256_set1_epi64x(0x8040201008040201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(b, m), m);
    _mm256_or_si256(set, _mm256_set1_epi8(1))
}

/// i16 lanes 0..8 = `a`, 8..16 = `b` (one scale per 16 elements).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scale_pair(a: i32, b: i32) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(b as i16), _mm_set1_epi16(a as i16))
}

/// Σ in pairs of i8 lanes (`v` already holds products in -127..=127) → 16 × i16.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pair_sums(v: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_set1_epi8(1), v)
}

/// The shared Q8_K skeleton: `$block(x, y) -> (d_w, Σ)` per super-block; the result is
/// `$post · Σ_blocks d_w·d_a·Σ`, accumulated in block order as the scalar twins do.
macro_rules! q8k_kernel {
    ($name:ident, $wsz:expr, $block:ident, $post:expr) => {
        #[target_feature(enable = "avx2")]
        unsafe fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = n / 256;
            assert!(
                w.len() >= nb * $wsz && a.len() >= nb * Q8K,
                "vec_dot: buffers shorter than n"
            );
            let mut sumf = 0.0f32;
            for i in 0..nb {
                let x = w.as_ptr().add(i * $wsz);
                let y = a.as_ptr().add(i * Q8K);
                // Weights stream from memory: ask for them a few blocks ahead (two lines
                // cover blocks of up to 128 bytes). The activation row stays in cache.
                _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add(PF) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add(PF + 64) as *const i8);
                let (dw, s) = $block(x, y);
                sumf += dw * (y as *const f32).read_unaligned() * s;
            }
            $post * sumf
        }
    };
}

// ------------------------------------------------------------------------------ IQ2_XS (74 B)

/// `qs[l]` (u16) = 9-bit index into `iq2xs_grid` | 7 parity-coded sign bits << 9; two 4-bit
/// scales per 32 (one per 16).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn iq2_xs_block(x: *const u8, y: *const u8) -> (f32, f32) {
    let mut sumi = _mm256_setzero_si256();
    for ib in 0..8 {
        let q = x.add(2 + 8 * ib);
        let (q0, q1, q2, q3) = (rd16(q), rd16(q.add(2)), rd16(q.add(4)), rd16(q.add(6)));
        let g = grid4(&IQ2XS_GRID, q0 & 511, q1 & 511, q2 & 511, q3 & 511);
        let s = grid4(&SIGNS64, q0 >> 9, q1 >> 9, q2 >> 9, q3 >> 9);
        let q8 = ld256(y.add(4 + 32 * ib));
        let p = _mm256_maddubs_epi16(g, _mm256_sign_epi8(q8, s));
        let sc = *x.add(66 + ib) as i32;
        let ls = scale_pair(2 * (sc & 0xf) + 1, 2 * (sc >> 4) + 1);
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, ls));
    }
    (f16_ld(x), hsum_i32(sumi) as f32)
}
q8k_kernel!(iq2_xs, 74, iq2_xs_block, 0.125f32);

// ------------------------------------------------------------------------------ IQ2_S (82 B)

/// `qs[0..32]` low 8 index bits, `qs[32..64]` plain sign bytes, `qh` 2 high index bits per
/// group, two 4-bit scales per 32.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn iq2_s_block(x: *const u8, y: *const u8) -> (f32, f32) {
    let mut sumi = _mm256_setzero_si256();
    for ib in 0..8 {
        let qs = x.add(2 + 4 * ib);
        let qh = *x.add(66 + ib) as usize;
        let idx = |l: usize| *qs.add(l) as usize | (qh << (8 - 2 * l)) & 0x300;
        let g = grid4(&IQ2S_GRID, idx(0), idx(1), idx(2), idx(3));
        let s = sign_bytes(rd32(x.add(34 + 4 * ib)));
        let q8 = ld256(y.add(4 + 32 * ib));
        let p = _mm256_maddubs_epi16(g, _mm256_sign_epi8(q8, s));
        let sc = *x.add(74 + ib) as i32;
        let ls = scale_pair(2 * (sc & 0xf) + 1, 2 * (sc >> 4) + 1);
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, ls));
    }
    (f16_ld(x), hsum_i32(sumi) as f32)
}
q8k_kernel!(iq2_s, 82, iq2_s_block, 0.125f32);

// ------------------------------------------------------------------------------ IQ3_S (110 B)

/// Eight 9-bit indices per 32 into `iq3s_grid` (`qs` + one `qh` bit each), plain sign bytes,
/// one 4-bit scale per 32.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn iq3_s_block(x: *const u8, y: *const u8) -> (f32, f32) {
    let mut sumi = _mm256_setzero_si256();
    for ib in 0..8 {
        let qs = x.add(2 + 8 * ib);
        let qh = *x.add(66 + ib) as usize;
        let g = |m: usize| IQ3S_GRID[*qs.add(m) as usize | (qh >> m & 1) << 8] as i32;
        let q3 = _mm256_setr_epi32(g(0), g(1), g(2), g(3), g(4), g(5), g(6), g(7));
        let s = sign_bytes(rd32(x.add(74 + 4 * ib)));
        let q8 = ld256(y.add(4 + 32 * ib));
        let p = _mm256_maddubs_epi16(q3, _mm256_sign_epi8(q8, s));
        let sc = *x.add(106 + ib / 2) as i32;
        let ls = 2 * (if ib % 2 == 0 { sc & 0xf } else { sc >> 4 }) + 1;
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16(ls as i16)));
    }
    (f16_ld(x), hsum_i32(sumi) as f32)
}
q8k_kernel!(iq3_s, 110, iq3_s_block, 1.0f32);

// ------------------------------------------------------------------------------ IQ1_S (50 B)

/// Grid values are -1/0/+1 bytes: `vpsignb` applies them to the activations exactly, then
/// `vpmaddubsw` with ones sums pairs. `qh[ib]` = 3 high index bits ×4 | scale << 12 | delta
/// sign << 15; the delta term uses the Q8_K `bsums`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn iq1_s_block(x: *const u8, y: *const u8) -> (f32, f32) {
    let mut sumi = _mm256_setzero_si256();
    let mut sumi1 = 0i32;
    for ib in 0..8 {
        let qs = x.add(2 + 4 * ib);
        let qh = rd16(x.add(34 + 2 * ib));
        let idx = |l: usize| *qs.add(l) as usize | (qh >> (3 * l) & 7) << 8;
        let g = grid4(&IQ1S_GRID, idx(0), idx(1), idx(2), idx(3));
        let q8 = ld256(y.add(4 + 32 * ib));
        let p = pair_sums(_mm256_sign_epi8(q8, g));
        let ls = 2 * (qh >> 12 & 7) as i32 + 1;
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16(ls as i16)));
        let bs = rd16(y.add(260 + 4 * ib)) as i16 as i32 + rd16(y.add(262 + 4 * ib)) as i16 as i32;
        let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
        sumi1 += ls * delta * bs;
    }
    let s = hsum_i32(sumi) as f32 + IQ1S_DELTA * sumi1 as f32;
    (f16_ld(x), s)
}
q8k_kernel!(iq1_s, 50, iq1_s_block, 1.0f32);

// ------------------------------------------------------------------------------ IQ1_M (56 B)

/// As IQ1_S, but 3-bit scales per 16 packed into `scales` (whose top nibbles form the f16
/// super-scale) and one delta sign per 8 (bits 3 and 7 of `qh`), applied through a ±1 vector.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn iq1_m_block(x: *const u8, y: *const u8) -> (f32, f32) {
    let sc = [
        rd16(x.add(48)),
        rd16(x.add(50)),
        rd16(x.add(52)),
        rd16(x.add(54)),
    ];
    let dbits =
        (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    let d = half::f16::from_bits(dbits as u16).to_f32();
    const PLUS: u64 = 0x0101010101010101;
    let dsign = |b: usize| if b != 0 { u64::MAX } else { PLUS } as i64;
    let mut sum1 = _mm256_setzero_si256();
    let mut sum2 = _mm256_setzero_si256();
    for ib in 0..8 {
        let qs = x.add(4 * ib);
        let (h0, h1) = (*x.add(32 + 2 * ib) as usize, *x.add(33 + 2 * ib) as usize);
        let g = grid4(
            &IQ1S_GRID,
            *qs as usize | (h0 << 8) & 0x700,
            *qs.add(1) as usize | (h0 << 4) & 0x700,
            *qs.add(2) as usize | (h1 << 8) & 0x700,
            *qs.add(3) as usize | (h1 << 4) & 0x700,
        );
        let dv = _mm256_set_epi64x(
            dsign(h1 & 0x80),
            dsign(h1 & 0x08),
            dsign(h0 & 0x80),
            dsign(h0 & 0x08),
        );
        let q8 = ld256(y.add(4 + 32 * ib));
        let s = sc[ib / 2] >> (6 * (ib % 2));
        let ls = scale_pair(2 * (s & 7) as i32 + 1, 2 * (s >> 3 & 7) as i32 + 1);
        let p1 = pair_sums(_mm256_sign_epi8(q8, g));
        let p2 = pair_sums(_mm256_sign_epi8(q8, dv));
        sum1 = _mm256_add_epi32(sum1, _mm256_madd_epi16(p1, ls));
        sum2 = _mm256_add_epi32(sum2, _mm256_madd_epi16(p2, ls));
    }
    let s = hsum_i32(sum1) as f32 + IQ1M_DELTA * hsum_i32(sum2) as f32;
    (d, s)
}
q8k_kernel!(iq1_m, 56, iq1_m_block, 1.0f32);

// ------------------------------------------------------------------------------ TQ1_0 (54 B)

/// Bytes × 3 (mod 256): the next base-3 digit moves to the top.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul3(v: __m256i) -> __m256i {
    _mm256_add_epi8(v, _mm256_add_epi8(v, v))
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul3_128(v: __m128i) -> __m128i {
    _mm_add_epi8(v, _mm_add_epi8(v, v))
}

/// Per byte q: the trit `(q · 3) >> 8` (0, 1 or 2), via 16-bit products of the even and odd
/// bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn trits(v: __m256i) -> __m256i {
    let three = _mm256_set1_epi16(3);
    let lo = _mm256_and_si256(v, _mm256_set1_epi16(0x00ff));
    let hi = _mm256_srli_epi16(v, 8);
    let tl = _mm256_srli_epi16(_mm256_mullo_epi16(lo, three), 8);
    let th = _mm256_and_si256(
        _mm256_mullo_epi16(hi, three),
        _mm256_set1_epi16(0xff00u16 as i16),
    );
    _mm256_or_si256(tl, th)
}

/// Σ trit·a over 32 lanes → 8 × i32 (activation bytes at `y + 4 + off`).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot_trits(t: __m256i, y: *const u8, off: usize) -> __m256i {
    _mm256_madd_epi16(
        _mm256_maddubs_epi16(t, ld256(y.add(4 + off))),
        _mm256_set1_epi16(1),
    )
}

/// Five trits per byte in base-3 fixed point: `qs[0..32]` → elements 32n + m, `qs[32..48]`
/// → 160 + 16n + m, `qh[0..4]` (four trits each) → 240 + 4n + j. Trits 0..2 multiply the
/// activations unsigned; the −1 offset comes off through Σ bsums.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tq1_0_block(x: *const u8, y: *const u8) -> (f32, f32) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut v = ld256(x);
    for n in 0..5 {
        acc = _mm256_add_epi32(acc, dot_trits(trits(v), y, 32 * n));
        v = mul3(v);
    }
    let b1 = _mm_loadu_si128(x.add(32) as *const __m128i);
    let b3 = mul3_128(b1);
    let b9 = mul3_128(b3);
    let b27 = mul3_128(b9);
    let b81 = mul3_128(b27);
    let h1 = _mm_set1_epi32(rd32(x.add(48)) as i32);
    let h3 = mul3_128(h1);
    let h9 = mul3_128(h3);
    let h27 = mul3_128(h9);
    // Dword k of the qh vector = the four qh bytes × 3^k: elements 240 + 4k + j.
    let h = _mm_blend_epi32::<0b1000>(
        _mm_blend_epi32::<0b0100>(_mm_blend_epi32::<0b0010>(h1, h3), h9),
        h27,
    );
    acc = _mm256_add_epi32(acc, dot_trits(trits(_mm256_set_m128i(b3, b1)), y, 160));
    acc = _mm256_add_epi32(acc, dot_trits(trits(_mm256_set_m128i(b27, b9)), y, 192));
    acc = _mm256_add_epi32(acc, dot_trits(trits(_mm256_set_m128i(h, b81)), y, 224));
    let bsum = _mm256_madd_epi16(ld256(y.add(260)), ones);
    acc = _mm256_sub_epi32(acc, bsum);
    (f16_ld(x.add(52)), hsum_i32(acc) as f32)
}
q8k_kernel!(tq1_0, 54, tq1_0_block, 1.0f32);

/// The AVX2 kernel for `ty` (also used at the AVX-512 level without a 512-bit one), where one
/// exists.
pub(crate) fn dot(ty: GgmlType) -> Option<crate::VecDotFn> {
    // SAFETY (all closures): only reachable after the caller checked AVX2 support.
    Some(match ty {
        GgmlType::IQ2_XS => |n, w, a| unsafe { iq2_xs(n, w, a) },
        GgmlType::IQ2_S => |n, w, a| unsafe { iq2_s(n, w, a) },
        GgmlType::IQ3_S => |n, w, a| unsafe { iq3_s(n, w, a) },
        GgmlType::IQ1_S => |n, w, a| unsafe { iq1_s(n, w, a) },
        GgmlType::IQ1_M => |n, w, a| unsafe { iq1_m(n, w, a) },
        GgmlType::TQ1_0 => |n, w, a| unsafe { tq1_0(n, w, a) },
        _ => return None,
    })
}
