//! x86-64 kernels: one body per type, instantiated twice by `define_kernels!` — once for AVX2
//! (+FMA, F16C) and once for AVX-512 (F/BW/VL + VNNI, 256-bit `vpdpbusd` for the i8 dot
//! products). Integer partial sums are exact; only the f32 accumulation order differs from the
//! scalar references.
//!
//! Safety: every `unsafe fn` here needs its level's CPU features; the safe wrappers are only
//! handed out by `dot_avx2`/`dot_avx512`, which `super::dot_fn_at` calls only after checking
//! the CPU supports the level. Each kernel asserts its slice lengths before any raw load.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use crate::GgmlType;
use std::arch::x86_64::*;

type DotFn = fn(usize, &[u8], &[u8]) -> f32;
type QuantFn = fn(&[f32], &mut [u8]);
type Rows4Fn = fn(usize, [&[u8]; 4], &[u8]) -> [f32; 4];

// ------------------------------------------------------------------------------- shared helpers

/// The f16 at `p` as f32. Inline asm on purpose: for every intrinsic spelling of a one-half
/// load (`cvtsi32_si128`, `set1_epi16`) LLVM emits a `vpinsrw` merging into an arbitrary
/// live register, a false dependency that chained kernels' accumulators into every block's
/// scale (up to 3× slower loops).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_ld(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm256_castps256_ps128(f16x8(p)))
}

/// The f16 at `p` in 8 f32 lanes (see [`f16_ld`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16x8(p: *const u8) -> __m256 {
    let v: __m256;
    std::arch::asm!(
        "vpbroadcastw {h}, word ptr [{p}]",
        "vcvtph2ps {v}, {h}",
        p = in(reg) p,
        h = out(xmm_reg) _,
        v = lateout(ymm_reg) v,
        options(pure, readonly, nostack, preserves_flags),
    );
    v
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_ld(p: *const u8) -> f32 {
    (p as *const f32).read_unaligned()
}

/// `a·b + c` with one rounding, as ggml's C compiles `summs += m·s` (`-std=gnu11` contracts it
/// to `vfmadd231ss`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn fma_ss(a: f32, b: f32, c: f32) -> f32 {
    _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// 16 bytes of packed nibbles -> 32 bytes: low nibbles in lanes 0..16, high nibbles in 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles32(p: *const u8) -> __m256i {
    let q = _mm_loadu_si128(p as *const __m128i);
    let m = _mm_set1_epi8(0x0f);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m))
}

/// ggml `bytes_from_bits_32`: bit j of the u32 at `p` -> byte j = 0xFF or 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bytes_from_bits_32(p: *const u8) -> __m256i {
    let x32 = (p as *const u32).read_unaligned();
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x32 as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// i8·i8 -> 8 × i32 partial sums (AVX2: sign trick + maddubs + madd).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_sum_i8_avx2(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1))
}
/// u8 (<= 127)·i8 -> 8 × i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_sum_u8_i8_avx2(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mul_sum_i8_vnni(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)
}
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mul_sum_u8_i8_vnni(x: __m256i, y: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn ld256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// Two i16 scales: lanes 0..8 get `a`, lanes 8..16 get `b` (one per 16-element half).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_pair(a: i32, b: i32) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(b as i16), _mm_set1_epi16(a as i16))
}

fn check(n: usize, w: &[u8], a: &[u8], bs: usize, wsz: usize, asz: usize) -> usize {
    let nb = n / bs;
    assert!(
        w.len() >= nb * wsz && a.len() >= nb * asz,
        "vec_dot: buffers shorter than n"
    );
    nb
}

fn bsum_pairs_dot_mins(y: &[u8], mins: &[u8; 8]) -> i32 {
    let mut s = 0i32;
    for (j, &m) in mins.iter().enumerate() {
        let b0 = i16::from_le_bytes([y[260 + 4 * j], y[261 + 4 * j]]) as i32;
        let b1 = i16::from_le_bytes([y[262 + 4 * j], y[263 + 4 * j]]) as i32;
        s += (b0 + b1) * m as i32;
    }
    s
}

fn k4_scales_mins(sc: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut s = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        let (a, b) = crate::kquants::get_scale_min_k4(j, sc);
        s[j] = a;
        m[j] = b;
    }
    (s, m)
}

// ------------------------------------------------------------------------------- kernel bodies

macro_rules! define_kernels {
    ($m:ident, $feat:literal, $mul_sum_i8:ident, $mul_sum_u8_i8:ident) => {
        pub(super) mod $m {
            use super::*;

            #[target_feature(enable = $feat)]
            pub unsafe fn q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
                // ggml's order (vec_dot_q4_0_q8_0, AVX2): one 8-lane fma per block.
                let nb = check(n, w, a, 32, 18, 34);
                let (wp, ap) = (w.as_ptr(), a.as_ptr());
                let mut acc = _mm256_setzero_ps();
                let off8 = _mm256_set1_epi8(8);
                for i in 0..nb {
                    let (x, y) = (wp.add(i * 18), ap.add(i * 34));
                    let d = _mm256_set1_ps(f16_ld(x) * f16_ld(y));
                    let p =
                        $mul_sum_i8(_mm256_sub_epi8(nibbles32(x.add(2)), off8), ld256(y.add(2)));
                    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc)
            }

            /// Four Q4_0 rows against one Q8_0 activation (activation loads shared).
            #[target_feature(enable = $feat)]
            pub unsafe fn q4_0_x4(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
                let nb = n / 32;
                for r in w {
                    check(n, r, a, 32, 18, 34);
                }
                let ap = a.as_ptr();
                let wp = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
                let mut acc = [_mm256_setzero_ps(); 4];
                let off8 = _mm256_set1_epi8(8);
                for i in 0..nb {
                    let y = ap.add(i * 34);
                    let yd = f16_ld(y);
                    let by = ld256(y.add(2));
                    for r in 0..4 {
                        let x = wp[r].add(i * 18);
                        let d = _mm256_set1_ps(f16_ld(x) * yd);
                        let p = $mul_sum_i8(_mm256_sub_epi8(nibbles32(x.add(2)), off8), by);
                        acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[r]);
                    }
                }
                [
                    hsum_ps(acc[0]),
                    hsum_ps(acc[1]),
                    hsum_ps(acc[2]),
                    hsum_ps(acc[3]),
                ]
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 32, 20, 36);
                let (wp, ap) = (w.as_ptr(), a.as_ptr());
                let mut acc = _mm256_setzero_ps();
                let mut summs = 0.0f32;
                for i in 0..nb {
                    let (x, y) = (wp.add(i * 20), ap.add(i * 36));
                    let d = _mm256_set1_ps(f16_ld(x) * f16_ld(y));
                    summs = fma_ss(f16_ld(x.add(2)), f16_ld(y.add(2)), summs);
                    let p = $mul_sum_u8_i8(nibbles32(x.add(4)), ld256(y.add(4)));
                    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc) + summs
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q4_1_x4(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
                let nb = n / 32;
                for r in w {
                    check(n, r, a, 32, 20, 36);
                }
                let ap = a.as_ptr();
                let wp = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut summs = [0.0f32; 4];
                for i in 0..nb {
                    let y = ap.add(i * 36);
                    let (yd, ys) = (f16_ld(y), f16_ld(y.add(2)));
                    let by = ld256(y.add(4));
                    for r in 0..4 {
                        let x = wp[r].add(i * 20);
                        summs[r] = fma_ss(f16_ld(x.add(2)), ys, summs[r]);
                        let p = $mul_sum_u8_i8(nibbles32(x.add(4)), by);
                        acc[r] = _mm256_fmadd_ps(
                            _mm256_set1_ps(f16_ld(x) * yd),
                            _mm256_cvtepi32_ps(p),
                            acc[r],
                        );
                    }
                }
                [
                    hsum_ps(acc[0]) + summs[0],
                    hsum_ps(acc[1]) + summs[1],
                    hsum_ps(acc[2]) + summs[2],
                    hsum_ps(acc[3]) + summs[3],
                ]
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 32, 22, 34);
                let (wp, ap) = (w.as_ptr(), a.as_ptr());
                let mut acc = _mm256_setzero_ps();
                let f0 = _mm256_set1_epi8(0xf0u8 as i8);
                for i in 0..nb {
                    let (x, y) = (wp.add(i * 22), ap.add(i * 34));
                    let d = _mm256_set1_ps(f16_ld(x) * f16_ld(y));
                    let bxhi = _mm256_andnot_si256(bytes_from_bits_32(x.add(2)), f0);
                    let bx = _mm256_or_si256(nibbles32(x.add(6)), bxhi);
                    let p = $mul_sum_i8(bx, ld256(y.add(2)));
                    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc)
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 32, 24, 36);
                let (wp, ap) = (w.as_ptr(), a.as_ptr());
                let mut acc = _mm256_setzero_ps();
                let mut summs = 0.0f32;
                let b10 = _mm256_set1_epi8(0x10);
                for i in 0..nb {
                    let (x, y) = (wp.add(i * 24), ap.add(i * 36));
                    let d = _mm256_set1_ps(f16_ld(x) * f16_ld(y));
                    summs = fma_ss(f16_ld(x.add(2)), f16_ld(y.add(2)), summs);
                    let bxhi = _mm256_and_si256(bytes_from_bits_32(x.add(4)), b10);
                    let bx = _mm256_or_si256(nibbles32(x.add(8)), bxhi);
                    let p = $mul_sum_u8_i8(bx, ld256(y.add(4)));
                    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
                }
                hsum_ps(acc) + summs
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
                // ggml's order (vec_dot_q8_0_q8_0, AVX2): one 8-lane fma per block.
                let nb = check(n, w, a, 32, 34, 34);
                let (wp, ap) = (w.as_ptr(), a.as_ptr());
                let mut acc = _mm256_setzero_ps();
                for i in 0..nb {
                    let (x, y) = (wp.add(i * 34), ap.add(i * 34));
                    let p = $mul_sum_i8(ld256(x.add(2)), ld256(y.add(2)));
                    acc = _mm256_fmadd_ps(
                        _mm256_set1_ps(f16_ld(x) * f16_ld(y)),
                        _mm256_cvtepi32_ps(p),
                        acc,
                    );
                }
                hsum_ps(acc)
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q8_0_x4(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
                let nb = n / 32;
                for r in w {
                    check(n, r, a, 32, 34, 34);
                }
                let ap = a.as_ptr();
                let wp = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
                let mut acc = [_mm256_setzero_ps(); 4];
                for i in 0..nb {
                    let y = ap.add(i * 34);
                    let yd = f16_ld(y);
                    let by = ld256(y.add(2));
                    for r in 0..4 {
                        let x = wp[r].add(i * 34);
                        let p = $mul_sum_i8(ld256(x.add(2)), by);
                        acc[r] = _mm256_fmadd_ps(
                            _mm256_set1_ps(f16_ld(x) * yd),
                            _mm256_cvtepi32_ps(p),
                            acc[r],
                        );
                    }
                }
                [
                    hsum_ps(acc[0]),
                    hsum_ps(acc[1]),
                    hsum_ps(acc[2]),
                    hsum_ps(acc[3]),
                ]
            }

            // ---------------- K-quants (maddubs with per-16/32 i16 scales via madd)

            #[target_feature(enable = $feat)]
            pub unsafe fn q2_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 256, 84, 292);
                let mut acc = 0.0f32;
                let m3 = _mm256_set1_epi8(3);
                for i in 0..nb {
                    let (xs, ys) = (&w[i * 84..i * 84 + 84], &a[i * 292..i * 292 + 292]);
                    let (x, y) = (xs.as_ptr(), ys.as_ptr());
                    let sc = &xs[0..16];
                    let mut summs = 0i32;
                    for j in 0..16 {
                        summs += i16::from_le_bytes([ys[260 + 2 * j], ys[261 + 2 * j]]) as i32
                            * (sc[j] >> 4) as i32;
                    }
                    let yd = f32_ld(y);
                    let dall = yd * f16_ld(x.add(80));
                    let dmin = yd * f16_ld(x.add(82));
                    let mut sumi = _mm256_setzero_si256();
                    let mut is = 0;
                    for k in 0..2 {
                        let q2 = ld256(x.add(16 + 32 * k));
                        for s in 0..4 {
                            let q = _mm256_and_si256(
                                _mm256_srl_epi16(q2, _mm_cvtsi32_si128(2 * s)),
                                m3,
                            );
                            let q8 = ld256(y.add(4 + 128 * k + 32 * s as usize));
                            let p = _mm256_maddubs_epi16(q, q8);
                            let scl = scale_pair((sc[is] & 0xf) as i32, (sc[is + 1] & 0xf) as i32);
                            is += 2;
                            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scl, p));
                        }
                    }
                    acc += dall * hsum_i32(sumi) as f32 - dmin * summs as f32;
                }
                acc
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q3_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 256, 110, 292);
                let mut acc = 0.0f32;
                let m3 = _mm256_set1_epi8(3);
                let one = _mm256_set1_epi8(1);
                let four = _mm256_set1_epi8(4);
                for i in 0..nb {
                    let xs = &w[i * 110..i * 110 + 110];
                    let (x, y) = (xs.as_ptr(), a.as_ptr().add(i * 292));
                    let scales = crate::kquants::q3k_scales(&xs[96..108]);
                    let hbits = ld256(x);
                    let mut sumi = _mm256_setzero_si256();
                    let mut is = 0;
                    for k in 0..2 {
                        let q2 = ld256(x.add(32 + 32 * k));
                        for s in 0..4 {
                            let sh = _mm_cvtsi32_si128(2 * s);
                            let low = _mm256_and_si256(_mm256_srl_epi16(q2, sh), m3);
                            let hb = _mm256_and_si256(
                                _mm256_srl_epi16(hbits, _mm_cvtsi32_si128(4 * k as i32 + s)),
                                one,
                            );
                            let u = _mm256_or_si256(low, _mm256_slli_epi16(hb, 2));
                            let q8 = ld256(y.add(4 + 128 * k + 32 * s as usize));
                            let p = _mm256_sub_epi16(
                                _mm256_maddubs_epi16(u, q8),
                                _mm256_maddubs_epi16(four, q8),
                            );
                            let scl =
                                scale_pair(scales[is] as i32 - 32, scales[is + 1] as i32 - 32);
                            is += 2;
                            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scl, p));
                        }
                    }
                    acc += f16_ld(x.add(108)) * f32_ld(y) * hsum_i32(sumi) as f32;
                }
                acc
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q4_k_block(x: *const u8, xs: &[u8], y: *const u8, ys: &[u8]) -> (i32, i32) {
                let (s, m) = k4_scales_mins(&xs[4..16]);
                let summ = bsum_pairs_dot_mins(ys, &m);
                let m4 = _mm256_set1_epi8(0x0f);
                let mut sumi = _mm256_setzero_si256();
                for c in 0..4 {
                    let q4 = ld256(x.add(16 + 32 * c));
                    let q4l = _mm256_and_si256(q4, m4);
                    let q4h = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
                    let pl = _mm256_maddubs_epi16(q4l, ld256(y.add(4 + 64 * c)));
                    let ph = _mm256_maddubs_epi16(q4h, ld256(y.add(36 + 64 * c)));
                    let pl = _mm256_madd_epi16(_mm256_set1_epi16(s[2 * c] as i16), pl);
                    let ph = _mm256_madd_epi16(_mm256_set1_epi16(s[2 * c + 1] as i16), ph);
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
                }
                (hsum_i32(sumi), summ)
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 256, 144, 292);
                let mut acc = 0.0f32;
                for i in 0..nb {
                    let (xs, ys) = (&w[i * 144..i * 144 + 144], &a[i * 292..i * 292 + 292]);
                    let (x, y) = (xs.as_ptr(), ys.as_ptr());
                    let (isum, summ) = q4_k_block(x, xs, y, ys);
                    let yd = f32_ld(y);
                    acc += f16_ld(x) * yd * isum as f32;
                    acc -= f16_ld(x.add(2)) * yd * summ as f32;
                }
                acc
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q4_k_x4(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
                let nb = n / 256;
                for r in w {
                    check(n, r, a, 256, 144, 292);
                }
                let mut acc = [0.0f32; 4];
                let m4 = _mm256_set1_epi8(0x0f);
                for i in 0..nb {
                    let ys = &a[i * 292..i * 292 + 292];
                    let y = ys.as_ptr();
                    let yd = f32_ld(y);
                    let mut sums = [_mm256_setzero_si256(); 4];
                    let mut sc = [[0u8; 8]; 4];
                    for r in 0..4 {
                        let xs = &w[r][i * 144..i * 144 + 144];
                        let (s, m) = k4_scales_mins(&xs[4..16]);
                        sc[r] = s;
                        let summ = bsum_pairs_dot_mins(ys, &m);
                        acc[r] -= f16_ld(xs.as_ptr().add(2)) * yd * summ as f32;
                    }
                    for c in 0..4 {
                        let q8l = ld256(y.add(4 + 64 * c));
                        let q8h = ld256(y.add(36 + 64 * c));
                        for r in 0..4 {
                            let q4 = ld256(w[r].as_ptr().add(i * 144 + 16 + 32 * c));
                            let q4l = _mm256_and_si256(q4, m4);
                            let q4h = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
                            let pl = _mm256_madd_epi16(
                                _mm256_set1_epi16(sc[r][2 * c] as i16),
                                _mm256_maddubs_epi16(q4l, q8l),
                            );
                            let ph = _mm256_madd_epi16(
                                _mm256_set1_epi16(sc[r][2 * c + 1] as i16),
                                _mm256_maddubs_epi16(q4h, q8h),
                            );
                            sums[r] = _mm256_add_epi32(sums[r], _mm256_add_epi32(pl, ph));
                        }
                    }
                    for r in 0..4 {
                        acc[r] +=
                            f16_ld(w[r].as_ptr().add(i * 144)) * yd * hsum_i32(sums[r]) as f32;
                    }
                }
                acc
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q5_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 256, 176, 292);
                let mut acc = 0.0f32;
                let m4 = _mm256_set1_epi8(0x0f);
                let one = _mm256_set1_epi8(1);
                for i in 0..nb {
                    let (xs, ys) = (&w[i * 176..i * 176 + 176], &a[i * 292..i * 292 + 292]);
                    let (x, y) = (xs.as_ptr(), ys.as_ptr());
                    let (s, m) = k4_scales_mins(&xs[4..16]);
                    let summ = bsum_pairs_dot_mins(ys, &m);
                    let hbits = ld256(x.add(16));
                    let mut sumi = _mm256_setzero_si256();
                    for c in 0..4 {
                        let q = ld256(x.add(48 + 32 * c));
                        let hl = _mm256_and_si256(
                            _mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c as i32)),
                            one,
                        );
                        let hh = _mm256_and_si256(
                            _mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c as i32 + 1)),
                            one,
                        );
                        let ql = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_slli_epi16(hl, 4));
                        let qh = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                            _mm256_slli_epi16(hh, 4),
                        );
                        let pl = _mm256_madd_epi16(
                            _mm256_set1_epi16(s[2 * c] as i16),
                            _mm256_maddubs_epi16(ql, ld256(y.add(4 + 64 * c))),
                        );
                        let ph = _mm256_madd_epi16(
                            _mm256_set1_epi16(s[2 * c + 1] as i16),
                            _mm256_maddubs_epi16(qh, ld256(y.add(36 + 64 * c))),
                        );
                        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
                    }
                    let yd = f32_ld(y);
                    acc += f16_ld(x) * yd * hsum_i32(sumi) as f32;
                    acc -= f16_ld(x.add(2)) * yd * summ as f32;
                }
                acc
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q6_k_block(
                x: *const u8,
                y: *const u8,
                q8: &[__m256i; 8],
                q8s: &[__m256i; 8],
            ) -> i32 {
                let m4 = _mm256_set1_epi8(0x0f);
                let m3 = _mm256_set1_epi8(3);
                let sc = x.add(192) as *const i8;
                let mut sumi = _mm256_setzero_si256();
                let _ = y;
                for j in 0..2 {
                    let b1 = ld256(x.add(64 * j));
                    let b2 = ld256(x.add(64 * j + 32));
                    let bh = ld256(x.add(128 + 32 * j));
                    let h0 = _mm256_slli_epi16(_mm256_and_si256(bh, m3), 4);
                    let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m3), 4);
                    let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m3), 4);
                    let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m3), 4);
                    let q = [
                        _mm256_or_si256(_mm256_and_si256(b1, m4), h0),
                        _mm256_or_si256(_mm256_and_si256(b2, m4), h1),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), h2),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), h3),
                    ];
                    for k in 0..4 {
                        let p = _mm256_sub_epi16(
                            _mm256_maddubs_epi16(q[k], q8[4 * j + k]),
                            q8s[4 * j + k],
                        );
                        let is = 8 * j + 2 * k;
                        let scl = scale_pair(*sc.add(is) as i32, *sc.add(is + 1) as i32);
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scl, p));
                    }
                }
                hsum_i32(sumi)
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q8k_loads(y: *const u8) -> ([__m256i; 8], [__m256i; 8]) {
                let m32 = _mm256_set1_epi8(32);
                let mut q8 = [_mm256_setzero_si256(); 8];
                let mut q8s = [_mm256_setzero_si256(); 8];
                for k in 0..8 {
                    q8[k] = ld256(y.add(4 + 32 * k));
                    q8s[k] = _mm256_maddubs_epi16(m32, q8[k]);
                }
                (q8, q8s)
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = check(n, w, a, 256, 210, 292);
                let mut acc = 0.0f32;
                for i in 0..nb {
                    let (x, y) = (w.as_ptr().add(i * 210), a.as_ptr().add(i * 292));
                    let (q8, q8s) = q8k_loads(y);
                    let isum = q6_k_block(x, y, &q8, &q8s);
                    acc += f16_ld(x.add(208)) * f32_ld(y) * isum as f32;
                }
                acc
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn q6_k_x4(n: usize, w: [&[u8]; 4], a: &[u8]) -> [f32; 4] {
                let nb = n / 256;
                for r in w {
                    check(n, r, a, 256, 210, 292);
                }
                let mut acc = [0.0f32; 4];
                for i in 0..nb {
                    let y = a.as_ptr().add(i * 292);
                    let (q8, q8s) = q8k_loads(y);
                    let yd = f32_ld(y);
                    for r in 0..4 {
                        let x = w[r].as_ptr().add(i * 210);
                        let isum = q6_k_block(x, y, &q8, &q8s);
                        acc[r] += f16_ld(x.add(208)) * yd * isum as f32;
                    }
                }
                acc
            }

            // ---------------- floats

            #[target_feature(enable = $feat)]
            pub unsafe fn f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
                assert!(
                    w.len() >= 4 * n && a.len() >= 4 * n,
                    "vec_dot: buffers shorter than n"
                );
                let (x, y) = (w.as_ptr() as *const f32, a.as_ptr() as *const f32);
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i + 32 <= n {
                    for k in 0..4 {
                        let xv = _mm256_loadu_ps(x.add(i + 8 * k));
                        let yv = _mm256_loadu_ps(y.add(i + 8 * k));
                        acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
                    }
                    i += 32;
                }
                let mut s = hsum_ps(_mm256_add_ps(
                    _mm256_add_ps(acc[0], acc[1]),
                    _mm256_add_ps(acc[2], acc[3]),
                ));
                while i < n {
                    s += x.add(i).read_unaligned() * y.add(i).read_unaligned();
                    i += 1;
                }
                s
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
                assert!(
                    w.len() >= 2 * n && a.len() >= 2 * n,
                    "vec_dot: buffers shorter than n"
                );
                let (x, y) = (w.as_ptr(), a.as_ptr());
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i + 32 <= n {
                    for k in 0..4 {
                        let xv = _mm256_cvtph_ps(_mm_loadu_si128(
                            x.add(2 * (i + 8 * k)) as *const __m128i
                        ));
                        let yv = _mm256_cvtph_ps(_mm_loadu_si128(
                            y.add(2 * (i + 8 * k)) as *const __m128i
                        ));
                        acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
                    }
                    i += 32;
                }
                let mut s = hsum_ps(_mm256_add_ps(
                    _mm256_add_ps(acc[0], acc[1]),
                    _mm256_add_ps(acc[2], acc[3]),
                ));
                while i < n {
                    s += f16_ld(x.add(2 * i)) * f16_ld(y.add(2 * i));
                    i += 1;
                }
                s
            }

            #[target_feature(enable = $feat)]
            pub unsafe fn bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
                assert!(
                    w.len() >= 2 * n && a.len() >= 2 * n,
                    "vec_dot: buffers shorter than n"
                );
                let (x, y) = (w.as_ptr(), a.as_ptr());
                let cvt = |p: *const u8| -> __m256 {
                    _mm256_castsi256_ps(_mm256_slli_epi32(
                        _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
                        16,
                    ))
                };
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                while i + 32 <= n {
                    for k in 0..4 {
                        acc[k] = _mm256_fmadd_ps(
                            cvt(x.add(2 * (i + 8 * k))),
                            cvt(y.add(2 * (i + 8 * k))),
                            acc[k],
                        );
                    }
                    i += 32;
                }
                let mut s = hsum_ps(_mm256_add_ps(
                    _mm256_add_ps(acc[0], acc[1]),
                    _mm256_add_ps(acc[2], acc[3]),
                ));
                let bf = |p: *const u8| {
                    f32::from_bits(((p as *const u16).read_unaligned() as u32) << 16)
                };
                while i < n {
                    s += bf(x.add(2 * i)) * bf(y.add(2 * i));
                    i += 1;
                }
                s
            }
        }
    };
}

define_kernels!(avx2, "avx2,fma,f16c", mul_sum_i8_avx2, mul_sum_u8_i8_avx2);
define_kernels!(
    avx512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    mul_sum_i8_vnni,
    mul_sum_u8_i8_vnni
);

macro_rules! safe_table {
    ($fn_name:ident, $rows_name:ident, $m:ident) => {
        pub(super) fn $fn_name(ty: GgmlType) -> Option<DotFn> {
            // SAFETY (all closures): only reachable after the caller checked CPU support.
            Some(match ty {
                GgmlType::Q4_0 => |n, w, a| unsafe { $m::q4_0(n, w, a) },
                GgmlType::Q4_1 => |n, w, a| unsafe { $m::q4_1(n, w, a) },
                GgmlType::Q5_0 => |n, w, a| unsafe { $m::q5_0(n, w, a) },
                GgmlType::Q5_1 => |n, w, a| unsafe { $m::q5_1(n, w, a) },
                GgmlType::Q8_0 => |n, w, a| unsafe { $m::q8_0(n, w, a) },
                GgmlType::Q2_K => |n, w, a| unsafe { $m::q2_k(n, w, a) },
                GgmlType::Q3_K => |n, w, a| unsafe { $m::q3_k(n, w, a) },
                GgmlType::Q4_K => |n, w, a| unsafe { $m::q4_k(n, w, a) },
                GgmlType::Q5_K => |n, w, a| unsafe { $m::q5_k(n, w, a) },
                GgmlType::Q6_K => |n, w, a| unsafe { $m::q6_k(n, w, a) },
                GgmlType::F32 => |n, w, a| unsafe { $m::f32(n, w, a) },
                GgmlType::F16 => |n, w, a| unsafe { $m::f16(n, w, a) },
                GgmlType::BF16 => |n, w, a| unsafe { $m::bf16(n, w, a) },
                _ => return None,
            })
        }
        pub(super) fn $rows_name(ty: GgmlType) -> Option<Rows4Fn> {
            // SAFETY: as above.
            Some(match ty {
                GgmlType::Q4_0 => |n, w, a| unsafe { $m::q4_0_x4(n, w, a) },
                GgmlType::Q4_1 => |n, w, a| unsafe { $m::q4_1_x4(n, w, a) },
                GgmlType::Q8_0 => |n, w, a| unsafe { $m::q8_0_x4(n, w, a) },
                GgmlType::Q4_K => |n, w, a| unsafe { $m::q4_k_x4(n, w, a) },
                GgmlType::Q6_K => |n, w, a| unsafe { $m::q6_k_x4(n, w, a) },
                _ => return None,
            })
        }
    };
}
safe_table!(dot_avx2, rows4_avx2, avx2);
safe_table!(dot_avx512_256, rows4_avx512_256, avx512);

pub(super) mod tile;
pub(super) mod x4;
mod z512;
mod z512_more;

/// AVX-512 level: the 512-bit kernels where written, else the 256-bit VNNI instantiation.
pub(super) fn dot_avx512(ty: GgmlType) -> Option<DotFn> {
    z512::dot(ty)
        .or_else(|| z512_more::dot(ty))
        .or_else(|| dot_avx512_256(ty))
}

/// AVX-512 level 4-row kernels: 512-bit where written, else 256-bit VNNI.
pub(super) fn rows4_avx512(ty: GgmlType) -> Option<Rows4Fn> {
    z512::rows4(ty).or_else(|| rows4_avx512_256(ty))
}

// ------------------------------------------------------------------------------- q8 quantizers

/// 32 f32 -> 32 i8 (values already integral and in range), lane order preserved.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack32(v: [__m256; 4]) -> __m256i {
    let i0 = _mm256_cvtps_epi32(v[0]);
    let i1 = _mm256_cvtps_epi32(v[1]);
    let i2 = _mm256_cvtps_epi32(v[2]);
    let i3 = _mm256_cvtps_epi32(v[3]);
    let a = _mm256_packs_epi32(i0, i1);
    let b = _mm256_packs_epi32(i2, i3);
    let c = _mm256_packs_epi16(a, b);
    _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_amax(x: *const f32) -> f32 {
    let mask = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for k in 0..4 {
        m = _mm256_max_ps(m, _mm256_andnot_ps(mask, _mm256_loadu_ps(x.add(8 * k))));
    }
    let s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quant_q8_01(x: &[f32], y: &mut [u8], with_sum: bool) {
    let bsz = if with_sum { 36 } else { 34 };
    let nb = x.len() / 32;
    assert!(y.len() >= nb * bsz, "quantize: destination too short");
    for i in 0..nb {
        let xp = x.as_ptr().add(32 * i);
        let amax = block_amax(xp);
        // As ggml's x86 quantize_row_q8_0/q8_1: multiplier 127/amax, round to nearest even.
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let idv = _mm256_set1_ps(id);
        let mut v = [_mm256_setzero_ps(); 4];
        for k in 0..4 {
            v[k] = _mm256_round_ps(
                _mm256_mul_ps(_mm256_loadu_ps(xp.add(8 * k)), idv),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            );
        }
        let q = pack32(v);
        let yb = &mut y[i * bsz..(i + 1) * bsz];
        yb[0..2].copy_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
        let qoff = if with_sum { 4 } else { 2 };
        _mm256_storeu_si256(yb.as_mut_ptr().add(qoff) as *mut __m256i, q);
        if with_sum {
            let s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
            let sum = hsum_i32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
            yb[2..4].copy_from_slice(&half::f16::from_f32(sum as f32 * d).to_bits().to_le_bytes());
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quant_q8_k(x: &[f32], y: &mut [u8]) {
    let nb = x.len() / 256;
    assert!(y.len() >= nb * 292, "quantize: destination too short");
    for i in 0..nb {
        let xs = &x[256 * i..256 * i + 256];
        let xp = xs.as_ptr();
        let yb = &mut y[292 * i..292 * i + 292];
        let mut amax = 0.0f32;
        for k in 0..8 {
            amax = amax.max(block_amax(xp.add(32 * k)));
        }
        if amax == 0.0 {
            yb.fill(0);
            continue;
        }
        // First element whose magnitude equals amax (ggml keeps the first strict maximum).
        let max = *xs.iter().find(|v| v.abs() == amax).unwrap();
        let iscale = -127.0f32 / max;
        let iv = _mm256_set1_ps(iscale);
        let lim = _mm256_set1_epi32(127);
        let magic = _mm256_set1_ps(12582912.0);
        let q = yb.as_mut_ptr().add(4);
        for g in 0..8 {
            let mut v = [_mm256_setzero_ps(); 4];
            for k in 0..4 {
                // nearest_int: (iscale*x + 1.5*2^23) rounded to nearest even, then subtract.
                let t = _mm256_add_ps(
                    _mm256_mul_ps(iv, _mm256_loadu_ps(xp.add(32 * g + 8 * k))),
                    magic,
                );
                let r = _mm256_sub_epi32(
                    _mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007f_ffff)),
                    _mm256_set1_epi32(0x0040_0000),
                );
                v[k] = _mm256_cvtepi32_ps(_mm256_min_epi32(r, lim));
            }
            let packed = pack32(v);
            _mm256_storeu_si256(q.add(32 * g) as *mut __m256i, packed);
        }
        for j in 0..16 {
            let mut s = 0i32;
            for &b in &yb[4 + 16 * j..20 + 16 * j] {
                s += b as i8 as i32;
            }
            yb[260 + 2 * j..262 + 2 * j].copy_from_slice(&(s as i16).to_le_bytes());
        }
        yb[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

pub(super) fn quant_avx2(ty: GgmlType) -> Option<QuantFn> {
    // SAFETY: only reachable after the caller checked AVX2/FMA/F16C support.
    Some(match ty {
        GgmlType::Q8_0 => |x, y| unsafe { quant_q8_01(x, y, false) },
        GgmlType::Q8_1 => |x, y| unsafe { quant_q8_01(x, y, true) },
        GgmlType::Q8_K => |x, y| unsafe { quant_q8_k(x, y) },
        _ => return None,
    })
}
