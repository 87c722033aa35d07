//! AVX-512 VNNI GEMM micro-kernels for prompt processing: a tile of weight rows × activation
//! columns, each weight byte decoded once per call and reused for every column.
//!
//! A group of `R` weight rows is first unpacked ("packed" below) into a type-independent form,
//! per 64-element step: 64 unsigned quants (`u8`, the type's offset added), 16 f32 lane scales
//! (one per group of 4 quants: the block/sub-block scale) and, for Q4_1/Q5_1, the blocks' `d, m`
//! pairs. The kernel then computes, for each (row, column) pair and each step, `vpdpbusd` of the
//! packed quants with the activation's i8 quants (minus `offset · Σy` per 4-group, shared by all
//! rows), converts to f32 and accumulates `lane_scale · act_scale · s`; the min term `m · s` per
//! block goes to 8 lanes of its own, four blocks per masked fma ([`lmins`]).
//! The K-quants instead follow `super::z512`'s row kernels (integer sub-block scales, one fma
//! per superblock): every type's f32 arithmetic per (row, column) is exactly the 512-bit row
//! kernels', so the tile and the row path give bit-identical results (batch invariance).
//! Integer sums per 4-group are exact; only the f32 summation order differs from the scalar
//! references (the twins in the family modules).
//!
//! Safety: the `unsafe fn`s need AVX-512 F/BW/VL/VNNI (plus AVX2/FMA/F16C); `tile_fn` is only
//! called by `super::super::vec_dot_tile` after checking the CPU level. Every raw load is in
//! bounds by the length checks of the public entry (whole blocks, `ncols` activation rows).
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use super::z512::{fold8, hsum256, hsum_halves, ld2};
use crate::GgmlType;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// How the activation rows are laid out (the weight type's `vec_dot_type`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ActKind {
    /// Q8_0: 34-byte blocks (f16 d, 32 × i8).
    Q80,
    /// Q8_1: 36-byte blocks (f16 d, f16 s = d·Σq, 32 × i8).
    Q81,
    /// Q8_K: 292-byte blocks (f32 d, 256 × i8, 16 × i16 sums).
    Q8K,
}

/// The per-type recipe: activation kind, u8 offset of the packed quants, whether a min term
/// exists (legacy Q4_1/Q5_1: per block with the activation's `s`; K-quants: per lane with Σy).
/// Unpacks one weight block into quants, lane scales and lane mins.
type UnpackFn = fn(&[u8], &mut [u8], &mut [f32], &mut [f32]);

#[derive(Clone, Copy)]
struct Recipe {
    act: ActKind,
    off: u8,
    min: bool,
    /// Weight block: elements and bytes.
    bs: usize,
    wsz: usize,
    unpack: UnpackFn,
}

fn recipe(ty: GgmlType) -> Option<Recipe> {
    let r = |act, off, min, bs, wsz, unpack| {
        Some(Recipe {
            act,
            off,
            min,
            bs,
            wsz,
            unpack,
        })
    };
    match ty {
        GgmlType::Q4_0 => r(ActKind::Q80, 8, false, 32, 18, unpack_q4_0),
        GgmlType::Q4_1 => r(ActKind::Q81, 0, true, 32, 20, unpack_q4_1),
        GgmlType::Q5_0 => r(ActKind::Q80, 16, false, 32, 22, unpack_q5_0),
        GgmlType::Q5_1 => r(ActKind::Q81, 0, true, 32, 24, unpack_q5_1),
        GgmlType::Q8_0 => r(ActKind::Q80, 128, false, 32, 34, unpack_q8_0),
        GgmlType::Q4_K => r(ActKind::Q8K, 0, true, 256, 144, unpack_q4_k),
        GgmlType::Q5_K => r(ActKind::Q8K, 0, true, 256, 176, unpack_q5_k),
        GgmlType::Q6_K => r(ActKind::Q8K, 32, false, 256, 210, unpack_q6_k),
        _ => None,
    }
}

/// Whether `ty` has a tile kernel for rows of `n` elements.
pub(in crate::simd) fn supports(ty: GgmlType, n: usize) -> bool {
    match recipe(ty) {
        // Legacy steps take two 32-blocks at a time.
        Some(r) => n.is_multiple_of(64) && n.is_multiple_of(r.bs),
        None => false,
    }
}

fn f16(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

// ------------------------------------------------------------------ unpackers (one block)
// Each writes `bs` quants to `q`, `bs / 4` lane scales to `sc`, `bs / 4` lane mins to `mn`.

fn unpack_q4_0(b: &[u8], q: &mut [u8], sc: &mut [f32], _mn: &mut [f32]) {
    let d = f16(b, 0);
    for j in 0..16 {
        q[j] = b[2 + j] & 15;
        q[j + 16] = b[2 + j] >> 4;
    }
    sc[..8].fill(d);
}

fn unpack_q4_1(b: &[u8], q: &mut [u8], sc: &mut [f32], mn: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    for j in 0..16 {
        q[j] = b[4 + j] & 15;
        q[j + 16] = b[4 + j] >> 4;
    }
    sc[..8].fill(d);
    mn[..8].fill(0.0);
    mn[0] = m;
}

fn unpack_q5_0(b: &[u8], q: &mut [u8], sc: &mut [f32], _mn: &mut [f32]) {
    let d = f16(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..16 {
        q[j] = (b[6 + j] & 15) | (((qh >> j) & 1) << 4) as u8;
        q[j + 16] = (b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4) as u8;
    }
    sc[..8].fill(d);
}

fn unpack_q5_1(b: &[u8], q: &mut [u8], sc: &mut [f32], mn: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..16 {
        q[j] = (b[8 + j] & 15) | (((qh >> j) & 1) << 4) as u8;
        q[j + 16] = (b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4) as u8;
    }
    sc[..8].fill(d);
    mn[..8].fill(0.0);
    mn[0] = m;
}

fn unpack_q8_0(b: &[u8], q: &mut [u8], sc: &mut [f32], _mn: &mut [f32]) {
    let d = f16(b, 0);
    for j in 0..32 {
        q[j] = (b[2 + j] as i8 as i16 + 128) as u8;
    }
    sc[..8].fill(d);
}

fn unpack_q4_k(b: &[u8], q: &mut [u8], sc: &mut [f32], mn: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for j in 0..4 {
        let (s1, m1) = crate::kquants::get_scale_min_k4(2 * j, scales);
        let (s2, m2) = crate::kquants::get_scale_min_k4(2 * j + 1, scales);
        for l in 0..32 {
            q[64 * j + l] = qs[32 * j + l] & 15;
            q[64 * j + 32 + l] = qs[32 * j + l] >> 4;
        }
        sc[16 * j..16 * j + 8].fill(d * s1 as f32);
        sc[16 * j + 8..16 * j + 16].fill(d * s2 as f32);
        mn[16 * j..16 * j + 8].fill(-(dmin * m1 as f32));
        mn[16 * j + 8..16 * j + 16].fill(-(dmin * m2 as f32));
    }
}

fn unpack_q5_k(b: &[u8], q: &mut [u8], sc: &mut [f32], mn: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for j in 0..4 {
        let (s1, m1) = crate::kquants::get_scale_min_k4(2 * j, scales);
        let (s2, m2) = crate::kquants::get_scale_min_k4(2 * j + 1, scales);
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            q[64 * j + l] = (qs[32 * j + l] & 15) + h1;
            q[64 * j + 32 + l] = (qs[32 * j + l] >> 4) + h2;
        }
        sc[16 * j..16 * j + 8].fill(d * s1 as f32);
        sc[16 * j + 8..16 * j + 16].fill(d * s2 as f32);
        mn[16 * j..16 * j + 8].fill(-(dmin * m1 as f32));
        mn[16 * j + 8..16 * j + 16].fill(-(dmin * m2 as f32));
    }
}

fn unpack_q6_k(b: &[u8], q: &mut [u8], sc: &mut [f32], _mn: &mut [f32]) {
    let d = f16(b, 208);
    let scales = &b[192..208];
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let s = &scales[8 * h..8 * h + 8];
        let o = 128 * h;
        for l in 0..32 {
            q[o + l] = (ql[l] & 15) | ((qh[l] & 3) << 4);
            q[o + l + 32] = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
            q[o + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            q[o + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
        for lane in 0..8 {
            // Lanes of 4 elements; a 16-element sub-block spans 4 lanes.
            let is = lane / 4;
            let o4 = o / 4;
            sc[o4 + lane] = d * s[is] as i8 as f32;
            sc[o4 + 8 + lane] = d * s[is + 2] as i8 as f32;
            sc[o4 + 16 + lane] = d * s[is + 4] as i8 as f32;
            sc[o4 + 24 + lane] = d * s[is + 6] as i8 as f32;
        }
    }
}

// ------------------------------------------------------------------ packing

/// One packed group of rows: per step `s` and row `r`, quants at `q[(s·R + r)·64..]`, lane
/// scales at `sc[(s·R + r)·16..]`.
#[derive(Default)]
struct Packed {
    q: Vec<u8>,
    sc: Vec<f32>,
    row_q: Vec<u8>,
    row_sc: Vec<f32>,
    row_mn: Vec<f32>,
    /// Legacy types with a min: per block, the `m` of each row of the group (8 lanes).
    lm: Vec<f32>,
    /// K-quants: per step and row, the i16 sub-block scale of every i16 product lane.
    sw: Vec<i16>,
    /// K-quants: per superblock and row, `d`, `dmin` and the 8 six-bit mins (Q4_K/Q5_K) or the
    /// 16 i8 scales (Q6_K, for the −32 offset through the activation's block sums).
    kd: Vec<f32>,
    kdmin: Vec<f32>,
    kmins: Vec<i16>,
}

thread_local! {
    /// Per-thread packing buffers: grown on first use, then reused (no allocation per call).
    static PACK: RefCell<Packed> = RefCell::new(Packed::default());
}

fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// Unpack rows `rows` (each `rb` bytes of `w`) of `n` elements into `p` as one group.
fn pack_group(
    rc: &Recipe,
    n: usize,
    rb: usize,
    w: &[u8],
    rows: std::ops::Range<usize>,
    p: &mut Packed,
) {
    let gr = rows.len();
    let steps = n / 64;
    grow(&mut p.q, steps * gr * 64);
    grow(&mut p.sc, steps * gr * 16);
    grow(&mut p.row_q, n);
    grow(&mut p.row_sc, n / 4);
    grow(&mut p.row_mn, n / 4);
    let legacy_min = rc.min && rc.bs == 32;
    let nb = n / rc.bs;
    if legacy_min {
        grow(&mut p.lm, nb * 8);
    }
    for (g, r) in rows.clone().enumerate() {
        let row = &w[r * rb..(r + 1) * rb];
        if legacy_min {
            for b in 0..nb {
                p.lm[b * 8 + g] = f16(row, b * rc.wsz + 2);
            }
        }
        for (bi, blk) in row.chunks_exact(rc.wsz).enumerate() {
            let e = bi * rc.bs;
            (rc.unpack)(
                blk,
                &mut p.row_q[e..e + rc.bs],
                &mut p.row_sc[e / 4..(e + rc.bs) / 4],
                &mut p.row_mn[e / 4..(e + rc.bs) / 4],
            );
        }
        for s in 0..steps {
            let at = s * gr + g;
            p.q[at * 64..at * 64 + 64].copy_from_slice(&p.row_q[s * 64..s * 64 + 64]);
            p.sc[at * 16..at * 16 + 16].copy_from_slice(&p.row_sc[s * 16..s * 16 + 16]);
        }
    }
}

/// [`pack_group`] for the K-quants: the quants as there, plus the integer scales and the
/// per-superblock factors the 512-bit row kernels (`super::z512`) use, so the tile repeats
/// their arithmetic exactly.
fn pack_group_k(
    rc: &Recipe,
    n: usize,
    rb: usize,
    w: &[u8],
    rows: std::ops::Range<usize>,
    p: &mut Packed,
) {
    pack_group(rc, n, rb, w, rows.clone(), p);
    let gr = rows.len();
    let nsb = n / 256;
    let q6 = rc.off != 0;
    grow(&mut p.sw, nsb * 4 * gr * 32);
    grow(&mut p.kd, nsb * gr);
    grow(&mut p.kdmin, nsb * gr);
    grow(&mut p.kmins, nsb * gr * 16);
    for (g, r) in rows.enumerate() {
        for (b, blk) in w[r * rb..(r + 1) * rb].chunks_exact(rc.wsz).enumerate() {
            let at = b * gr + g;
            let sm: [(u8, u8); 8] =
                std::array::from_fn(|j| crate::kquants::get_scale_min_k4(j, &blk[4..16]));
            // i16 lane j of step k holds elements 2j, 2j+1 of the step: the scale of sub-block
            // 2k + j/16 (Q4_K/Q5_K, 32 elements) or 4k + j/8 (Q6_K, 16 elements).
            for k in 0..4 {
                let sw = &mut p.sw[((b * 4 + k) * gr + g) * 32..][..32];
                for (j, v) in sw.iter_mut().enumerate() {
                    *v = if q6 {
                        blk[192 + 4 * k + j / 8] as i8 as i16
                    } else {
                        sm[2 * k + j / 16].0 as i16
                    };
                }
            }
            let km = &mut p.kmins[at * 16..at * 16 + 16];
            if q6 {
                p.kd[at] = f16(blk, 208);
                for (j, v) in km.iter_mut().enumerate() {
                    *v = blk[192 + j] as i8 as i16;
                }
            } else {
                p.kd[at] = f16(blk, 0);
                p.kdmin[at] = f16(blk, 2);
                for (j, v) in km[..8].iter_mut().enumerate() {
                    *v = sm[j].1 as i16;
                }
            }
        }
    }
}

/// [`pack_group_k`] for Q4_K (`Q6 = false`) and Q6_K, vectorized: the same packed quants,
/// sub-block scales and per-superblock factors, written straight into the group's layout
/// (none of the f32 lane scales, which the K-quant kernel does not read).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pack_group_k_fast<const Q6: bool>(
    n: usize,
    rb: usize,
    w: &[u8],
    rows: std::ops::Range<usize>,
    p: &mut Packed,
) {
    let gr = rows.len();
    let nsb = n / 256;
    let wsz = if Q6 { 210 } else { 144 };
    assert!(rb == nsb * wsz && w.len() >= rows.end * rb);
    grow(&mut p.q, nsb * 4 * gr * 64);
    grow(&mut p.sw, nsb * 4 * gr * 32);
    grow(&mut p.kd, nsb * gr);
    grow(&mut p.kdmin, nsb * gr);
    grow(&mut p.kmins, nsb * gr * 16);
    let (qp, swp) = (p.q.as_mut_ptr(), p.sw.as_mut_ptr());
    let kmp = p.kmins.as_mut_ptr();
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    // Step `k` of superblock `b`: 64 quants at `qp`, 32 i16 scales at `swp`.
    let qat = |b: usize, k: usize, g: usize| qp.add(((b * 4 + k) * gr + g) * 64);
    let swat = |b: usize, k: usize, g: usize| swp.add(((b * 4 + k) * gr + g) * 32);
    for (g, r) in rows.enumerate() {
        for b in 0..nsb {
            let blk = w.as_ptr().add(r * rb + b * wsz);
            let at = b * gr + g;
            if Q6 {
                for h in 0..2 {
                    let qa = _mm256_loadu_si256(blk.add(64 * h) as *const __m256i);
                    let qb = _mm256_loadu_si256(blk.add(64 * h + 32) as *const __m256i);
                    let hh = _mm256_loadu_si256(blk.add(128 + 32 * h) as *const __m256i);
                    let q0 = _mm256_or_si256(
                        _mm256_and_si256(qa, m4),
                        _mm256_and_si256(_mm256_slli_epi16(hh, 4), m30),
                    );
                    let q1 = _mm256_or_si256(
                        _mm256_and_si256(qb, m4),
                        _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30),
                    );
                    let q2 = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                        _mm256_and_si256(hh, m30),
                    );
                    let q3 = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                        _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30),
                    );
                    let (s0, s1) = (qat(b, 2 * h, g), qat(b, 2 * h + 1, g));
                    _mm256_storeu_si256(s0 as *mut __m256i, q0);
                    _mm256_storeu_si256(s0.add(32) as *mut __m256i, q1);
                    _mm256_storeu_si256(s1 as *mut __m256i, q2);
                    _mm256_storeu_si256(s1.add(32) as *mut __m256i, q3);
                }
                // i16 lane j of step k: scale 4k + j/8.
                let sc = blk.add(192);
                for k in 0..4 {
                    let s = |i: usize| *sc.add(4 * k + i) as i8 as i16;
                    let lo = _mm256_set_m128i(_mm_set1_epi16(s(1)), _mm_set1_epi16(s(0)));
                    let hi = _mm256_set_m128i(_mm_set1_epi16(s(3)), _mm_set1_epi16(s(2)));
                    let d = swat(b, k, g);
                    _mm256_storeu_si256(d as *mut __m256i, lo);
                    _mm256_storeu_si256(d.add(16) as *mut __m256i, hi);
                }
                let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc as *const __m128i));
                _mm256_storeu_si256(kmp.add(at * 16) as *mut __m256i, sc16);
                p.kd[at] = super::f16_ld(blk.add(208));
            } else {
                let scales = std::slice::from_raw_parts(blk.add(4), 12);
                let sm: [(u8, u8); 8] =
                    std::array::from_fn(|j| crate::kquants::get_scale_min_k4(j, scales));
                for k in 0..4 {
                    let v = _mm256_loadu_si256(blk.add(16 + 32 * k) as *const __m256i);
                    let d = qat(b, k, g);
                    _mm256_storeu_si256(d as *mut __m256i, _mm256_and_si256(v, m4));
                    _mm256_storeu_si256(
                        d.add(32) as *mut __m256i,
                        _mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                    );
                    // i16 lane j of step k: scale of sub-block 2k + j/16.
                    let d = swat(b, k, g);
                    _mm256_storeu_si256(d as *mut __m256i, _mm256_set1_epi16(sm[2 * k].0 as i16));
                    _mm256_storeu_si256(
                        d.add(16) as *mut __m256i,
                        _mm256_set1_epi16(sm[2 * k + 1].0 as i16),
                    );
                }
                for j in 0..8 {
                    *kmp.add(at * 16 + j) = sm[j].1 as i16;
                }
                p.kd[at] = super::f16_ld(blk);
                p.kdmin[at] = super::f16_ld(blk.add(2));
            }
        }
    }
}

/// [`pack_group`] for Q5_0, vectorized: the same quants and lane scales, written straight
/// into the group's layout.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pack_group_q5_0(
    n: usize,
    rb: usize,
    w: &[u8],
    rows: std::ops::Range<usize>,
    p: &mut Packed,
) {
    let gr = rows.len();
    let nb = n / 32;
    assert!(rb == nb * 22 && nb.is_multiple_of(2) && w.len() >= rows.end * rb);
    grow(&mut p.q, nb / 2 * gr * 64);
    grow(&mut p.sc, nb / 2 * gr * 16);
    let (qp, scp) = (p.q.as_mut_ptr(), p.sc.as_mut_ptr());
    let m4 = _mm_set1_epi8(0x0F);
    for (g, r) in rows.enumerate() {
        for bi in 0..nb {
            let blk = w.as_ptr().add(r * rb + bi * 22);
            // Block `bi` is half `bi % 2` of step `bi / 2`.
            let at = (bi / 2) * gr + g;
            let qh = (blk.add(2) as *const u32).read_unaligned();
            let v = _mm_loadu_si128(blk.add(6) as *const __m128i);
            let lo = _mm_and_si128(v, m4);
            let hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
            let q = _mm256_or_si256(
                _mm256_set_m128i(hi, lo),
                _mm256_maskz_set1_epi8(qh as __mmask32, 16),
            );
            _mm256_storeu_si256(qp.add(at * 64 + (bi % 2) * 32) as *mut __m256i, q);
            _mm256_storeu_ps(
                scp.add(at * 16 + (bi % 2) * 8),
                _mm256_set1_ps(super::f16_ld(blk)),
            );
        }
    }
}

// ------------------------------------------------------------------ the micro-kernel

/// Lanes 0..8 = a, 8..16 = b.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn halves(a: f32, b: f32) -> __m512 {
    let lo = _mm512_castps_si512(_mm512_set1_ps(a));
    _mm512_castsi512_ps(_mm512_inserti64x4(
        lo,
        _mm256_castps_si256(_mm256_set1_ps(b)),
        1,
    ))
}

/// Activation kinds as const-generic tags.
const A80: u8 = 0;
const A81: u8 = 1;

/// `R` packed rows × `P` pairs of activation columns `y` (a lone column: the same pointer
/// twice) over `nb` 32-blocks, in ggml's order as `super::z512`'s legacy rows compute it: per
/// (row, column) 8 f32 lanes (a `zmm` holds the row's two columns of a pair), one fma per
/// block of `d·dy` × the block's 4-group i32 sums; with `MIN`, per (row, column) `summs =
/// fma(m, s, summs)` per block (16 lanes per pair: rows × its two columns); result
/// `hsum_float_8 + summs`. `ACT` the activation layout, `OFF` whether the packed quants carry
/// an offset. Each weight block is loaded once per block for all `2·P` columns.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn kernel<
    const R: usize,
    const P: usize,
    const ACT: u8,
    const MIN: bool,
    const OFF: bool,
>(
    off: u8,
    nb: usize,
    p: &Packed,
    y: [[*const u8; 2]; P],
) -> [[[f32; R]; 2]; P] {
    let z = _mm512_setzero_si512();
    let offv = _mm512_set1_epi8(off as i8);
    let (qp, scp, lmp) = (p.q.as_ptr(), p.sc.as_ptr(), p.lm.as_ptr());
    let (asz, aq) = if ACT == A80 { (34, 2) } else { (36, 4) };
    let mut acc = [[_mm512_setzero_ps(); P]; R];
    let mut summs = [_mm512_setzero_ps(); P];
    for b in 0..nb {
        let mut yv = [z; P];
        let mut dyv = [_mm512_setzero_ps(); P];
        let mut corr = [z; P];
        for q in 0..P {
            let (ya, yb) = (y[q][0].add(b * asz), y[q][1].add(b * asz));
            yv[q] = ld2(ya.add(aq), yb.add(aq));
            dyv[q] = halves(super::f16_ld(ya), super::f16_ld(yb));
            if OFF {
                corr[q] = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, offv, yv[q]));
            }
            if MIN {
                let m = _mm512_broadcast_f32x8(_mm256_loadu_ps(lmp.add(b * 8)));
                let sv = halves(super::f16_ld(ya.add(2)), super::f16_ld(yb.add(2)));
                summs[q] = _mm512_fmadd_ps(m, sv, summs[q]);
            }
        }
        // Block `b` is half `b % 2` of step `b / 2`.
        let (s, h) = (b / 2, b % 2);
        for r in 0..R {
            let at = s * R + r;
            let wq = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                qp.add(at * 64 + h * 32) as *const __m256i
            ));
            let d = _mm512_set1_ps(*scp.add(at * 16 + h * 8));
            for q in 0..P {
                let si = _mm512_dpbusd_epi32(corr[q], wq, yv[q]);
                acc[r][q] =
                    _mm512_fmadd_ps(_mm512_mul_ps(d, dyv[q]), _mm512_cvtepi32_ps(si), acc[r][q]);
            }
        }
    }
    let mut out = [[[0f32; R]; 2]; P];
    for q in 0..P {
        let mut ms = [0f32; 16];
        _mm512_storeu_ps(ms.as_mut_ptr(), summs[q]);
        for r in 0..R {
            let [a0, a1] = hsum_halves(acc[r][q]);
            out[q][0][r] = a0;
            out[q][1][r] = a1;
            if MIN {
                out[q][0][r] += ms[r];
                out[q][1][r] += ms[8 + r];
            }
        }
    }
    out
}

/// Eight i32 vectors' lane sums as the 8 lanes of one vector (exact; a transposing add tree).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tree8(v: &[__m512i; 8]) -> __m256i {
    let r2 = |a, b| _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let r4 =
        |ab, cd| _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    // Per 128-bit lane: partial sums of [v0, v1, v2, v3] and [v4, v5, v6, v7].
    let s1 = fold8(r4(r2(v[0], v[1]), r2(v[2], v[3])));
    let s2 = fold8(r4(r2(v[4], v[5]), r2(v[6], v[7])));
    _mm256_add_epi32(
        _mm256_permute2x128_si256(s1, s2, 0x20),
        _mm256_permute2x128_si256(s1, s2, 0x31),
    )
}

/// Rows × columns of a K-quant register tile as 8 output lanes, lane `c·4 + r`.
const KR: usize = 4;

/// The K-quant tile: `R` (≤ 4) packed rows × `C` (≤ 2) columns over `nsb` superblocks with
/// exactly the per-(row, column) arithmetic of `super::z512`'s `q4_k_n`/`q5_k_n`/`q6_k_n`
/// (ggml's single-token order, see there) or, for columns with `alt` set, of llama.cpp's
/// batched kernels (`crate::vec_dot_tile_batched`). Integer part: per 64-element step i16
/// products (`maddubs`) weighted by the sub-block scales into i32 lanes (`vpdpwssd`). The
/// float part runs with one output per lane (lane `c·4 + r`), the i32 lanes reduced to it by
/// [`tree8`]:
/// - Q4_K/Q5_K: per step `S` and `M` (Σ min·bsum of its two sub-blocks); batched columns do
///   `acc = fma(S, d·dy, acc)`, `accm = fma(M, dmin·dy, accm)` per step, the others once per
///   superblock with the superblock's sums; result `acc − accm`.
/// - Q6_K: lanes start at −32·Σ scale·bsum; batched columns `acc = fma(S·d, dy, acc)` per
///   superblock, the others ggml's 8 lanes per output (`fold8`), one fma by `d·dy`,
///   `hsum_float_8` last.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn kernel_k<const R: usize, const C: usize, const Q6: bool>(
    nsb: usize,
    p: &Packed,
    y: [*const u8; C],
    alt: [bool; C],
) -> [[f32; R]; C] {
    const { assert!(R <= KR && C <= 2) };
    let z = _mm512_setzero_si512();
    let (qp, swp) = (p.q.as_ptr(), p.sw.as_ptr());
    let mut kalt: __mmask8 = 0;
    for c in 0..C {
        if alt[c] {
            kalt |= (((1u32 << R) - 1) << (c * KR)) as u8;
        }
    }
    // Q6_K single-token order: 8 f32 lanes per (row, column).
    let mut acc6 = [[_mm256_setzero_ps(); C]; R];
    // One output per lane.
    let mut acc = _mm256_setzero_ps();
    let mut accm = _mm256_setzero_ps();
    let mut dd = [0f32; 8];
    let mut dm = [0f32; 8];
    let mut yd8 = [0f32; 8];
    let mut kd8 = [0f32; 8];
    for b in 0..nsb {
        for c in 0..C {
            let yd = (y[c].add(b * 292) as *const f32).read_unaligned();
            for r in 0..R {
                let o = c * KR + r;
                dd[o] = p.kd[b * R + r] * yd;
                dm[o] = p.kdmin[b * R + r] * yd;
                yd8[o] = yd;
                kd8[o] = p.kd[b * R + r];
            }
        }
        let (ddv, dmv) = (_mm256_loadu_ps(dd.as_ptr()), _mm256_loadu_ps(dm.as_ptr()));
        let mut sumi = [[z; C]; R];
        // Q4_K/Q5_K: Σ min·bsum per step (lane k of `mk`), then per step across outputs.
        let mut mt = [_mm256_setzero_si256(); 4];
        if Q6 {
            for c in 0..C {
                let bs = _mm256_loadu_si256(y[c].add(b * 292 + 260) as *const __m256i);
                for r in 0..R {
                    let sc = p.kmins.as_ptr().add((b * R + r) * 16);
                    let sc16 = _mm256_loadu_si256(sc as *const __m256i);
                    let corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
                    sumi[r][c] = _mm512_sub_epi32(z, _mm512_zextsi256_si512(corr));
                }
            }
        } else {
            let mut mk = [_mm_setzero_si128(); 8];
            for c in 0..C {
                let bs = _mm256_loadu_si256(y[c].add(b * 292 + 260) as *const __m256i);
                let bs8 =
                    _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                for r in 0..R {
                    let mins =
                        _mm_loadu_si128(p.kmins.as_ptr().add((b * R + r) * 16) as *const __m128i);
                    mk[c * KR + r] = _mm_madd_epi16(bs8, mins);
                }
            }
            // Transpose: mt[k] lane o = M of output o at step k.
            let y4: [__m256i; 4] = std::array::from_fn(|j| _mm256_set_m128i(mk[j + 4], mk[j]));
            let t0 = _mm256_unpacklo_epi32(y4[0], y4[1]);
            let t1 = _mm256_unpackhi_epi32(y4[0], y4[1]);
            let t2 = _mm256_unpacklo_epi32(y4[2], y4[3]);
            let t3 = _mm256_unpackhi_epi32(y4[2], y4[3]);
            mt = [
                _mm256_unpacklo_epi64(t0, t2),
                _mm256_unpackhi_epi64(t0, t2),
                _mm256_unpacklo_epi64(t1, t3),
                _mm256_unpackhi_epi64(t1, t3),
            ];
        }
        let mut ssb = _mm256_setzero_si256();
        for k in 0..4 {
            let s = b * 4 + k;
            let mut yv = [z; C];
            for c in 0..C {
                yv[c] = _mm512_loadu_si512(y[c].add(b * 292 + 4 + 64 * k) as *const _);
            }
            for r in 0..R {
                let at = s * R + r;
                let wq = _mm512_loadu_si512(qp.add(at * 64) as *const _);
                let sw = _mm512_loadu_si512(swp.add(at * 32) as *const _);
                for c in 0..C {
                    let pr = _mm512_maddubs_epi16(wq, yv[c]);
                    sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], pr, sw);
                }
            }
            if !Q6 {
                let mut v = [z; 8];
                for c in 0..C {
                    for r in 0..R {
                        v[c * KR + r] = sumi[r][c];
                        sumi[r][c] = z;
                    }
                }
                let s8 = tree8(&v);
                ssb = _mm256_add_epi32(ssb, s8);
                if kalt != 0 {
                    acc = _mm256_mask3_fmadd_ps(_mm256_cvtepi32_ps(s8), ddv, acc, kalt);
                    accm = _mm256_mask3_fmadd_ps(_mm256_cvtepi32_ps(mt[k]), dmv, accm, kalt);
                }
            }
        }
        if Q6 {
            if kalt != 0 {
                let mut v = [z; 8];
                for c in 0..C {
                    for r in 0..R {
                        v[c * KR + r] = sumi[r][c];
                    }
                }
                let t = _mm256_mul_ps(_mm256_cvtepi32_ps(tree8(&v)), _mm256_loadu_ps(kd8.as_ptr()));
                acc = _mm256_mask3_fmadd_ps(t, _mm256_loadu_ps(yd8.as_ptr()), acc, kalt);
            }
            for c in 0..C {
                if alt[c] {
                    continue;
                }
                for r in 0..R {
                    let d = _mm256_set1_ps(dd[c * KR + r]);
                    let v = _mm256_cvtepi32_ps(fold8(sumi[r][c]));
                    acc6[r][c] = _mm256_fmadd_ps(d, v, acc6[r][c]);
                }
            }
        } else if kalt != 0xff {
            let msb = _mm256_add_epi32(
                _mm256_add_epi32(mt[0], mt[1]),
                _mm256_add_epi32(mt[2], mt[3]),
            );
            let k1 = !kalt;
            acc = _mm256_mask3_fmadd_ps(_mm256_cvtepi32_ps(ssb), ddv, acc, k1);
            accm = _mm256_mask3_fmadd_ps(_mm256_cvtepi32_ps(msb), dmv, accm, k1);
        }
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_sub_ps(acc, accm));
    let mut out = [[0f32; R]; C];
    for c in 0..C {
        for r in 0..R {
            out[c][r] = if Q6 && !alt[c] {
                hsum256(acc6[r][c])
            } else {
                lanes[c * KR + r]
            };
        }
    }
    out
}

/// Every column against one packed K-quant group of `R` rows starting at row `r0`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn run_group_k<const R: usize, const Q6: bool>(
    nsb: usize,
    p: &Packed,
    acts: &[u8],
    arb: usize,
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
    r0: usize,
    alt: &[bool],
) {
    let alt_at = |c: usize| alt.get(c).copied().unwrap_or(false);
    let ap = acts.as_ptr();
    let mut c = 0;
    while c + GC <= ncols {
        let y = [ap.add(c * arb), ap.add((c + 1) * arb)];
        let res = kernel_k::<R, GC, Q6>(nsb, p, y, [alt_at(c), alt_at(c + 1)]);
        for k in 0..GC {
            out[(c + k) * out_stride + r0..][..R].copy_from_slice(&res[k]);
        }
        c += GC;
    }
    while c < ncols {
        let y = [ap.add(c * arb)];
        let [res] = kernel_k::<R, 1, Q6>(nsb, p, y, [alt_at(c)]);
        out[c * out_stride + r0..][..R].copy_from_slice(&res);
        c += 1;
    }
}

/// [`tile_typed`] for the K-quants: groups of [`GRK`] rows, then single rows.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_k<const Q6: bool>(
    rc: &Recipe,
    n: usize,
    w: &[u8],
    nrows: usize,
    acts: &[u8],
    arb: usize,
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
    alt: &[bool],
) {
    let rb = n / rc.bs * rc.wsz;
    let nsb = n / 256;
    PACK.with(|cell| {
        let p = &mut *cell.borrow_mut();
        // Q4_K (144-byte blocks) and Q6_K have a vectorized packer; Q5_K the generic one.
        let fast = Q6 || rc.wsz == 144;
        let pack = |p: &mut Packed, rows: std::ops::Range<usize>| {
            if fast {
                pack_group_k_fast::<Q6>(n, rb, w, rows, p)
            } else {
                pack_group_k(rc, n, rb, w, rows, p)
            }
        };
        let mut r = 0;
        while r + GRK <= nrows {
            pack(p, r..r + GRK);
            run_group_k::<GRK, Q6>(nsb, p, acts, arb, ncols, out, out_stride, r, alt);
            r += GRK;
        }
        while r < nrows {
            pack(p, r..r + 1);
            run_group_k::<1, Q6>(nsb, p, acts, arb, ncols, out, out_stride, r, alt);
            r += 1;
        }
    });
}

/// K-quant rows per packed group: accumulators and the superblock's i32 sums of 4 × 2
/// (row, column) pairs fill half the 32 registers.
const GRK: usize = 4;

/// Rows per packed group and columns per kernel call.
const GR: usize = 8;
const GC: usize = 2;

/// Every column against one packed group of `R` rows starting at row `r0`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn run_group<const R: usize, const ACT: u8, const MIN: bool, const OFF: bool>(
    off: u8,
    steps: usize,
    p: &Packed,
    acts: &[u8],
    arb: usize,
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
    r0: usize,
) {
    let ap = acts.as_ptr();
    let nb = 2 * steps;
    let col = |c: usize| ap.add(c * arb);
    let mut c = 0;
    // Four columns (two pairs) per pass while there are, then a pair (a lone last column runs
    // as both halves of one).
    while c + 4 <= ncols {
        let y = [[col(c), col(c + 1)], [col(c + 2), col(c + 3)]];
        let res = kernel::<R, 2, ACT, MIN, OFF>(off, nb, p, y);
        for k in 0..4 {
            out[(c + k) * out_stride + r0..][..R].copy_from_slice(&res[k / 2][k % 2]);
        }
        c += 4;
    }
    while c < ncols {
        let two = c + 1 < ncols;
        let [res] = kernel::<R, 1, ACT, MIN, OFF>(off, nb, p, [[col(c), col(c + two as usize)]]);
        for k in 0..1 + two as usize {
            out[(c + k) * out_stride + r0..][..R].copy_from_slice(&res[k]);
        }
        c += 2;
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_typed<const ACT: u8, const MIN: bool, const OFF: bool>(
    rc: &Recipe,
    n: usize,
    w: &[u8],
    nrows: usize,
    acts: &[u8],
    arb: usize,
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let rb = n / rc.bs * rc.wsz;
    let steps = n / 64;
    let off = rc.off;
    // Q5_0 (22-byte blocks) has a vectorized packer; the other types the generic one.
    let q5_0 = rc.wsz == 22;
    let pack_group = |rc: &Recipe, n, rb, w, rows: std::ops::Range<usize>, p: &mut Packed| {
        if q5_0 {
            pack_group_q5_0(n, rb, w, rows, p)
        } else {
            pack_group(rc, n, rb, w, rows, p)
        }
    };
    PACK.with(|cell| {
        let p = &mut *cell.borrow_mut();
        let mut r0 = 0;
        while r0 < nrows {
            let gr = (nrows - r0).min(GR);
            if gr == GR {
                pack_group(rc, n, rb, w, r0..r0 + GR, p);
                run_group::<GR, ACT, MIN, OFF>(
                    off, steps, p, acts, arb, ncols, out, out_stride, r0,
                );
            } else {
                let mut r = r0;
                if gr >= 4 {
                    pack_group(rc, n, rb, w, r..r + 4, p);
                    run_group::<4, ACT, MIN, OFF>(
                        off, steps, p, acts, arb, ncols, out, out_stride, r,
                    );
                    r += 4;
                }
                while r < r0 + gr {
                    pack_group(rc, n, rb, w, r..r + 1, p);
                    run_group::<1, ACT, MIN, OFF>(
                        off, steps, p, acts, arb, ncols, out, out_stride, r,
                    );
                    r += 1;
                }
            }
            r0 += gr;
        }
    });
}

/// `out[c·out_stride + r] = dot(row r, act c)` for `nrows` rows of `w` and `ncols` activation
/// rows. The caller (`crate::vec_dot_tile`) has checked the lengths, `supports(ty, n)` and the
/// CPU level.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(in crate::simd) unsafe fn vec_dot_tile(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    nrows: usize,
    acts: &[u8],
    ncols: usize,
    out: &mut [f32],
    out_stride: usize,
    alt: &[bool],
) {
    let rc = recipe(ty).expect("supports() checked by the caller");
    let arb = match rc.act {
        ActKind::Q80 => n / 32 * 34,
        ActKind::Q81 => n / 32 * 36,
        ActKind::Q8K => n / 256 * 292,
    };
    assert!(
        w.len() >= nrows * (n / rc.bs * rc.wsz),
        "vec_dot_tile: weights too short"
    );
    assert!(
        acts.len() >= ncols * arb,
        "vec_dot_tile: activations too short"
    );
    if ncols == 0 || nrows == 0 {
        return;
    }
    assert!(
        out_stride >= nrows && out.len() >= (ncols - 1) * out_stride + nrows,
        "vec_dot_tile: output too short"
    );
    let (w, a) = (w, acts);
    match (rc.act, rc.min, rc.off != 0) {
        (ActKind::Q80, false, true) => {
            tile_typed::<A80, false, true>(&rc, n, w, nrows, a, arb, ncols, out, out_stride)
        }
        (ActKind::Q81, true, false) => {
            tile_typed::<A81, true, false>(&rc, n, w, nrows, a, arb, ncols, out, out_stride)
        }
        (ActKind::Q8K, true, false) => {
            tile_k::<false>(&rc, n, w, nrows, a, arb, ncols, out, out_stride, alt)
        }
        (ActKind::Q8K, false, true) => {
            tile_k::<true>(&rc, n, w, nrows, a, arb, ncols, out, out_stride, alt)
        }
        _ => unreachable!("every recipe is one of the four kernel shapes"),
    }
}
