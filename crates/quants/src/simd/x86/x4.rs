//! AVX-512 kernels for the 4-row interleaved layout (`crate::packed`): one 64-byte load is
//! the 16 quant bytes of four rows, so a `zmm` of low nibbles holds elements 0..16 of the
//! block for rows 0..3 (one 128-bit lane per row) and the high nibbles elements 16..32; the
//! activation half is broadcast to the four lanes straight from memory. No inserts or
//! gathers: the unpacked 4-row kernels spent most of their shuffle port on those.
//!
//! Float order, legacy types: lane `j` of row `r` (lanes 0..3 in the low-nibble
//! accumulator, 4..7 in the high one) sees `acc = fma(d_r·dy, Σ_j, acc)` per block, exactly
//! ggml's `vec_dot` lane (see `super::z512`); adding the two accumulators is the first step
//! of `hsum_float_8`. Q4_K: one exact i32 per superblock and row for the scaled dot and one
//! for Σ min·bsum, then `fma(S, d·dy, acc)`, `fma(M, dmin·dy, accm)`, as `super::z512`'s
//! `q4_k_n`. So these kernels give the unpacked kernels' bits (tests/a_packed.rs).
//!
//! Safety: AVX-512 F/BW/VL/VNNI (+BMI2 for the legacy types, VBMI for Q4_K); reachable only through [`rows`], which
//! `crate::simd::vec_dot_rows_x4` calls after checking the CPU and the slice lengths.
#![allow(clippy::needless_range_loop)]

use super::z512::{hsum128, pf, PF};
use crate::GgmlType;
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pf_l2(p: *const u8) {
    _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
}

/// 16 bytes at `p` in all four 128-bit lanes (a broadcast load, no shuffle uop).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn bcast16(p: *const u8) -> __m512i {
    _mm512_broadcast_i32x4(_mm_loadu_si128(p as *const __m128i))
}

/// The fifth bits of four rows' elements 0..16 and 16..32 as byte masks in the register
/// order of the quants (row r's bits at 16r..16r+16): from the four `qh` words at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,bmi2")]
unsafe fn hb_masks(p: *const u8) -> (u64, u64) {
    let a = (p as *const u64).read_unaligned();
    let b = (p.add(8) as *const u64).read_unaligned();
    const LO: u64 = 0x0000_ffff_0000_ffff;
    let lo = _pext_u64(a, LO) | _pext_u64(b, LO) << 32;
    let hi = _pext_u64(a, !LO) | _pext_u64(b, !LO) << 32;
    (lo, hi)
}

/// `legacy`'s type parameter.
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q5_1: u8 = 3;
const Q8_0: u8 = 4;

/// Legacy type `T` over `nb` group blocks of `G` groups at `x` (each 4 rows): Q4_0, Q5_0,
/// Q8_0 against Q8_0 activations, Q4_1, Q5_1 (with a min) against Q8_1.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,bmi2")]
unsafe fn legacy<const G: usize, const T: u8>(
    nb: usize,
    x: [*const u8; G],
    y: *const u8,
) -> [[f32; 4]; G] {
    let (min, hb) = (T == Q4_1 || T == Q5_1, T == Q5_0 || T == Q5_1);
    // Group block bytes, activation block bytes, activation quants, fifth bits and quants
    // offsets in the group block, and the offset of the weight quants (value = q − off;
    // Q8_0's i8 quants are taken as u8 q + 128).
    let (wsz, asz, aq, qh, hdr, off) = match T {
        Q4_0 => (72, 34, 2, 0, 8, 8),
        Q4_1 => (80, 36, 4, 0, 16, 0),
        Q5_0 => (88, 34, 2, 8, 24, 16),
        Q5_1 => (96, 36, 4, 16, 32, 0),
        _ => (136, 34, 2, 0, 8, 128),
    };
    let m4 = _mm512_set1_epi8(0x0f);
    let z = _mm512_setzero_si512();
    let mut acc_lo = [_mm512_setzero_ps(); G];
    let mut acc_hi = [_mm512_setzero_ps(); G];
    // Odd lanes: row r's `summs` in lane 2r + 1 (Q4_1).
    let mut summs = [_mm256_setzero_ps(); G];
    // `d_r·dy` into the four lanes of row r: from lane r (Q4_0: [d0..d3]) or 2r (Q4_1:
    // [d0, m0, .., d3, m3]).
    let ix = if min {
        _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6)
    } else {
        _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
    };
    for i in 0..nb {
        let yb = y.add(i * asz);
        let ylo = bcast16(yb.add(aq));
        let yhi = bcast16(yb.add(aq + 16));
        let dy = super::f16x8(yb);
        // Q4_0/Q5_0: quants are q − off; fold −off·Σy per 4-group into the integer sums
        // (shared by every row and group).
        let (clo, chi) = if off == 0 {
            (z, z)
        } else {
            let e = _mm512_set1_epi8(off as u8 as i8);
            (
                _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, e, ylo)),
                _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, e, yhi)),
            )
        };
        let sy = if min { super::f16x8(yb.add(2)) } else { dy };
        for g in 0..G {
            let xb = x[g].add(i * wsz);
            // Into L2, twice as far as the 4-row kernels: one stream per group here, and
            // back-to-back read/matvec pairs (`FERRITE_BENCH_RATIO`) gave 0.94–0.97 of the
            // read rate this way against 0.84–0.92 with `prefetcht0` at `PF` (Q8_0: 0.84,
            // below its 4-row kernel's 0.94, which is why that made a difference).
            pf_l2(xb.wrapping_add(2 * PF));
            pf_l2(xb.wrapping_add(2 * PF + 64));
            if T == Q8_0 {
                pf_l2(xb.wrapping_add(2 * PF + 128));
            }
            let dd = if min {
                let xd = _mm256_cvtph_ps(_mm_loadu_si128(xb as *const __m128i));
                summs[g] = _mm256_mask3_fmadd_ps(xd, sy, summs[g], 0xAA);
                _mm512_permutexvar_ps(ix, _mm512_castps256_ps512(_mm256_mul_ps(xd, dy)))
            } else {
                let xd = _mm_cvtph_ps(_mm_loadl_epi64(xb as *const __m128i));
                let d = _mm_mul_ps(xd, _mm256_castps256_ps128(dy));
                _mm512_permutexvar_ps(ix, _mm512_castps128_ps512(d))
            };
            let (mut lo, mut hi);
            if T == Q8_0 {
                // Elements 0..16 of the four rows, then 16..32.
                let flip = _mm512_set1_epi8(-128);
                lo = _mm512_xor_si512(_mm512_loadu_si512(xb.add(hdr) as *const _), flip);
                hi = _mm512_xor_si512(_mm512_loadu_si512(xb.add(hdr + 64) as *const _), flip);
            } else {
                let v = _mm512_loadu_si512(xb.add(hdr) as *const _);
                lo = _mm512_and_si512(v, m4);
                hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
            if hb {
                let (kl, kh) = hb_masks(xb.add(qh));
                let b4 = _mm512_set1_epi8(16);
                lo = _mm512_mask_add_epi8(lo, kl, lo, b4);
                hi = _mm512_mask_add_epi8(hi, kh, hi, b4);
            }
            let slo = _mm512_dpbusd_epi32(clo, lo, ylo);
            let shi = _mm512_dpbusd_epi32(chi, hi, yhi);
            acc_lo[g] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(slo), acc_lo[g]);
            acc_hi[g] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(shi), acc_hi[g]);
        }
    }
    let mut out = [[0f32; 4]; G];
    for g in 0..G {
        let s = _mm512_add_ps(acc_lo[g], acc_hi[g]);
        let mut ms = [0f32; 8];
        _mm256_storeu_ps(ms.as_mut_ptr(), summs[g]);
        let lanes: [__m128; 4] = [
            _mm512_extractf32x4_ps(s, 0),
            _mm512_extractf32x4_ps(s, 1),
            _mm512_extractf32x4_ps(s, 2),
            _mm512_extractf32x4_ps(s, 3),
        ];
        for r in 0..4 {
            let h = hsum128(lanes[r]);
            out[g][r] = if min { h + ms[2 * r + 1] } else { h };
        }
    }
    out
}

/// `vpermb` indices for the Q4_K scale unpack: ggml's 12-byte scale words u0, u1, u2 of row
/// r sit at bytes 12r.. of the group's 48; lane r gathers [u0, u2, u1, u2] (table 0) and
/// [u0, u0, u1, u1] (table 1).
static K4_GATHER: [[u8; 64]; 2] = k4_gather();

const fn k4_gather() -> [[u8; 64]; 2] {
    let words = [[0, 2, 1, 2], [0, 0, 1, 1]];
    let mut t = [[0u8; 64]; 2];
    let mut i = 0;
    while i < 64 {
        let (r, k, j) = (i / 16, i % 16 / 4, i % 4);
        t[0][i] = (12 * r + 4 * words[0][k] + j) as u8;
        t[1][i] = (12 * r + 4 * words[1][k] + j) as u8;
        i += 1;
    }
    t
}

/// Q4_K × Q8_K over `nb` group superblocks of `G` groups at `x`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn q4_k<const G: usize>(nb: usize, x: [*const u8; G], y: *const u8) -> [[f32; 4]; G] {
    let m4 = _mm512_set1_epi8(0x0f);
    let z = _mm512_setzero_si512();
    let ia = _mm512_loadu_si512(K4_GATHER[0].as_ptr() as *const _);
    let ib = _mm512_loadu_si512(K4_GATHER[1].as_ptr() as *const _);
    // [u0 & 3f, u2 & 0f, u1 & 3f, (u2 >> 4) & 0f] | [0, (u0 >> 6) << 4, 0, (u1 >> 6) << 4]
    // per byte = ggml's scales (bytes 0..8) and mins (8..16) of the row.
    let sh_a = _mm512_set4_epi32(4, 0, 0, 0);
    let mk_a = _mm512_set4_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f);
    let mk_b = _mm512_set4_epi32(0x30303030, 0, 0x30303030, 0);
    // i16 lanes from bytes: mins (8..16), and the scale pairs (2p ×4, 2p+1 ×4).
    let zb = -1i8;
    let mins_ix = _mm512_broadcast_i32x4(_mm_setr_epi8(
        8, zb, 9, zb, 10, zb, 11, zb, 12, zb, 13, zb, 14, zb, 15, zb,
    ));
    let sc_ix: [__m512i; 4] = std::array::from_fn(|p| {
        let a = 2 * p as i8;
        let b = a + 1;
        _mm512_broadcast_i32x4(_mm_setr_epi8(
            a, zb, a, zb, a, zb, a, zb, b, zb, b, zb, b, zb, b, zb,
        ))
    });
    // [d_r, d_r, dmin_r, dmin_r] in lane r from [d0, dmin0, .., d3, dmin3].
    let dix = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let mut acc = [_mm512_setzero_ps(); G];
    for i in 0..nb {
        let yb = y.add(i * 292);
        let yd = _mm256_set1_ps((yb as *const f32).read_unaligned());
        let yq = yb.add(4);
        let bs = _mm256_loadu_si256(yb.add(260) as *const __m256i);
        // Σ over each 32-element sub-block, i16 (|.| <= 4096), in every lane.
        let bs8 = _mm512_broadcast_i32x4(_mm_hadd_epi16(
            _mm256_castsi256_si128(bs),
            _mm256_extracti128_si256(bs, 1),
        ));
        for g in 0..G {
            let xb = x[g].add(i * 576);
            for l in 0..9 {
                pf(xb.wrapping_add(PF + 64 * l));
            }
            let sv = _mm512_maskz_loadu_epi8(0x0000_ffff_ffff_ffff, xb.add(16) as *const i8);
            let a = _mm512_permutexvar_epi8(ia, sv);
            let b = _mm512_permutexvar_epi8(ib, sv);
            let sm = _mm512_or_si512(
                _mm512_and_si512(_mm512_srlv_epi32(a, sh_a), mk_a),
                _mm512_and_si512(_mm512_srli_epi32(b, 2), mk_b),
            );
            // Σ min·bsum, 4 partial i32 per row.
            let mm = _mm512_madd_epi16(_mm512_shuffle_epi8(sm, mins_ix), bs8);
            // Per sub-block s, 4 i32 partial dots per row (|.| <= 2·4·15·128, so i16-exact).
            let mut sub = [z; 8];
            for k in 0..8 {
                let (c, h) = (k / 2, k % 2);
                let v = _mm512_loadu_si512(xb.add(64 + 64 * k) as *const _);
                let lo = _mm512_and_si512(v, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                let ylo = bcast16(yq.add(64 * c + 16 * h));
                let yhi = bcast16(yq.add(64 * c + 32 + 16 * h));
                sub[2 * c] = _mm512_dpbusd_epi32(sub[2 * c], lo, ylo);
                sub[2 * c + 1] = _mm512_dpbusd_epi32(sub[2 * c + 1], hi, yhi);
            }
            let mut s = z;
            for p in 0..4 {
                let pk = _mm512_packs_epi32(sub[2 * p], sub[2 * p + 1]);
                s = _mm512_dpwssd_epi32(s, pk, _mm512_shuffle_epi8(sm, sc_ix[p]));
            }
            // Per row: [S, S, M, M].
            let u = _mm512_add_epi32(_mm512_unpacklo_epi64(s, mm), _mm512_unpackhi_epi64(s, mm));
            let v = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, _MM_PERM_CDAB));
            let dm = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(xb as *const __m128i)), yd);
            let dm = _mm512_permutexvar_ps(dix, _mm512_castps256_ps512(dm));
            acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), dm, acc[g]);
        }
    }
    let mut out = [[0f32; 4]; G];
    for g in 0..G {
        let mut a = [0f32; 16];
        _mm512_storeu_ps(a.as_mut_ptr(), acc[g]);
        for r in 0..4 {
            out[g][r] = a[4 * r] - a[4 * r + 2];
        }
    }
    out
}

/// Whether the CPU has AVX-512 VBMI (`vpermb`, the Q4_K scale unpack).
pub(in crate::simd) fn has_vbmi() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| is_x86_feature_detected!("avx512vbmi"))
}

/// Whether the CPU has BMI2 (`pext`, the Q5 fifth-bit masks; every AVX-512 CPU has it, but
/// the kernels ask for it).
fn has_bmi2() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| is_x86_feature_detected!("bmi2"))
}

/// Whether [`rows`] has a kernel for `ty` (the caller has checked the AVX-512 level).
pub(in crate::simd) fn supports(ty: GgmlType) -> bool {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
            has_bmi2()
        }
        GgmlType::Q4_K => has_vbmi(),
        _ => false,
    }
}

/// Rows of `ty` (x4 layout, `out.len()` a multiple of 4, `rb` bytes per row, `nb` blocks per
/// row) against one activation, two groups (8 rows) per pass.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL/VNNI (BMI2 and VBMI are checked here); `w` must hold `out.len()` rows of `rb` bytes
/// and `a` one activation row of the type's `vec_dot_type` for `nb` blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::simd) unsafe fn rows(
    ty: GgmlType,
    nb: usize,
    rb: usize,
    w: &[u8],
    a: &[u8],
    out: &mut [f32],
) -> bool {
    type K2 = unsafe fn(usize, [*const u8; 2], *const u8) -> [[f32; 4]; 2];
    type K1 = unsafe fn(usize, [*const u8; 1], *const u8) -> [[f32; 4]; 1];
    if !supports(ty) {
        return false;
    }
    let (k2, k1): (K2, K1) = match ty {
        GgmlType::Q4_0 => (legacy::<2, Q4_0>, legacy::<1, Q4_0>),
        GgmlType::Q4_1 => (legacy::<2, Q4_1>, legacy::<1, Q4_1>),
        GgmlType::Q5_0 => (legacy::<2, Q5_0>, legacy::<1, Q5_0>),
        GgmlType::Q5_1 => (legacy::<2, Q5_1>, legacy::<1, Q5_1>),
        GgmlType::Q8_0 => (legacy::<2, Q8_0>, legacy::<1, Q8_0>),
        GgmlType::Q4_K => (q4_k::<2>, q4_k::<1>),
        _ => return false,
    };
    debug_assert!(w.len() >= out.len() * rb && out.len().is_multiple_of(4));
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut r = 0;
    while r + 8 <= out.len() {
        let o = k2(nb, [wp.add(r * rb), wp.add((r + 4) * rb)], ap);
        out[r..r + 4].copy_from_slice(&o[0]);
        out[r + 4..r + 8].copy_from_slice(&o[1]);
        r += 8;
    }
    if r < out.len() {
        let o = k1(nb, [wp.add(r * rb)], ap);
        out[r..r + 4].copy_from_slice(&o[0]);
    }
    true
}
