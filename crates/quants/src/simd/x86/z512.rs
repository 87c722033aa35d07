//! Genuine 512-bit AVX-512 kernels (F/BW/VL + VNNI): two weight blocks (legacy types) or one
//! 64-element chunk (K-quants) per `zmm` op, u8×i8 products with `vpdpbusd`, scale-weighted
//! i16 sums with `vpdpwssd`, and 4-row variants that share every activation load and
//! activation-only correction term across the rows.
//!
//! The legacy kernels walk pairs of blocks; an odd last block goes to the 256-bit VNNI kernels
//! of `super::avx512`. Integer block sums are exact; only the f32 accumulation order differs
//! from the scalar references in the family modules (their twins/oracles). The f32 order is
//! exactly that of the GEMM tiles (`super::tile`) for every row the tiles support, so a
//! product does not depend on which path computes it (batch invariance, tests/a_tile_props.rs).
//!
//! Q2_K takes 64 two-bit quants per `zmm` (the same 32 bytes at two shifts); it has no GEMM
//! tile, and its single- and 4-row entries share one body, so rows agree bit for bit across
//! paths. F16 converts 16 halves per `vcvtph2ps`; BF16 uses AVX512_BF16 `vdpbf16ps` (32 pairs
//! per op) where the CPU has it (checked apart from the level), else the 256-bit kernel.
//!
//! Safety: every `unsafe fn` needs AVX-512 F/BW/VL/VNNI (plus AVX2/FMA/F16C); they are only
//! reachable through `dot`/`rows4`, which `super::super::dot_fn_at` / `rows4_fn_at` hand out
//! after checking the CPU. Each public kernel asserts slice lengths before any raw load.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use super::{check, DotFn, Rows4Fn};
use crate::GgmlType;
use std::arch::x86_64::*;

/// Bytes ahead of the current weight pointer to prefetch. Far ahead on purpose: a thread walks
/// contiguous rows, so 16 KiB lands in the rows it takes next and covers DRAM latency on 4 row
/// streams. Measured (benches/a_matvec.rs `mem`, 1 GiB, one core): the 4-bit kernels went from
/// ~52% to ~75% of the streaming read rate when this went from 1 KiB to 8–32 KiB, and tg128 of
/// the real models rose 13–35%.
pub(super) const PF: usize = 16384;

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rd32(p: *const u8) -> i32 {
    (p as *const i32).read_unaligned()
}

/// 32 bytes at `p0` then 32 bytes at `p1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn ld2(p0: *const u8, p1: *const u8) -> __m512i {
    let a = _mm256_loadu_si256(p0 as *const __m256i);
    let b = _mm256_loadu_si256(p1 as *const __m256i);
    _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1)
}

/// Two 16-byte nibble arrays -> 64 bytes [lo(p0), hi(p0), lo(p1), hi(p1)] (16 each), i.e. the
/// 32 quants of block 0 then the 32 quants of block 1 in element order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nib2(p0: *const u8, p1: *const u8) -> __m512i {
    let a = _mm256_broadcastsi128_si256(_mm_loadu_si128(p0 as *const __m128i));
    let b = _mm256_broadcastsi128_si256(_mm_loadu_si128(p1 as *const __m128i));
    let v = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    let v = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    _mm512_and_si512(v, _mm512_set1_epi8(0x0f))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn pf(p: *const u8) {
    _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum128(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

// ------------------------------------------------------------------ legacy types (32-blocks)
//
// ggml's evaluation order (`ggml_vec_dot_q4_1_q8_1` etc., x86 AVX2, llama.cpp 0c1e570): per
// output 8 f32 lanes, one fma per 32-block of `d·dy` × the block's eight 4-element i32 sums;
// for types with a min a scalar `summs = fma(m, s, summs)` per block; the result is
// `hsum_float_8(acc) + summs`. Matching it bit for bit is what makes our logits equal
// llama.cpp's (SmolLM2 Q4_1: top-1 log-probabilities within 2e-4 at every step instead of
// 0.5). A `zmm` holds two outputs (two rows here, two columns in the GEMM tiles,
// `super::tile`): each output's lanes see exactly ggml's operations, so every path computes
// the same bits (batch invariance, tests/a_tile_props.rs).

/// Horizontal sum of 16 lanes in one fixed order, shared with the GEMM tiles (the order of
/// `_mm512_reduce_add_ps` is the compiler's business).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum512(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    let s = _mm256_add_ps(lo, hi);
    hsum128(_mm_add_ps(
        _mm256_castps256_ps128(s),
        _mm256_extractf128_ps(s, 1),
    ))
}

/// Horizontal sum of 8 lanes in ggml's `hsum_float_8` order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum256(v: __m256) -> f32 {
    hsum128(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps(v, 1),
    ))
}

/// `hsum_float_8` of both halves of a two-output accumulator.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum_halves(v: __m512) -> [f32; 2] {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    [hsum256(_mm512_castps512_ps256(v)), hsum256(hi)]
}

/// The first four bytes (`d` and the f16 after it) of the blocks at four pointers as f32:
/// [d0, e0, .., d3, e3].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn h4x2p(p: [*const u8; 4]) -> __m256 {
    _mm256_cvtph_ps(_mm_setr_epi32(
        rd32(p[0]),
        rd32(p[1]),
        rd32(p[2]),
        rd32(p[3]),
    ))
}

/// Q5 high bits of two blocks (`qh` at `p0` and `p1`) as a 64-lane byte mask.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn qh2(p0: *const u8, p1: *const u8) -> u64 {
    let a = (p0 as *const u32).read_unaligned() as u64;
    let b = (p1 as *const u32).read_unaligned() as u64;
    a | b << 32
}

/// 32 bytes at `p` in both halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn bcast32(p: *const u8) -> __m512i {
    _mm512_broadcast_i64x4(_mm256_loadu_si256(p as *const __m256i))
}

/// A legacy 4-row body over `nb` blocks in ggml's order: `$wsz`/`$asz` block bytes, `$aq`
/// offset of the activation quants, `$min` whether the type has a min, `$off` the u8 offset of
/// the weight quants (their i8 value is `q − off`, folded in as `−off·Σy` per 4-group);
/// `$wq` the 64 u8 quants of the blocks at `$x0` (low half) and `$x1` (high half).
macro_rules! legacy_body {
    ($name:ident, $wsz:expr, $asz:expr, $aq:expr, $min:expr, $off:expr,
     |$x0:ident, $x1:ident| $wq:expr) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name(nb: usize, x: [*const u8; 4], y: *const u8) -> [f32; 4] {
            let z = _mm512_setzero_si512();
            let mut acc = [_mm512_setzero_ps(); 2];
            // Odd lanes: each row's `summs` (m·s per block, one rounding each).
            let mut summs = _mm256_setzero_ps();
            // Lane pairs [d_r0, d_r1] and [d_r2, d_r3] of `xd · dy`, 8 lanes each.
            let ix0 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_set1_epi32(0)),
                _mm256_set1_epi32(2),
                1,
            );
            let ix1 = _mm512_add_epi32(ix0, _mm512_set1_epi32(4));
            for i in 0..nb {
                let yb = y.add(i * $asz);
                let yv = bcast32(yb.add($aq));
                let c = if $off != 0 {
                    let o = _mm512_set1_epi8($off as u8 as i8);
                    _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, o, yv))
                } else {
                    z
                };
                let xb = [
                    x[0].add(i * $wsz),
                    x[1].add(i * $wsz),
                    x[2].add(i * $wsz),
                    x[3].add(i * $wsz),
                ];
                let xd = h4x2p(xb);
                let dd = _mm512_castps256_ps512(_mm256_mul_ps(xd, super::f16x8(yb)));
                if $min {
                    summs = _mm256_mask3_fmadd_ps(xd, super::f16x8(yb.add(2)), summs, 0xAA);
                }
                for (p, ix) in [(0, ix0), (1, ix1)] {
                    let $x0 = xb[2 * p];
                    let $x1 = xb[2 * p + 1];
                    if i % 4 == 0 {
                        pf($x0.wrapping_add(PF));
                        pf($x0.wrapping_add(PF + 64));
                        pf($x1.wrapping_add(PF));
                        pf($x1.wrapping_add(PF + 64));
                    }
                    let si = _mm512_dpbusd_epi32(c, $wq, yv);
                    acc[p] = _mm512_fmadd_ps(
                        _mm512_permutexvar_ps(ix, dd),
                        _mm512_cvtepi32_ps(si),
                        acc[p],
                    );
                }
            }
            let mut ms = [0f32; 8];
            _mm256_storeu_ps(ms.as_mut_ptr(), summs);
            let [a0, a1] = hsum_halves(acc[0]);
            let [a2, a3] = hsum_halves(acc[1]);
            if $min {
                [a0 + ms[1], a1 + ms[3], a2 + ms[5], a3 + ms[7]]
            } else {
                [a0, a1, a2, a3]
            }
        }
    };
}

legacy_body!(q4_0_n, 18, 34, 2, false, 8, |x0, x1| nib2(
    x0.add(2),
    x1.add(2)
));
legacy_body!(q4_1_n, 20, 36, 4, true, 0, |x0, x1| nib2(
    x0.add(4),
    x1.add(4)
));
legacy_body!(q5_0_n, 22, 34, 2, false, 16, |x0, x1| {
    let q = nib2(x0.add(6), x1.add(6));
    _mm512_mask_add_epi8(q, qh2(x0.add(2), x1.add(2)), q, _mm512_set1_epi8(16))
});
legacy_body!(q5_1_n, 24, 36, 4, true, 0, |x0, x1| {
    let q = nib2(x0.add(8), x1.add(8));
    _mm512_mask_add_epi8(q, qh2(x0.add(4), x1.add(4)), q, _mm512_set1_epi8(16))
});
// (x + 128) as u8 · y − 128·Σy: the same exact i32 sums as ggml's signed dot.
legacy_body!(q8_0_n, 34, 34, 2, false, 128, |x0, x1| _mm512_xor_si512(
    ld2(x0.add(2), x1.add(2)),
    _mm512_set1_epi8(-128)
));

/// Single- and 4-row entries: one row is ggml's 256-bit kernel itself (`super::avx512`, VNNI),
/// four rows the 512-bit body above; both give ggml's bits.
macro_rules! legacy_entries {
    ($one:ident, $four:ident, $body:ident, $one256:path, $bs:expr, $wsz:expr, $asz:expr) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub unsafe fn $one(n: usize, w: &[u8], a: &[u8]) -> f32 {
            $one256(n, w, a)
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub unsafe fn $four(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
            let mut nb = 0;
            for r in w {
                nb = check(n, r, a, $bs, $wsz, $asz);
            }
            let ptrs = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
            $body(nb, ptrs, a.as_ptr())
        }
    };
}

legacy_entries!(q4_0, q4_0_x4, q4_0_n, super::avx512::q4_0, 32, 18, 34);
legacy_entries!(q4_1, q4_1_x4, q4_1_n, super::avx512::q4_1, 32, 20, 36);
legacy_entries!(q5_0, q5_0_x4, q5_0_n, super::avx512::q5_0, 32, 22, 34);
legacy_entries!(q5_1, q5_1_x4, q5_1_n, super::avx512::q5_1, 32, 24, 36);
legacy_entries!(q8_0, q8_0_x4, q8_0_n, super::avx512::q8_0, 32, 34, 34);

// ------------------------------------------------------------------ K-quants (256-blocks)

/// ggml's Q4_K/Q5_K scale unpack: 12 bytes -> bytes 0..8 = 6-bit scales, 8..16 = mins.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k4_unpack(p: *const u8) -> __m128i {
    const KM1: u32 = 0x3f3f3f3f;
    const KM2: u32 = 0x0f0f0f0f;
    const KM3: u32 = 0x03030303;
    let u0 = (p as *const u32).read_unaligned();
    let u1 = (p.add(4) as *const u32).read_unaligned();
    let u2 = (p.add(8) as *const u32).read_unaligned();
    let t3 = ((u2 >> 4) & KM2) | (((u1 >> 6) & KM3) << 4);
    let t2 = u1 & KM1;
    let t1 = (u2 & KM2) | (((u0 >> 6) & KM3) << 4);
    let t0 = u0 & KM1;
    _mm_setr_epi32(t0 as i32, t1 as i32, t2 as i32, t3 as i32)
}

/// i16 lanes: [v[a] ×16, v[b] ×16].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn bcast_w2(v: __m512i, a: i16, b: i16) -> __m512i {
    let idx = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set1_epi16(a)),
        _mm256_set1_epi16(b),
        1,
    );
    _mm512_permutexvar_epi16(idx, v)
}

/// i16 lanes: [v[b] ×8, v[b+1] ×8, v[b+2] ×8, v[b+3] ×8].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn bcast_w4(v: __m512i, b: i16) -> __m512i {
    let lo = _mm256_set_m128i(_mm_set1_epi16(b + 1), _mm_set1_epi16(b));
    let hi = _mm256_set_m128i(_mm_set1_epi16(b + 3), _mm_set1_epi16(b + 2));
    let idx = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    _mm512_permutexvar_epi16(idx, v)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn ld512(p: *const u8) -> __m512i {
    _mm512_loadu_si512(p as *const _)
}

/// Σ of 4 i32 lanes (exact, wrapping as the hardware does).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum_i32_128(v: __m128i) -> i32 {
    let s = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Σ of 16 i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum_i32_512(v: __m512i) -> i32 {
    let s = fold8(v);
    hsum_i32_128(_mm_add_epi32(
        _mm256_castsi256_si128(s),
        _mm256_extracti128_si256(s, 1),
    ))
}

/// i32 lanes `k` + `k + 8`: 16 lanes folded to 8.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn fold8(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1))
}

// The K-quant float order is ggml's (llama.cpp 0c1e570, x86): Q4_K as its repacked 8×8
// `ggml_gemv/gemm_q4_K_8x8_q8_K` (the path llama.cpp takes for every Q4_K matrix with a row
// count divisible by 8), per output one exact i32 per superblock for the scaled dot and one
// for Σ min·bsum, `acc = fma(S, d·dy, acc)`, `accm = fma(M, dmin·dy, accm)`, result
// `acc − accm`; Q6_K as `ggml_vec_dot_q6_K_q8_K` (AVX2): 8 i32 lanes per superblock (lane `k`
// = elements `32c + 4k..+4` of every 32-chunk `c`, minus 32·Σ scale·bsum of sub-blocks `2k`,
// `2k + 1`), one 8-lane fma by `d·dy`, `hsum_float_8` last. The integer lanes are exact, so
// only this partition and the float sequence matter. Q5_K (no real model of ours uses it)
// shares Q4_K's arithmetic.

/// Q4_K × Q8_K, `R` rows.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [0f32; R];
    let mut accm = [0f32; R];
    for i in 0..nb {
        let yb = y.add(i * 292);
        let yd = (yb as *const f32).read_unaligned();
        let yq = [
            ld512(yb.add(4)),
            ld512(yb.add(68)),
            ld512(yb.add(132)),
            ld512(yb.add(196)),
        ];
        let bs = _mm256_loadu_si256(yb.add(260) as *const __m256i);
        // Σ over each 32-element sub-block, i16 (|.| <= 4064).
        let bs8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        for r in 0..R {
            let xb = x[r].add(i * 144);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            pf(xb.wrapping_add(PF + 128));
            let sm = _mm256_cvtepu8_epi16(k4_unpack(xb.add(4)));
            let mins = _mm256_extracti128_si256(sm, 1);
            let sc = _mm512_castsi256_si512(sm);
            // Σ min·bsum over the superblock, exact.
            let mi = hsum_i32_128(_mm_madd_epi16(bs8, mins));
            let d = _mm_cvtph_ps(_mm_cvtsi32_si128(rd32(xb)));
            // d·yd in lane 0, dmin·yd in lane 1.
            let d = _mm_mul_ps(d, _mm_set1_ps(yd));
            accm[r] = super::fma_ss(mi as f32, _mm_cvtss_f32(_mm_movehdup_ps(d)), accm[r]);
            let mut sumi = _mm512_setzero_si512();
            for c in 0..4 {
                let q = _mm256_loadu_si256(xb.add(16 + 32 * c) as *const __m256i);
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                let q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                let p = _mm512_maddubs_epi16(q, yq[c]);
                let s = bcast_w2(sc, 2 * c as i16, 2 * c as i16 + 1);
                sumi = _mm512_dpwssd_epi32(sumi, p, s);
            }
            acc[r] = super::fma_ss(hsum_i32_512(sumi) as f32, _mm_cvtss_f32(d), acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = acc[r] - accm[r];
    }
    out
}

/// Q5_K × Q8_K, `R` rows: Q4_K plus the fifth bit, set per byte through a mask.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_k_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [0f32; R];
    let mut accm = [0f32; R];
    for i in 0..nb {
        let yb = y.add(i * 292);
        let yd = (yb as *const f32).read_unaligned();
        let yq = [
            ld512(yb.add(4)),
            ld512(yb.add(68)),
            ld512(yb.add(132)),
            ld512(yb.add(196)),
        ];
        let bs = _mm256_loadu_si256(yb.add(260) as *const __m256i);
        // Σ over each 32-element sub-block, i16 (|.| <= 4064).
        let bs8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        for r in 0..R {
            let xb = x[r].add(i * 176);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            pf(xb.wrapping_add(PF + 128));
            let sm = _mm256_cvtepu8_epi16(k4_unpack(xb.add(4)));
            let mins = _mm256_extracti128_si256(sm, 1);
            let sc = _mm512_castsi256_si512(sm);
            // Σ min·bsum over the superblock, exact.
            let mi = hsum_i32_128(_mm_madd_epi16(bs8, mins));
            let d = _mm_cvtph_ps(_mm_cvtsi32_si128(rd32(xb)));
            // d·yd in lane 0, dmin·yd in lane 1.
            let d = _mm_mul_ps(d, _mm_set1_ps(yd));
            accm[r] = super::fma_ss(mi as f32, _mm_cvtss_f32(_mm_movehdup_ps(d)), accm[r]);
            let hb = _mm256_loadu_si256(xb.add(16) as *const __m256i);
            let hb = _mm512_inserti64x4(_mm512_castsi256_si512(hb), hb, 1);
            let mut sumi = _mm512_setzero_si512();
            for c in 0..4 {
                let q = _mm256_loadu_si256(xb.add(48 + 32 * c) as *const __m256i);
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                let q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                // Bit 2c of qh is the fifth bit of sub-block 2c, bit 2c+1 of sub-block 2c+1.
                let bit = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_set1_epi8(1 << (2 * c))),
                    _mm256_set1_epi8(1 << (2 * c + 1)),
                    1,
                );
                let k = _mm512_test_epi8_mask(hb, bit);
                let q = _mm512_mask_add_epi8(q, k, q, _mm512_set1_epi8(16));
                let p = _mm512_maddubs_epi16(q, yq[c]);
                let s = bcast_w2(sc, 2 * c as i16, 2 * c as i16 + 1);
                sumi = _mm512_dpwssd_epi32(sumi, p, s);
            }
            acc[r] = super::fma_ss(hsum_i32_512(sumi) as f32, _mm_cvtss_f32(d), acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = acc[r] - accm[r];
    }
    out
}

/// Q6_K × Q8_K, `R` rows.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let m4 = _mm512_set1_epi8(0x0f);
    let m30 = _mm512_set1_epi8(0x30);
    let mut acc = [_mm256_setzero_ps(); R];
    for i in 0..nb {
        let yb = y.add(i * 292);
        let yd = (yb as *const f32).read_unaligned();
        let yq = [
            ld512(yb.add(4)),
            ld512(yb.add(68)),
            ld512(yb.add(132)),
            ld512(yb.add(196)),
        ];
        let bs = _mm256_loadu_si256(yb.add(260) as *const __m256i);
        for r in 0..R {
            let xb = x[r].add(i * 210);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            pf(xb.wrapping_add(PF + 128));
            pf(xb.wrapping_add(PF + 192));
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(xb.add(192) as *const __m128i));
            // 32·Σ sc_j·bsum_j: the −32 offset of every quant, taken out once.
            let corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
            let sc = _mm512_castsi256_si512(sc16);
            let mut sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(corr));
            for j in 0..2 {
                let b = ld512(xb.add(64 * j));
                let bh = _mm256_loadu_si256(xb.add(128 + 32 * j) as *const __m256i);
                let bh =
                    _mm512_inserti64x4(_mm512_castsi256_si512(bh), _mm256_srli_epi16(bh, 2), 1);
                let qa = _mm512_or_si512(
                    _mm512_and_si512(b, m4),
                    _mm512_and_si512(_mm512_slli_epi16(bh, 4), m30),
                );
                let qb = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16(b, 4), m4),
                    _mm512_and_si512(bh, m30),
                );
                let pa = _mm512_maddubs_epi16(qa, yq[2 * j]);
                let pb = _mm512_maddubs_epi16(qb, yq[2 * j + 1]);
                sumi = _mm512_dpwssd_epi32(sumi, pa, bcast_w4(sc, 8 * j as i16));
                sumi = _mm512_dpwssd_epi32(sumi, pb, bcast_w4(sc, 8 * j as i16 + 4));
            }
            let d = super::f16_ld(xb.add(208)) * yd;
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fold8(sumi)), acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = hsum256(acc[r]);
    }
    out
}

/// Q2_K × Q8_K, `R` rows: 64 two-bit quants per `zmm` (two shifts of the same 32 bytes), one
/// 4-bit scale per 16 through `vpdpwssd`, the mins (Σ bsum·min) per row with one `vpmaddwd`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q2_k_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let m3 = _mm512_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0f);
    // Lanes 0..32 shift by 2·s0, lanes 32..64 by 2·s0 + 2 (s0 = 0 for even c, 2 for odd).
    let sh = [
        _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2),
        _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6),
    ];
    let mut acc = [_mm512_setzero_ps(); R];
    let mut accm = [0f32; R];
    for i in 0..nb {
        let yb = y.add(i * 292);
        let yd = (yb as *const f32).read_unaligned();
        let yq = [
            ld512(yb.add(4)),
            ld512(yb.add(68)),
            ld512(yb.add(132)),
            ld512(yb.add(196)),
        ];
        let bs = _mm256_loadu_si256(yb.add(260) as *const __m256i);
        for r in 0..R {
            let xb = x[r].add(i * 84);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            let scb = _mm_loadu_si128(xb as *const __m128i);
            let sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(scb, m4)));
            let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scb, 4), m4));
            let summ = hsum_i32_256(_mm256_madd_epi16(bs, mins));
            let mut sumi = _mm512_setzero_si512();
            for c in 0..4 {
                let q = _mm256_loadu_si256(xb.add(16 + 32 * (c / 2)) as *const __m256i);
                let q = _mm512_inserti64x4(_mm512_castsi256_si512(q), q, 1);
                let q = _mm512_and_si512(_mm512_srlv_epi64(q, sh[c % 2]), m3);
                let p = _mm512_maddubs_epi16(q, yq[c]);
                sumi = _mm512_dpwssd_epi32(sumi, p, bcast_w4(sc, 4 * c as i16));
            }
            let dall = super::f16_ld(xb.add(80)) * yd;
            let dmin = super::f16_ld(xb.add(82)) * yd;
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(dall), _mm512_cvtepi32_ps(sumi), acc[r]);
            accm[r] += dmin * summ as f32;
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = hsum512(acc[r]) - accm[r];
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn hsum_i32_256(v: __m256i) -> i32 {
    hsum_i32_128(_mm_add_epi32(
        _mm256_castsi256_si128(v),
        _mm256_extracti128_si256(v, 1),
    ))
}

macro_rules! kquant_entries {
    ($one:ident, $four:ident, $body:ident, $wsz:expr) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub unsafe fn $one(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = check(n, w, a, 256, $wsz, 292);
            $body::<1>(nb, [w.as_ptr()], a.as_ptr())[0]
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub unsafe fn $four(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
            let mut nb = 0;
            for r in w {
                nb = check(n, r, a, 256, $wsz, 292);
            }
            let ptrs = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
            $body::<4>(nb, ptrs, a.as_ptr())
        }
    };
}

kquant_entries!(q2_k, q2_k_x4, q2_k_n, 84);
kquant_entries!(q4_k, q4_k_x4, q4_k_n, 144);
kquant_entries!(q5_k, q5_k_x4, q5_k_n, 176);
kquant_entries!(q6_k, q6_k_x4, q6_k_n, 210);

// ------------------------------------------------------------------ floats (F16, BF16)

/// The shared float skeleton: `$step` elements per iteration in four 512-bit accumulators,
/// `$acc(acc, x, y)` folding the `$step / 4` elements at byte pointers `x`, `y` into one; the
/// tail (< `$step` elements) goes to the 256-bit kernel `$tail`. Elements are 2 bytes.
macro_rules! float_dot {
    ($name:ident, $feat:literal, $step:expr, $acc:ident, $tail:path) => {
        #[target_feature(enable = $feat)]
        pub unsafe fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            assert!(
                w.len() >= 2 * n && a.len() >= 2 * n,
                "vec_dot: buffers shorter than n"
            );
            let (x, y) = (w.as_ptr(), a.as_ptr());
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            while i + $step <= n {
                for k in 0..4 {
                    let o = 2 * (i + k * ($step / 4));
                    acc[k] = $acc(acc[k], x.add(o), y.add(o));
                }
                i += $step;
            }
            let s = hsum512(_mm512_add_ps(
                _mm512_add_ps(acc[0], acc[1]),
                _mm512_add_ps(acc[2], acc[3]),
            ));
            if i < n {
                s + $tail(n - i, &w[2 * i..], &a[2 * i..])
            } else {
                s
            }
        }
    };
}

/// acc + x·y over 16 f16 pairs (converted exactly to f32, FMA).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn f16_acc16(acc: __m512, x: *const u8, y: *const u8) -> __m512 {
    let xv = _mm512_cvtph_ps(_mm256_loadu_si256(x as *const __m256i));
    let yv = _mm512_cvtph_ps(_mm256_loadu_si256(y as *const __m256i));
    _mm512_fmadd_ps(xv, yv, acc)
}

/// acc + Σ x·y over 32 bf16 pairs with `vdpbf16ps` (products exact in f32; the CPU flushes
/// bf16 subnormal inputs to zero, as ggml's AVX512_BF16 path does).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")]
unsafe fn bf16_acc32(acc: __m512, x: *const u8, y: *const u8) -> __m512 {
    let xv: __m512bh = std::mem::transmute(ld512(x));
    let yv: __m512bh = std::mem::transmute(ld512(y));
    _mm512_dpbf16_ps(acc, xv, yv)
}

float_dot!(
    f16,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    64,
    f16_acc16,
    super::avx512::f16
);
float_dot!(
    bf16_dp,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16",
    128,
    bf16_acc32,
    super::avx512::bf16
);

/// Whether the CPU has AVX512_BF16 (`vdpbf16ps`), on top of the AVX-512 level.
fn has_bf16() -> bool {
    static B: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *B.get_or_init(|| is_x86_feature_detected!("avx512bf16"))
}

// ------------------------------------------------------------------ tables

/// The 512-bit kernel for `ty`, where one exists (the rest of the AVX-512 level falls back to
/// the 256-bit VNNI kernels).
pub(in crate::simd) fn dot(ty: GgmlType) -> Option<DotFn> {
    // SAFETY (all closures): only reachable after the caller checked CPU support.
    Some(match ty {
        GgmlType::Q4_0 => |n, w, a| unsafe { q4_0(n, w, a) },
        GgmlType::Q4_1 => |n, w, a| unsafe { q4_1(n, w, a) },
        GgmlType::Q5_0 => |n, w, a| unsafe { q5_0(n, w, a) },
        GgmlType::Q5_1 => |n, w, a| unsafe { q5_1(n, w, a) },
        GgmlType::Q8_0 => |n, w, a| unsafe { q8_0(n, w, a) },
        GgmlType::Q2_K => |n, w, a| unsafe { q2_k(n, w, a) },
        GgmlType::Q4_K => |n, w, a| unsafe { q4_k(n, w, a) },
        GgmlType::Q5_K => |n, w, a| unsafe { q5_k(n, w, a) },
        GgmlType::Q6_K => |n, w, a| unsafe { q6_k(n, w, a) },
        GgmlType::F16 => |n, w, a| unsafe { f16(n, w, a) },
        // SAFETY: AVX512_BF16 checked here on top of the caller's AVX-512 check.
        GgmlType::BF16 if has_bf16() => |n, w, a| unsafe { bf16_dp(n, w, a) },
        _ => return None,
    })
}

/// The 512-bit 4-row kernel for `ty`, where one exists.
pub(in crate::simd) fn rows4(ty: GgmlType) -> Option<Rows4Fn> {
    // SAFETY: as above.
    Some(match ty {
        GgmlType::Q4_0 => |n, w, a| unsafe { q4_0_x4(n, w, a) },
        GgmlType::Q4_1 => |n, w, a| unsafe { q4_1_x4(n, w, a) },
        GgmlType::Q5_0 => |n, w, a| unsafe { q5_0_x4(n, w, a) },
        GgmlType::Q5_1 => |n, w, a| unsafe { q5_1_x4(n, w, a) },
        GgmlType::Q8_0 => |n, w, a| unsafe { q8_0_x4(n, w, a) },
        GgmlType::Q2_K => |n, w, a| unsafe { q2_k_x4(n, w, a) },
        GgmlType::Q4_K => |n, w, a| unsafe { q4_k_x4(n, w, a) },
        GgmlType::Q5_K => |n, w, a| unsafe { q5_k_x4(n, w, a) },
        GgmlType::Q6_K => |n, w, a| unsafe { q6_k_x4(n, w, a) },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    //! The 512-bit kernels (single and 4-row, every block count 1..=9 so both the 4-block body
    //! and the 256-bit tail run) against the scalar `vec_dot_ref`. Tolerance as in
    //! tests/a_simd_props.rs: 1e-4 · Σ|w_i·a_i| (f64, dequantized operands).
    use super::*;

    fn rnd(seed: &mut u64) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
    }

    /// F16 / BF16 512-bit kernels, odd lengths 1..=700 (tails below and above one 64/128 step)
    /// against `vec_dot_ref`; tolerance 1e-4 · Σ|x·y| + 1e-30 (f32 accumulation order only).
    #[test]
    fn z512_floats_match_ref() {
        if !(is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni")) {
            return;
        }
        let mut seed = 0x0bad_5eed_1234_5678u64;
        for ty in [GgmlType::F16, GgmlType::BF16] {
            let k = crate::kernels(ty).unwrap();
            let f = dot(ty).unwrap();
            for n in (1..=700usize).step_by(7).chain([64, 128, 256, 4096]) {
                let scale = [1e-3f32, 1.0, 300.0][n % 3];
                let x: Vec<f32> = (0..n).map(|_| rnd(&mut seed) * scale).collect();
                let y: Vec<f32> = (0..n).map(|_| rnd(&mut seed)).collect();
                let mut w = vec![0u8; 2 * n];
                let mut a = vec![0u8; 2 * n];
                crate::quantize_row(ty, &x, &mut w).unwrap();
                crate::quantize_row(ty, &y, &mut a).unwrap();
                let (mut xd, mut yd) = (vec![0f32; n], vec![0f32; n]);
                crate::dequantize_row(ty, &w, &mut xd).unwrap();
                crate::dequantize_row(ty, &a, &mut yd).unwrap();
                let mag: f64 = xd
                    .iter()
                    .zip(&yd)
                    .map(|(p, q)| (*p as f64 * *q as f64).abs())
                    .sum();
                let want = (k.vec_dot_ref)(n, &w, &a) as f64;
                let got = f(n, &w, &a) as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * mag + 1e-30,
                    "{ty:?} n={n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn z512_matches_ref() {
        if !(is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni")) {
            return;
        }
        let mut seed = 0x1234_5678_9abc_def1u64;
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::Q2_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ] {
            let k = crate::kernels(ty).unwrap();
            let bs = ty.block_size().max(k.vec_dot_type.block_size());
            for nb in 1..=9usize {
                let n = nb * bs;
                let mut rows = Vec::new();
                let mut deq = Vec::new();
                for _ in 0..4 {
                    let x: Vec<f32> = (0..n).map(|_| rnd(&mut seed)).collect();
                    let mut w = vec![0u8; crate::row_bytes(ty, n).unwrap()];
                    crate::quantize_row(ty, &x, &mut w).unwrap();
                    let mut d = vec![0f32; n];
                    crate::dequantize_row(ty, &w, &mut d).unwrap();
                    rows.push(w);
                    deq.push(d);
                }
                let y: Vec<f32> = (0..n).map(|_| rnd(&mut seed)).collect();
                let mut a = vec![0u8; crate::row_bytes(k.vec_dot_type, n).unwrap()];
                crate::quantize_row(k.vec_dot_type, &y, &mut a).unwrap();
                let mut ad = vec![0f32; n];
                crate::dequantize_row(k.vec_dot_type, &a, &mut ad).unwrap();
                let f1 = dot(ty).unwrap();
                let f4 = rows4(ty).unwrap();
                let got4 = f4(n, [&rows[0], &rows[1], &rows[2], &rows[3]], &a);
                for r in 0..4 {
                    let want = (k.vec_dot_ref)(n, &rows[r], &a) as f64;
                    let mag: f64 = deq[r]
                        .iter()
                        .zip(&ad)
                        .map(|(p, q)| (*p as f64 * *q as f64).abs())
                        .sum();
                    let tol = 1e-4 * mag + 1e-30;
                    let got = f1(n, &rows[r], &a) as f64;
                    assert!((got - want).abs() <= tol, "{ty:?} nb={nb}: {got} vs {want}");
                    let g4 = got4[r] as f64;
                    assert!(
                        (g4 - want).abs() <= tol,
                        "{ty:?} x4 nb={nb} r={r}: {g4} vs {want}"
                    );
                }
            }
        }
    }
}
