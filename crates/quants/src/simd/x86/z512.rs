//! Genuine 512-bit AVX-512 kernels (F/BW/VL + VNNI): two weight blocks (legacy types) or one
//! 64-element chunk (K-quants) per `zmm` op, u8×i8 products with `vpdpbusd`, scale-weighted
//! i16 sums with `vpdpwssd`, and 4-row variants that share every activation load and
//! activation-only correction term across the rows.
//!
//! The legacy kernels walk groups of four blocks; the remaining 0..=3 blocks go to the 256-bit
//! VNNI kernels of `super::avx512`. Integer block sums are exact; only the f32 accumulation
//! order differs from the scalar references in the family modules (their twins/oracles).
//!
//! Safety: every `unsafe fn` needs AVX-512 F/BW/VL/VNNI (plus AVX2/FMA/F16C); they are only
//! reachable through `dot`/`rows4`, which `super::super::dot_fn_at` / `rows4_fn_at` hand out
//! after checking the CPU. Each public kernel asserts slice lengths before any raw load.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use super::{check, DotFn, Rows4Fn};
use crate::GgmlType;
use std::arch::x86_64::*;

/// Bytes ahead of the current weight pointer to prefetch (a few KiB: several blocks ahead of
/// the hardware streamer on a cold row start).
const PF: usize = 1024;

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rd16(p: *const u8) -> u64 {
    (p as *const u16).read_unaligned() as u64
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rd32(p: *const u8) -> i32 {
    (p as *const i32).read_unaligned()
}

/// Four f16 at `p`, `p+s`, `p+2s`, `p+3s` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn h4(p: *const u8, s: usize) -> __m128 {
    let v = rd16(p) | rd16(p.add(s)) << 16 | rd16(p.add(2 * s)) << 32 | rd16(p.add(3 * s)) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(v as i64))
}

/// Four (f16, f16) pairs at stride `s` as 8 f32: [a0, b0, a1, b1, ...].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn h4x2(p: *const u8, s: usize) -> __m256 {
    _mm256_cvtph_ps(_mm_setr_epi32(
        rd32(p),
        rd32(p.add(s)),
        rd32(p.add(2 * s)),
        rd32(p.add(3 * s)),
    ))
}

/// 32 bytes at `p0` then 32 bytes at `p1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn ld2(p0: *const u8, p1: *const u8) -> __m512i {
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

/// Lanes 0..8 = v[a], lanes 8..16 = v[b].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn bcast2(v: __m512, a: i32, b: i32) -> __m512 {
    let idx = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set1_epi32(a)),
        _mm256_set1_epi32(b),
        1,
    );
    _mm512_permutexvar_ps(idx, v)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pf(p: *const u8) {
    _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn hsum128(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

// ------------------------------------------------------------------ legacy types (32-blocks)

/// Q4_0 × Q8_0 for `R` rows over the first `nb & !3` blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_0_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let e8 = _mm512_set1_epi8(8);
    let z = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut i = 0;
    while i + 4 <= nb {
        let yb = y.add(i * 34);
        let yd = h4(yb, 34);
        let y01 = ld2(yb.add(2), yb.add(36));
        let y23 = ld2(yb.add(70), yb.add(104));
        // -8·Σy per 4-byte group, shared by every row.
        let c01 = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, e8, y01));
        let c23 = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, e8, y23));
        for r in 0..R {
            let xb = x[r].add(i * 18);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            let dd = _mm512_castps128_ps512(_mm_mul_ps(h4(xb, 18), yd));
            let s01 = _mm512_dpbusd_epi32(c01, nib2(xb.add(2), xb.add(20)), y01);
            let s23 = _mm512_dpbusd_epi32(c23, nib2(xb.add(38), xb.add(56)), y23);
            acc[r][0] = _mm512_fmadd_ps(bcast2(dd, 0, 1), _mm512_cvtepi32_ps(s01), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(bcast2(dd, 2, 3), _mm512_cvtepi32_ps(s23), acc[r][1]);
        }
        i += 4;
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
    }
    out
}

/// Q4_1 × Q8_1 for `R` rows over the first `nb & !3` blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_1_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let z = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut accm = [_mm256_setzero_ps(); R];
    let mut i = 0;
    while i + 4 <= nb {
        let yb = y.add(i * 36);
        let yds = h4x2(yb, 36);
        let y01 = ld2(yb.add(4), yb.add(40));
        let y23 = ld2(yb.add(76), yb.add(112));
        for r in 0..R {
            let xb = x[r].add(i * 20);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            // [d·d, m·s] per block.
            let p = _mm256_mul_ps(h4x2(xb, 20), yds);
            accm[r] = _mm256_add_ps(accm[r], p);
            let p = _mm512_castps256_ps512(p);
            let s01 = _mm512_dpbusd_epi32(z, nib2(xb.add(4), xb.add(24)), y01);
            let s23 = _mm512_dpbusd_epi32(z, nib2(xb.add(44), xb.add(64)), y23);
            acc[r][0] = _mm512_fmadd_ps(bcast2(p, 0, 2), _mm512_cvtepi32_ps(s01), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(bcast2(p, 4, 6), _mm512_cvtepi32_ps(s23), acc[r][1]);
        }
        i += 4;
    }
    let mut out = [0f32; R];
    for r in 0..R {
        let mut m = [0f32; 8];
        _mm256_storeu_ps(m.as_mut_ptr(), accm[r]);
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]))
            + ((m[1] + m[3]) + (m[5] + m[7]));
    }
    out
}

/// Q5_0 × Q8_0 for `R` rows over the first `nb & !3` blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_0_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let e16 = _mm512_set1_epi8(16);
    let z = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut i = 0;
    while i + 4 <= nb {
        let yb = y.add(i * 34);
        let yd = h4(yb, 34);
        let y01 = ld2(yb.add(2), yb.add(36));
        let y23 = ld2(yb.add(70), yb.add(104));
        let c01 = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, e16, y01));
        let c23 = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, e16, y23));
        for r in 0..R {
            let xb = x[r].add(i * 22);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            let dd = _mm512_castps128_ps512(_mm_mul_ps(h4(xb, 22), yd));
            let q01 = nib2(xb.add(6), xb.add(28));
            let q01 = _mm512_mask_add_epi8(q01, qh2(xb), q01, e16);
            let q23 = nib2(xb.add(50), xb.add(72));
            let q23 = _mm512_mask_add_epi8(q23, qh2(xb.add(44)), q23, e16);
            let s01 = _mm512_dpbusd_epi32(c01, q01, y01);
            let s23 = _mm512_dpbusd_epi32(c23, q23, y23);
            acc[r][0] = _mm512_fmadd_ps(bcast2(dd, 0, 1), _mm512_cvtepi32_ps(s01), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(bcast2(dd, 2, 3), _mm512_cvtepi32_ps(s23), acc[r][1]);
        }
        i += 4;
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
    }
    out
}

/// The high-bit masks of two consecutive Q5_0 blocks at `p` as one 64-lane byte mask.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn qh2(p: *const u8) -> u64 {
    let a = (p.add(2) as *const u32).read_unaligned() as u64;
    let b = (p.add(24) as *const u32).read_unaligned() as u64;
    a | b << 32
}

/// i8·i8 per 4-byte group: |x| (u8) · (y with x's sign).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_i8(x: __m512i, y: __m512i) -> __m512i {
    let z = _mm512_setzero_si512();
    let sy = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), z, y);
    _mm512_dpbusd_epi32(z, _mm512_abs_epi8(x), sy)
}

/// Q8_0 × Q8_0 for `R` rows over the first `nb & !3` blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut i = 0;
    while i + 4 <= nb {
        let yb = y.add(i * 34);
        let yd = h4(yb, 34);
        let y01 = ld2(yb.add(2), yb.add(36));
        let y23 = ld2(yb.add(70), yb.add(104));
        for r in 0..R {
            let xb = x[r].add(i * 34);
            pf(xb.wrapping_add(PF));
            pf(xb.wrapping_add(PF + 64));
            pf(xb.wrapping_add(PF + 128));
            let dd = _mm512_castps128_ps512(_mm_mul_ps(h4(xb, 34), yd));
            let s01 = dot_i8(ld2(xb.add(2), xb.add(36)), y01);
            let s23 = dot_i8(ld2(xb.add(70), xb.add(104)), y23);
            acc[r][0] = _mm512_fmadd_ps(bcast2(dd, 0, 1), _mm512_cvtepi32_ps(s01), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(bcast2(dd, 2, 3), _mm512_cvtepi32_ps(s23), acc[r][1]);
        }
        i += 4;
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
    }
    out
}

/// Wrap an `R`-row group kernel into a single-row and a 4-row entry: the 512-bit body takes the
/// first `nb & !3` blocks, the 256-bit kernels of `super::avx512` the rest.
macro_rules! legacy_entries {
    ($one:ident, $four:ident, $body:ident, $tail1:path, $bs:expr, $wsz:expr, $asz:expr) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub unsafe fn $one(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = check(n, w, a, $bs, $wsz, $asz);
            let n4 = nb & !3;
            let [s] = $body::<1>(n4, [w.as_ptr()], a.as_ptr());
            if n4 < nb {
                s + $tail1((nb - n4) * $bs, &w[n4 * $wsz..], &a[n4 * $asz..])
            } else {
                s
            }
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub unsafe fn $four(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
            let mut nb = 0;
            for r in w {
                nb = check(n, r, a, $bs, $wsz, $asz);
            }
            let n4 = nb & !3;
            let ptrs = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
            let mut s = $body::<4>(n4, ptrs, a.as_ptr());
            if n4 < nb {
                for r in 0..4 {
                    s[r] += $tail1((nb - n4) * $bs, &w[r][n4 * $wsz..], &a[n4 * $asz..]);
                }
            }
            s
        }
    };
}

legacy_entries!(q4_0, q4_0_x4, q4_0_n, super::avx512::q4_0, 32, 18, 34);
legacy_entries!(q4_1, q4_1_x4, q4_1_n, super::avx512::q4_1, 32, 20, 36);
legacy_entries!(q5_0, q5_0_x4, q5_0_n, super::avx512::q5_0, 32, 22, 34);
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
unsafe fn bcast_w2(v: __m512i, a: i16, b: i16) -> __m512i {
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
unsafe fn bcast_w4(v: __m512i, b: i16) -> __m512i {
    let lo = _mm256_set_m128i(_mm_set1_epi16(b + 1), _mm_set1_epi16(b));
    let hi = _mm256_set_m128i(_mm_set1_epi16(b + 3), _mm_set1_epi16(b + 2));
    let idx = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    _mm512_permutexvar_epi16(idx, v)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn ld512(p: *const u8) -> __m512i {
    _mm512_loadu_si512(p as *const _)
}

/// Q4_K × Q8_K, `R` rows.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut accm = [_mm_setzero_ps(); R];
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
            let summ = _mm_cvtepi32_ps(_mm_madd_epi16(bs8, mins));
            let d = _mm_cvtph_ps(_mm_cvtsi32_si128(rd32(xb)));
            let d = _mm_mul_ps(d, _mm_set1_ps(yd));
            // d·yd in lane 0, dmin·yd in lane 1.
            accm[r] = _mm_fnmadd_ps(_mm_permute_ps(d, 0b01_01_01_01), summ, accm[r]);
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
            acc[r] = _mm512_fmadd_ps(
                _mm512_set1_ps(_mm_cvtss_f32(d)),
                _mm512_cvtepi32_ps(sumi),
                acc[r],
            );
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(acc[r]) + hsum128(accm[r]);
    }
    out
}

/// Q5_K × Q8_K, `R` rows: Q4_K plus the fifth bit, set per byte through a mask.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_k_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut accm = [_mm_setzero_ps(); R];
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
            let summ = _mm_cvtepi32_ps(_mm_madd_epi16(bs8, mins));
            let d = _mm_cvtph_ps(_mm_cvtsi32_si128(rd32(xb)));
            let d = _mm_mul_ps(d, _mm_set1_ps(yd));
            // d·yd in lane 0, dmin·yd in lane 1.
            accm[r] = _mm_fnmadd_ps(_mm_permute_ps(d, 0b01_01_01_01), summ, accm[r]);
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
            acc[r] = _mm512_fmadd_ps(
                _mm512_set1_ps(_mm_cvtss_f32(d)),
                _mm512_cvtepi32_ps(sumi),
                acc[r],
            );
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(acc[r]) + hsum128(accm[r]);
    }
    out
}

/// Q6_K × Q8_K, `R` rows.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k_n<const R: usize>(nb: usize, x: [*const u8; R], y: *const u8) -> [f32; R] {
    let m4 = _mm512_set1_epi8(0x0f);
    let m30 = _mm512_set1_epi8(0x30);
    let mut acc = [_mm512_setzero_ps(); R];
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
            let d = f16_to_f32(xb.add(208)) * yd;
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(acc[r]);
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn f16_to_f32(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(rd16(p) as i32)))
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

kquant_entries!(q4_k, q4_k_x4, q4_k_n, 144);
kquant_entries!(q5_k, q5_k_x4, q5_k_n, 176);
kquant_entries!(q6_k, q6_k_x4, q6_k_n, 210);

// ------------------------------------------------------------------ tables

/// The 512-bit kernel for `ty`, where one exists (the rest of the AVX-512 level falls back to
/// the 256-bit VNNI kernels).
pub(in crate::simd) fn dot(ty: GgmlType) -> Option<DotFn> {
    // SAFETY (all closures): only reachable after the caller checked CPU support.
    Some(match ty {
        GgmlType::Q4_0 => |n, w, a| unsafe { q4_0(n, w, a) },
        GgmlType::Q4_1 => |n, w, a| unsafe { q4_1(n, w, a) },
        GgmlType::Q5_0 => |n, w, a| unsafe { q5_0(n, w, a) },
        GgmlType::Q8_0 => |n, w, a| unsafe { q8_0(n, w, a) },
        GgmlType::Q4_K => |n, w, a| unsafe { q4_k(n, w, a) },
        GgmlType::Q5_K => |n, w, a| unsafe { q5_k(n, w, a) },
        GgmlType::Q6_K => |n, w, a| unsafe { q6_k(n, w, a) },
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
        GgmlType::Q8_0 => |n, w, a| unsafe { q8_0_x4(n, w, a) },
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
            GgmlType::Q8_0,
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
