//! Genuine 512-bit AVX-512 dot kernels (F/BW/VL + VNNI, plus VBMI where the CPU has it) for
//! the types whose AVX-512 level used to run their AVX2 kernels: Q3_K, IQ4_XS, TQ1_0, TQ2_0
//! (vs Q8_K) and IQ4_NL, MXFP4 (vs Q8_0).
//!
//! Every kernel here is **bit-identical** to the AVX2 kernel of its type (`super::avx2::q3_k`,
//! `iquants::iq4::avx2`, `iquants::lowbit_x86`, `mxfp4::avx2`, `ternary::avx2`), which is
//! what the AVX2 level runs and what tests/c_z512_more_props.rs compares against bit for bit:
//! the integer block sums are exact (Q3_K and TQ1_0/TQ2_0 take the activation block sums from
//! the Q8_K `bsums`, as the quantizers write them), and each output sees the AVX2 kernel's f32
//! operations in its order.
//!
//! - Q8_K types (`q8k_kernel!`): per super-block one `zmm` of 16 exact i32 partial sums; eight
//!   blocks' sums reduced together (`hsum8`), their `d_w·d_a` from two gathers, the eight
//!   products `(d_w·d_a)·Σ` in one vector, then added to the scalar accumulator one by one in
//!   block order, as the AVX2 kernels do block by block.
//! - IQ4_NL / MXFP4 (`nl_kernel!`): the AVX2 kernels add one 8-lane `d·p` per 32-block to an
//!   8-lane accumulator; that chain stays, everything before it runs two blocks per `zmm`.
//!
//! Inline asm pins a few single instructions that LLVM would otherwise rewrite into slower
//! sequences (see the helpers); f16 scalars come from `super::f16_ld` (inline asm as well).
//!
//! Safety: every `unsafe fn` needs AVX-512 F/BW/VL/VNNI (plus AVX2/FMA/F16C; the `_vbmi`
//! variants AVX512_VBMI); they are only reachable through `dot`, which `super::dot_avx512`
//! hands out after `crate::simd::dot_fn_at` checked the CPU (and `dot` checks VBMI itself).
//! Each public kernel asserts its slice lengths (`check`) before any raw load, and every load
//! stays inside the block it belongs to.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

// Prefetch distance and helpers as `super::z512` (a thread walks contiguous rows, so `PF`
// lands in the rows it takes next); `vpdpwssd` and the block prefetch as the IQ kernels.
use super::z512::{bcast32, bcast_w2, bcast_w4, hsum256, hsum_i32_512, ld512, pf, PF};
use super::{check, f32_ld, ld256, DotFn};
use crate::iquants::iq_z512::{dpwssd, prefetch};
use crate::GgmlType;
use std::arch::x86_64::*;

// `prefetch` uses the IQ kernels' copy of the distance.
const _: () = assert!(PF == crate::iquants::iq_z512::PF);

/// Bytes: `a` in lanes 0..32, `b` in lanes 32..64.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn halves_epi8(a: u8, b: u8) -> __m512i {
    _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set1_epi8(a as i8)),
        _mm256_set1_epi8(b as i8),
        1,
    )
}

// LLVM rewrites a few AVX-512 intrinsics into sequences that cost more uops on Intel cores
// (where 512-bit shuffles and inserts of registers run on port 5 only): `vpdpwssd` into
// `vpmaddwd` + `vpaddd`, a byte-masked add into `vpor` + a blend, a masked broadcast from
// memory into a broadcast + a register insert. The helpers below (and `dpwssd`, shared with
// iquants/iq_z512.rs) pin the one instruction down with inline asm (measured: Q3_K and IQ4_XS
// ran 10-15% slower with the intrinsics).

/// `a` with the bytes selected by `k` replaced by `a + b` (one masked `vpaddb`, in place).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mask_add_epi8(a: __m512i, k: __mmask64, b: __m512i) -> __m512i {
    let mut d = a;
    std::arch::asm!(
        "vpaddb {d} {{{k}}}, {d}, {b}",
        d = inout(zmm_reg) d,
        k = in(kreg) k,
        b = in(zmm_reg) b,
        options(pure, nomem, nostack, preserves_flags),
    );
    d
}

/// The 16 bytes at `p0` in 128-bit lanes 0 and 1, those at `p1` in lanes 2 and 3 (a broadcast
/// load and a masked broadcast load: no port-5 insert).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn bcast128x2(p0: *const u8, p1: *const u8) -> __m512i {
    let v: __m512i;
    std::arch::asm!(
        "vbroadcasti32x4 {v}, xmmword ptr [{p0}]",
        "vbroadcasti32x4 {v} {{{k}}}, xmmword ptr [{p1}]",
        v = out(zmm_reg) v,
        p0 = in(reg) p0,
        p1 = in(reg) p1,
        k = in(kreg) 0xff00u16,
        options(pure, readonly, nostack, preserves_flags),
    );
    v
}

/// 32 bytes at `p0` then 32 bytes at `p1` (a load and an insert from memory: no port-5
/// insert of a register).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn ld2m(p0: *const u8, p1: *const u8) -> __m512i {
    let v: __m512i;
    std::arch::asm!(
        "vbroadcasti64x4 {v}, ymmword ptr [{p0}]",
        "vinserti64x4 {v}, {v}, ymmword ptr [{p1}], 1",
        v = out(zmm_reg) v,
        p0 = in(reg) p0,
        p1 = in(reg) p1,
        options(pure, readonly, nostack, preserves_flags),
    );
    v
}

// ------------------------------------------------------------------ Q8_K driver

/// 64-byte aligned scratch for a vector stored and read back in parts.
#[repr(C, align(64))]
struct A64<T>(T);

/// `[a.lo + a.hi, b.hi + b.lo]` (256-bit halves): one blend, one lane shuffle, one add.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn red256(a: __m512i, b: __m512i) -> __m512i {
    let keep = _mm512_mask_blend_epi32(0xff00, a, b);
    let swap = _mm512_shuffle_i64x2::<0x4e>(a, b);
    _mm512_add_epi32(keep, swap)
}

/// Per 128-bit lane `i`: `a`'s lanes `2⌊i/2⌋ + {0, 1}` summed for even `i`, `b`'s for odd `i`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn red128(a: __m512i, b: __m512i) -> __m512i {
    let keep = _mm512_mask_blend_epi32(0xf0f0, a, b);
    let idx = _mm512_setr_epi64(2, 3, 8, 9, 6, 7, 12, 13);
    _mm512_add_epi32(keep, _mm512_permutex2var_epi64(a, idx, b))
}

/// Per 128-bit lane: qword 0 = Σ of `a`'s two qwords there, qword 1 = Σ of `b`'s.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn red64(a: __m512i, b: __m512i) -> __m512i {
    let keep = _mm512_mask_blend_epi32(0xcccc, a, b);
    let idx = _mm512_setr_epi64(1, 8, 3, 10, 5, 12, 7, 14);
    _mm512_add_epi32(keep, _mm512_permutex2var_epi64(a, idx, b))
}

/// Dword of block `b`'s total in the result of [`hsum8`].
const POS8: [usize; 8] = [0, 8, 4, 12, 2, 10, 6, 14];

/// The totals (exact, wrapping as the hardware does) of the 16 i32 lanes of each of eight
/// block vectors, block `b`'s in dword `POS8[b]`: a transpose-and-add tree, about 1.5 lane
/// shuffles (port 5) per block where a reduction per block takes four.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn hsum8(v: &[__m512i; 8]) -> __m512i {
    let w01 = red256(v[0], v[1]);
    let w23 = red256(v[2], v[3]);
    let w45 = red256(v[4], v[5]);
    let w67 = red256(v[6], v[7]);
    // 128-bit lanes: [b0, b2, b1, b3] and [b4, b6, b5, b7].
    let z = red64(red128(w01, w23), red128(w45, w67));
    // Qwords [b0, b4, b2, b6, b1, b5, b3, b7]; add the two dwords of each.
    _mm512_add_epi32(z, _mm512_shuffle_epi32::<0xb1>(z))
}

/// Block index `b` in dword `POS8[b]` (odd dwords: 0).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pos8_blocks() -> __m512i {
    _mm512_setr_epi32(0, 0, 4, 0, 2, 0, 6, 0, 1, 0, 5, 0, 3, 0, 7, 0)
}

/// `vpermw` indices: word `j` of the result = word `2j + w` of the source (word `w` of each
/// dword, packed), `j < 16`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dword_words(w: i16) -> __m512i {
    let j = _mm512_setr_epi32(
        0x0002_0000,
        0x0006_0004,
        0x000a_0008,
        0x000e_000c,
        0x0012_0010,
        0x0016_0014,
        0x001a_0018,
        0x001e_001c,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    );
    _mm512_add_epi16(j, _mm512_set1_epi16(w))
}

/// A Q8_K kernel (target features `$feat`, `$wsz`-byte weight blocks) from
/// `$block(x, y) -> __m512i` (16 i32 lanes whose sum is the super-block's exact integer Σ):
/// `acc += (d_w · d_a) · Σ` per block in block order, `d_w` the f16 at `$doff` — the AVX2
/// kernels' float sequence (TQ2_0's `Σ · (d_a · d_w)` is the same two products). Eight blocks
/// at a time: their sums reduced together ([`hsum8`]), `d_w` and `d_a` by two dword gathers
/// straight into the lanes of the totals (building them from scalars would take a port-5
/// insert each), the eight products in one vector, then added to `acc` one by one in block
/// order; the last `nb % 8` blocks one at a time.
macro_rules! q8k_kernel {
    ($(#[$m:meta])* $name:ident, $feat:literal, $wsz:expr, $doff:expr, $block:ident) => {
        $(#[$m])*
        #[target_feature(enable = $feat)]
        pub unsafe fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = check(n, w, a, 256, $wsz, 292);
            let (wp, ap) = (w.as_ptr(), a.as_ptr());
            let mut acc = 0f32;
            let mut i = 0;
            while i + 8 <= nb {
                let (x, y) = (wp.add($wsz * i), ap.add(292 * i));
                let mut v = [_mm512_setzero_si512(); 8];
                for b in 0..8 {
                    let (xb, yb) = (x.add($wsz * b), y.add(292 * b));
                    prefetch(xb, $wsz);
                    v[b] = $block(xb, yb);
                }
                let tot = _mm512_cvtepi32_ps(hsum8(&v));
                // The scales by dword gathers into the lanes of the totals.
                let ix = _mm512_mullo_epi32(pos8_blocks(), _mm512_set1_epi32($wsz));
                let iy = _mm512_mullo_epi32(pos8_blocks(), _mm512_set1_epi32(292));
                // Four bytes holding d_w, inside the block (d_w in the high word when it is
                // the block's last two bytes).
                let goff = if $doff + 4 <= $wsz { $doff } else { $doff - 2 };
                let gx = _mm512_mask_i32gather_epi32::<1>(
                    _mm512_setzero_si512(),
                    0x5555,
                    ix,
                    x.add(goff) as *const i32,
                );
                let dy = _mm512_mask_i32gather_ps::<1>(
                    _mm512_setzero_ps(),
                    0x5555,
                    iy,
                    y as *const f32,
                );
                let dx = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(
                    dword_words(($doff - goff) as i16 / 2),
                    gx,
                )));
                let mut t = A64([0f32; 16]);
                _mm512_store_ps(t.0.as_mut_ptr(), _mm512_mul_ps(_mm512_mul_ps(dx, dy), tot));
                for b in 0..8 {
                    acc += t.0[POS8[b]];
                }
                i += 8;
            }
            while i < nb {
                let (x, y) = (wp.add($wsz * i), ap.add(292 * i));
                let s = hsum_i32_512($block(x, y));
                acc += super::f16_ld(x.add($doff)) * f32_ld(y) * s as f32;
                i += 1;
            }
            acc
        }
    };
}

// ------------------------------------------------------------------ TQ2_0 (66 B / 256)

/// The exact Σ (q − 1)·a of one TQ2_0 super-block, as the AVX2 kernel (`crate::ternary`)
/// computes it: Σ q·a − Σ bsums.
///
/// Element `128j + 32l + m` is bits `2l..2l+2` of `qs[32j + m]`; a `zmm` of 64 activations
/// (`l` and `l + 1` of one `j`) pairs with the same 32 code bytes in both halves. Instead of
/// shifting the codes down, each half keeps them in place under a mask (`q·4^l`, at most 192,
/// still a u8 for `vpdpbusd`): the sums come out scaled by `4^l` per half, exact multiples, and
/// one arithmetic shift per accumulator at the end divides the scale back out exactly.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tq2_0_block(x: *const u8, y: *const u8) -> __m512i {
    let m01 = halves_epi8(0x03, 0x0c);
    let m23 = halves_epi8(0x30, 0xc0);
    let mut s01 = _mm512_setzero_si512();
    let mut s23 = _mm512_setzero_si512();
    for j in 0..2 {
        let q = bcast32(x.add(32 * j));
        let yj = y.add(4 + 128 * j);
        s01 = _mm512_dpbusd_epi32(s01, _mm512_and_si512(q, m01), ld512(yj));
        s23 = _mm512_dpbusd_epi32(s23, _mm512_and_si512(q, m23), ld512(yj.add(64)));
    }
    let sh01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    let sh23 = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6);
    let s = _mm512_add_epi32(_mm512_srav_epi32(s01, sh01), _mm512_srav_epi32(s23, sh23));
    let bsum = _mm256_madd_epi16(ld256(y.add(260)), _mm256_set1_epi16(1));
    _mm512_sub_epi32(s, _mm512_zextsi256_si512(bsum))
}

q8k_kernel!(
    /// TQ2_0 × Q8_K (float order of `ternary::avx2`: `sumf += Σ as f32 · (d_a · d_w)`).
    tq2_0, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", 66, 64, tq2_0_block
);

// ------------------------------------------------------------------ Q3_K (110 B / 256)

/// The 16 six-bit Q3_K scales minus 32 as i16 (`kquants::q3k_scales` order), from the 12
/// packed bytes at `p`: dwords `[a0, a1, a0, a1]` give the low nibbles (shifted by 0, 0, 4, 4),
/// the third dword `t` the two high bits of dword `k` (rotated into bits 4..6 of each byte).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q3_k_scales(p: *const u8) -> __m256i {
    let a = _mm_set1_epi64x((p as *const i64).read_unaligned());
    let t = _mm_set1_epi32((p.add(8) as *const i32).read_unaligned());
    let lo = _mm_and_si128(
        _mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 4, 4)),
        _mm_set1_epi8(0x0f),
    );
    let hi = _mm_and_si128(
        _mm_rolv_epi32(t, _mm_setr_epi32(4, 2, 0, 30)),
        _mm_set1_epi8(0x30),
    );
    _mm256_cvtepi8_epi16(_mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32)))
}

/// The exact Σ_g (sc_g − 32)·Σ (q − 4 + 4·h)·a of one Q3_K super-block (the AVX2 kernel's
/// `sumi`) in 16 i32 lanes. Per `zmm` of 64 activations: the two-bit quants (one 32-byte group
/// at two shifts), the high bit added by mask as `+4`, `vpmaddubsw`, then the scales (one per
/// 16 elements, `vpermw`) through `vpdpwssd`. The `−4` of every quant comes off once per block
/// as `4·Σ_g sc_g·bsum_g` (the Q8_K `bsums`), as `super::z512`'s Q6_K does with its `−32`;
/// the AVX2 kernel subtracts `vpmaddubsw(4, a)` per 32 instead, the same integers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q3_k_block(x: *const u8, y: *const u8) -> __m512i {
    let m3 = _mm512_set1_epi8(3);
    let four = _mm512_set1_epi8(4);
    // Lanes 0..32 shift by 2·s, lanes 32..64 by 2·s + 2 (s = 0 for even c, 2 for odd).
    let sh = [
        _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2),
        _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6),
    ];
    let sc16 = q3_k_scales(x.add(96));
    let corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, ld256(y.add(260))), 2);
    let sc = _mm512_castsi256_si512(sc16);
    let mut sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(corr));
    let hb = bcast32(x);
    for c in 0..4 {
        let (k, h) = (c / 2, c % 2);
        let q = bcast32(x.add(32 + 32 * k));
        let low = _mm512_and_si512(_mm512_srlv_epi64(q, sh[h]), m3);
        // Element 128k + 32s + m has its high bit in bit 4k + s of hmask byte m.
        let bit = halves_epi8(1 << (4 * k + 2 * h), 1 << (4 * k + 2 * h + 1));
        let u = mask_add_epi8(low, _mm512_test_epi8_mask(hb, bit), four);
        let p = _mm512_maddubs_epi16(u, ld512(y.add(4 + 64 * c)));
        sumi = dpwssd(sumi, p, bcast_w4(sc, 4 * c as i16));
    }
    sumi
}

q8k_kernel!(
    /// Q3_K × Q8_K (float order of `super::avx2::q3_k`: `acc += d_w · d_a · Σ`).
    q3_k, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", 110, 108, q3_k_block
);

// ------------------------------------------------------------------ IQ4_XS (136 B / 256)

/// 32 packed nibble bytes at `p` (two 16-byte groups) as 64 index bytes in element order
/// [lo(p), hi(p), lo(p+16), hi(p+16)]; the bits above each nibble are left as they are.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nib_pair(p0: *const u8, p1: *const u8) -> __m512i {
    _mm512_srlv_epi64(
        bcast128x2(p0, p1),
        _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4),
    )
}

/// The eight IQ4_XS sub-block scales (6 bits, minus 32) as i16 in the order
/// [0, 2, 4, 6, 1, 3, 5, 7] (see `XS_POS`), from the block at `x`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn iq4_xs_scales(x: *const u8) -> __m512i {
    let sh = (x.add(2) as *const u16).read_unaligned() as u64;
    let sl = (x.add(4) as *const u32).read_unaligned() as u64;
    // Low nibbles: byte k = nibble 2k (k < 4), byte 4 + k = nibble 2k + 1.
    let lo = (sl & 0x0f0f_0f0f) | ((sl >> 4) & 0x0f0f_0f0f) << 32;
    // High bits: nibble k of scales_h holds sub-blocks 2k (bits 0..2) and 2k + 1 (bits 2..4).
    let t = (sh | sh << 8) & 0x00ff_00ff;
    let t = (t | t << 4) & 0x0f0f_0f0f;
    let hi = ((t & 0x0303_0303) | ((t >> 2) & 0x0303_0303) << 32) << 4;
    let ls = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((lo | hi) as i64));
    _mm512_castsi128_si512(_mm_sub_epi16(ls, _mm_set1_epi16(32)))
}

/// Position of sub-block `ib`'s scale in `iq4_xs_scales`.
const XS_POS: [i16; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// The exact Σ_ib ls_ib·Σ kv·a of one IQ4_XS super-block, the AVX2 kernel's integer sum. The
/// AVX2 kernel's products are |kv|·sign(a, kv) (`vpsignb`); here |kv| comes from the table and
/// the activations are negated by mask where kv < 0 (index bit 3 clear), with the same
/// wrap-around at −128, so even the products are the same.
macro_rules! iq4_xs_block {
    ($name:ident, $feat:literal, $lookup:ident) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $name(x: *const u8, y: *const u8) -> __m512i {
            let lut = abs_lut(&crate::iquants::KVALUES_IQ4NL);
            let m4 = _mm512_set1_epi8(0x0f);
            let b3 = _mm512_set1_epi8(8);
            let ls = iq4_xs_scales(x);
            let mut sumi = _mm512_setzero_si512();
            for j in 0..4 {
                let q = x.add(8 + 32 * j);
                let nib = nib_pair(q, q.add(16));
                let kv = $lookup(lut, nib, m4);
                let neg = _mm512_testn_epi8_mask(nib, b3);
                let yv = ld512(y.add(4 + 64 * j));
                let sy = _mm512_mask_sub_epi8(yv, neg, _mm512_setzero_si512(), yv);
                let p = _mm512_maddubs_epi16(kv, sy);
                sumi = dpwssd(sumi, p, bcast_w2(ls, XS_POS[2 * j], XS_POS[2 * j + 1]));
            }
            sumi
        }
    };
}

iq4_xs_block!(
    iq4_xs_block,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    lookup_pshufb
);
iq4_xs_block!(
    iq4_xs_block_vbmi,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi",
    lookup_vpermb
);

q8k_kernel!(
    /// IQ4_XS × Q8_K (float order of `iquants::iq4::avx2`: `sumf += (d_w · d_a) · Σ`).
    iq4_xs, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", 136, 0, iq4_xs_block
);
q8k_kernel!(
    /// [`iq4_xs`] with the `vpermb` lookup (AVX512_VBMI).
    iq4_xs_vbmi,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi",
    136,
    0,
    iq4_xs_block_vbmi
);

// ------------------------------------------------------------------ TQ1_0 (54 B / 256)

/// Bytes × per-byte constants mod 256 (`c` as i16 words, the same constant for both bytes of
/// a word): the even bytes from a plain `vpmullw`, the odd ones from one on the high bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mul_bytes(v: __m512i, c: __m512i) -> __m512i {
    let hi_mask = _mm512_set1_epi16(0xff00u16 as i16);
    let lo = _mm512_mullo_epi16(v, c);
    let hi = _mm512_mullo_epi16(_mm512_and_si512(v, hi_mask), c);
    _mm512_ternarylogic_epi32::<0xf4>(hi, lo, hi_mask)
}

/// 32 bytes at `p0` in the low half, the 16 bytes at `p1` in 128-bit lanes 2 and 3.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn ld256_bcast128(p0: *const u8, p1: *const u8) -> __m512i {
    let v: __m512i;
    std::arch::asm!(
        "vbroadcasti64x4 {v}, ymmword ptr [{p0}]",
        "vbroadcasti32x4 {v} {{{k}}}, xmmword ptr [{p1}]",
        v = out(zmm_reg) v,
        p0 = in(reg) p0,
        p1 = in(reg) p1,
        k = in(kreg) 0xff00u16,
        options(pure, readonly, nostack, preserves_flags),
    );
    v
}

/// The 16 bytes at `p0` in 128-bit lanes 0..3, then the 4 bytes at `p1` in every dword of
/// lane 3.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn bcast128_dword3(p0: *const u8, p1: *const u8) -> __m512i {
    let v: __m512i;
    std::arch::asm!(
        "vbroadcasti32x4 {v}, xmmword ptr [{p0}]",
        "vpbroadcastd {v} {{{k}}}, dword ptr [{p1}]",
        v = out(zmm_reg) v,
        p0 = in(reg) p0,
        p1 = in(reg) p1,
        k = in(kreg) 0xf000u16,
        options(pure, readonly, nostack, preserves_flags),
    );
    v
}

/// Per byte `v`: the base-3 digit `(v · 3) >> 8` (0, 1, 2) = `[v >= 86] + [v >= 171]`, as two
/// byte compares into masks and two masked moves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn trits(v: __m512i) -> __m512i {
    let k1 = _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(86));
    let k2 = _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(171u8 as i8));
    let t = _mm512_maskz_mov_epi8(k1, _mm512_set1_epi8(1));
    _mm512_mask_mov_epi8(t, k2, _mm512_set1_epi8(2))
}

/// The exact Σ (trit − 1)·a of one TQ1_0 super-block, as the AVX2 kernel (lowbit_x86.rs)
/// computes it: Σ trit·a − Σ bsums. Five trits per byte in base-3 fixed point, the `n`-th one
/// the top digit of `q · 3^n mod 256`. The 256 elements in activation order, per `zmm`:
/// `[q0·1, q0·3]`, `[q0·9, q0·27]`, `[q0·81, q2·1, q2·3]`, `[q2·9, q2·27, q2·81, h·3^k]`
/// (`q0 = qs[0..32]` → elements `32n + m`, `q2 = qs[32..48]` → `160 + 16n + m`, `h = qh[0..4]`
/// → `240 + 4k + j`), the multiples by byte-wise multiplication mod 256.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tq1_0_block(x: *const u8, y: *const u8) -> __m512i {
    let w16 = |a: i16, b: i16, c: i16, d: i16| {
        _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a))),
            _mm256_set_m128i(_mm_set1_epi16(d), _mm_set1_epi16(c)),
            1,
        )
    };
    let q0 = bcast32(x);
    let c0 = mul_bytes(q0, w16(1, 1, 3, 3));
    let c1 = mul_bytes(q0, w16(9, 9, 27, 27));
    let c2 = mul_bytes(ld256_bcast128(x, x.add(32)), w16(81, 81, 1, 3));
    // Lane 3 dwords k = 0..3: qh · 3^k.
    let m3 = _mm512_setr_epi32(9, 9, 9, 9, 27, 27, 27, 27, 81, 81, 81, 81, 1, 3, 9, 27);
    let m3 = _mm512_or_si512(m3, _mm512_slli_epi32(m3, 16));
    let c3 = mul_bytes(bcast128_dword3(x.add(32), x.add(48)), m3);
    let mut acc = _mm512_setzero_si512();
    for (c, v) in [c0, c1, c2, c3].into_iter().enumerate() {
        acc = _mm512_dpbusd_epi32(acc, trits(v), ld512(y.add(4 + 64 * c)));
    }
    let bsum = _mm256_madd_epi16(ld256(y.add(260)), _mm256_set1_epi16(1));
    _mm512_sub_epi32(acc, _mm512_zextsi256_si512(bsum))
}

q8k_kernel!(
    /// TQ1_0 × Q8_K (float order of `iquants::lowbit_x86`: `sumf += d_w · d_a · Σ`).
    tq1_0, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", 54, 52, tq1_0_block
);

// ------------------------------------------------------------------ IQ4_NL, MXFP4 (vs Q8_0)
//
// Float order of the AVX2 kernels (iquants/iq4.rs, mxfp4.rs): per 32-block the 8 i32 lanes of
// `vpmaddwd(vpmaddubsw(|w|, sign(a, w)), 1)` (lane k = elements 4k..4k+4) as f32, times the
// block's `d`, added to one 8-lane accumulator (`acc = acc + d·p`, two roundings), blocks in
// order, `hsum_ps` last. That chain of one 8-lane add per block is kept as it is; the 512-bit
// part is everything before it: two blocks per `zmm` (lookup, sign, `vpdpbusd`, conversion,
// scaling), and the scales of 16 blocks at a time.

/// `|table|` in every 128-bit lane (`vpshufb` table).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn abs_lut(t: &[i8; 16]) -> __m512i {
    _mm512_broadcast_i32x4(_mm_abs_epi8(_mm_loadu_si128(t.as_ptr().cast())))
}

/// One 32-block in 256 bits (the tails): `acc + d · p` exactly as the AVX2 kernels.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nl_block256(
    acc: __m256,
    lut: __m512i,
    neg_if_bit3: bool,
    q: *const u8,
    y: *const u8,
    d: f32,
) -> __m256 {
    let v = _mm256_broadcastsi128_si256(_mm_loadu_si128(q as *const __m128i));
    let nib = _mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4));
    let kv = _mm256_shuffle_epi8(
        _mm512_castsi512_si256(lut),
        _mm256_and_si256(nib, _mm256_set1_epi8(0x0f)),
    );
    let b3 = _mm256_set1_epi8(8);
    let neg = if neg_if_bit3 {
        _mm256_test_epi8_mask(nib, b3)
    } else {
        _mm256_testn_epi8_mask(nib, b3)
    };
    let yv = _mm256_loadu_si256(y as *const __m256i);
    let sy = _mm256_mask_sub_epi8(yv, neg, _mm256_setzero_si256(), yv);
    let p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), kv, sy);
    _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p)))
}

/// An IQ4_NL-like kernel (target features `$feat`): `$bsz`-byte blocks with their 16 nibble
/// bytes at `$qoff`, `|$table[nibble]|` through `$lookup`, the activations negated by mask
/// where the value is negative (index bit 3 set if `$neg_if_bit3`, else clear), so that the
/// products are the AVX2 kernels' `|w|·sign(a, w)` exactly (`−(−128)` wraps as `vpsignb`
/// does); `$dvec(x, dy) -> __m512` the `d` of 16 blocks from their activation scales `dy`,
/// `$done(x, y) -> f32` one block's `d` (the tail).
///
/// Per pair of blocks: two broadcast loads and one shift give the 64 indices in element order,
/// `vpdpbusd` the 16 i32 lanes (block `2p` in lanes 0..8), one conversion and one multiply by
/// `[d_2p ×8, d_2p+1 ×8]`, then the two 8-lane adds of the AVX2 chain. Groups of 16 blocks;
/// the last `nb % 16` blocks one at a time in 256 bits.
macro_rules! nl_kernel {
    ($(#[$m:meta])* $name:ident, $feat:literal, $lookup:ident, $bsz:expr, $qoff:expr,
     $table:expr, $neg_if_bit3:expr, $dvec:ident, $done:ident) => {
        $(#[$m])*
        #[target_feature(enable = $feat)]
        pub unsafe fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = check(n, w, a, 32, $bsz, 34);
            let (wp, ap) = (w.as_ptr(), a.as_ptr());
            let lut = abs_lut(&$table);
            let m4 = _mm512_set1_epi8(0x0f);
            let b3 = _mm512_set1_epi8(8);
            let sh = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
            /// `d` of the 16 blocks at `x`, `y` (dword gathers).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn d16(x: *const u8, y: *const u8) -> __m512 {
                $dvec(x, f16_gather16(y, 34))
            }
            let mut acc = _mm256_setzero_ps();
            let mut tbuf = A64([0f32; 16]);
            let mut d = _mm512_setzero_ps();
            if nb >= 16 {
                d = d16(wp, ap);
            }
            let mut i = 0;
            while i + 16 <= nb {
                let x = wp.add($bsz * i);
                let y = ap.add(34 * i);
                // The next group's scales one group ahead: gathers are slow to arrive.
                let dnext = if i + 32 <= nb { d16(x.add(16 * $bsz), y.add(16 * 34)) } else { d };
                // Lanes 0..8 pick d[2p], lanes 8..16 d[2p + 1].
                let mut idx = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_setzero_si256()),
                    _mm256_set1_epi32(1),
                    1,
                );
                for p in 0..8 {
                    let (x0, y0) = (x.add(2 * $bsz * p), y.add(68 * p));
                    if p % 2 == 0 {
                        pf(x0.wrapping_add(PF));
                        pf(x0.wrapping_add(PF + 64));
                    }
                    let nib = _mm512_srlv_epi64(bcast128x2(x0.add($qoff), x0.add($bsz + $qoff)), sh);
                    let kv = $lookup(lut, nib, m4);
                    let neg = if $neg_if_bit3 {
                        _mm512_test_epi8_mask(nib, b3)
                    } else {
                        _mm512_testn_epi8_mask(nib, b3)
                    };
                    let yv = ld2m(y0.add(2), y0.add(36));
                    let sy = _mm512_mask_sub_epi8(yv, neg, _mm512_setzero_si512(), yv);
                    let f = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), kv, sy));
                    let t = _mm512_mul_ps(f, _mm512_permutexvar_ps(idx, d));
                    idx = _mm512_add_epi32(idx, _mm512_set1_epi32(2));
                    // The high half through memory: a store and a load, not a port-5
                    // extract (volatile, or LLVM turns it back into the extract).
                    _mm512_store_ps(tbuf.0.as_mut_ptr(), t);
                    let hi = std::ptr::read_volatile(tbuf.0.as_ptr().add(8) as *const __m256);
                    acc = _mm256_add_ps(acc, _mm512_castps512_ps256(t));
                    acc = _mm256_add_ps(acc, hi);
                }
                d = dnext;
                i += 16;
            }
            while i < nb {
                let (x, y) = (wp.add($bsz * i), ap.add(34 * i));
                acc = nl_block256(acc, lut, $neg_if_bit3, x.add($qoff), y.add(2), $done(x, y));
                i += 1;
            }
            hsum256(acc)
        }
    };
}

/// The f16s at `p + stride·b`, b = 0..16, as f32: one dword gather, the low words packed with
/// one `vpermw`, one conversion.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn f16_gather16(p: *const u8, stride: i32) -> __m512 {
    let idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(stride),
    );
    let g = _mm512_i32gather_epi32::<1>(idx, p as *const i32);
    _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(
        dword_words(0),
        g,
    )))
}

/// IQ4_NL: `d = f16(d_a) · f16(d_w)` for 16 blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn iq4_nl_d16(x: *const u8, dy: __m512) -> __m512 {
    _mm512_mul_ps(dy, f16_gather16(x, 18))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn iq4_nl_d1(x: *const u8, y: *const u8) -> f32 {
    super::f16_ld(y) * super::f16_ld(x)
}

/// MXFP4: `d = f16(d_a) · 2^(e − 128)` (`e8m0_to_fp32_half`: `(e − 1) << 23` as f32 bits,
/// `0x200000 << e` for the subnormal `e < 2`) for 16 blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mxfp4_d16(x: *const u8, dy: __m512) -> __m512 {
    let idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(17),
    );
    let e = _mm512_i32gather_epi32::<1>(idx, x as *const i32);
    let e = _mm512_and_si512(e, _mm512_set1_epi32(0xff));
    let normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    let sub = _mm512_sllv_epi32(_mm512_set1_epi32(0x0020_0000), e);
    let k = _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2));
    _mm512_mul_ps(
        dy,
        _mm512_castsi512_ps(_mm512_mask_mov_epi32(normal, k, sub)),
    )
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mxfp4_d1(x: *const u8, y: *const u8) -> f32 {
    super::f16_ld(y) * crate::mxfp4::e8m0_to_fp32_half(*x)
}

/// `lut[nib & 15]` per byte (`vpshufb`, the table in every 128-bit lane).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn lookup_pshufb(lut: __m512i, nib: __m512i, m4: __m512i) -> __m512i {
    _mm512_shuffle_epi8(lut, _mm512_and_si512(nib, m4))
}

/// `lut[nib & 63]` per byte (`vpermb`, AVX512_VBMI): with the 16-entry table repeated four
/// times that is `lut[nib & 15]` without the `and`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn lookup_vpermb(lut: __m512i, nib: __m512i, _m4: __m512i) -> __m512i {
    _mm512_permutexvar_epi8(nib, lut)
}

nl_kernel!(
    /// IQ4_NL × Q8_0 (kvalues negative for indices 0..8).
    iq4_nl, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", lookup_pshufb,
    18, 2, crate::iquants::KVALUES_IQ4NL, false, iq4_nl_d16, iq4_nl_d1
);
nl_kernel!(
    /// [`iq4_nl`] with the `vpermb` lookup (AVX512_VBMI).
    iq4_nl_vbmi, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi", lookup_vpermb,
    18, 2, crate::iquants::KVALUES_IQ4NL, false, iq4_nl_d16, iq4_nl_d1
);
nl_kernel!(
    /// MXFP4 × Q8_0 (E2M1 values ×2, negative for indices 9..16; index 8 is −0).
    mxfp4, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", lookup_pshufb,
    17, 1, crate::mxfp4::KVALUES_MXFP4, true, mxfp4_d16, mxfp4_d1
);
nl_kernel!(
    /// [`mxfp4`] with the `vpermb` lookup (AVX512_VBMI).
    mxfp4_vbmi, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi", lookup_vpermb,
    17, 1, crate::mxfp4::KVALUES_MXFP4, true, mxfp4_d16, mxfp4_d1
);

/// Whether the CPU has AVX512_VBMI (`vpermb`), on top of the AVX-512 level.
fn has_vbmi() -> bool {
    static B: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *B.get_or_init(|| is_x86_feature_detected!("avx512vbmi"))
}

// ------------------------------------------------------------------ table

/// The 512-bit kernel for `ty`, where this file has one (checked before `super::avx512`'s
/// 256-bit instantiation and the family modules' AVX2 kernels).
pub(in crate::simd) fn dot(ty: GgmlType) -> Option<DotFn> {
    // SAFETY (all closures): only reachable after the caller checked CPU support.
    Some(match ty {
        GgmlType::Q3_K => |n, w, a| unsafe { q3_k(n, w, a) },
        // SAFETY: AVX512_VBMI checked here on top of the caller's AVX-512 check.
        GgmlType::IQ4_XS if has_vbmi() => |n, w, a| unsafe { iq4_xs_vbmi(n, w, a) },
        GgmlType::IQ4_XS => |n, w, a| unsafe { iq4_xs(n, w, a) },
        GgmlType::TQ2_0 => |n, w, a| unsafe { tq2_0(n, w, a) },
        GgmlType::TQ1_0 => |n, w, a| unsafe { tq1_0(n, w, a) },
        // SAFETY: AVX512_VBMI checked here on top of the caller's AVX-512 check.
        GgmlType::IQ4_NL if has_vbmi() => |n, w, a| unsafe { iq4_nl_vbmi(n, w, a) },
        GgmlType::IQ4_NL => |n, w, a| unsafe { iq4_nl(n, w, a) },
        // SAFETY: as above.
        GgmlType::MXFP4 if has_vbmi() => |n, w, a| unsafe { mxfp4_vbmi(n, w, a) },
        GgmlType::MXFP4 => |n, w, a| unsafe { mxfp4(n, w, a) },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    //! Every kernel variant here, with and without VBMI (the dispatch table only hands out the
    //! VBMI ones on CPUs that have it), against the AVX2 kernel of its type. Oracle:
    //! `dot_fn_at(Level::Avx2, ty)`; tolerance: bit-identical. Block counts 1..=40 (32-blocks)
    //! and 1..=19 (super-blocks) run every main loop and every tail; random block bytes with
    //! finite f16 scales (subnormal to 65504) or E8M0 exponents 0..=140; activations quantized
    //! by the crate's Q8_0 / Q8_K quantizers.
    use super::*;
    use crate::simd::{dot_fn_at, Level};

    fn rnd(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    fn has(feature: &str) -> bool {
        match feature {
            "base" => {
                is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            _ => has("base") && is_x86_feature_detected!("avx512vbmi"),
        }
    }

    /// The f16 scale offset of a block (None: MXFP4's E8M0 byte 0).
    fn scale_at(ty: GgmlType) -> Option<usize> {
        match ty {
            GgmlType::Q3_K => Some(108),
            GgmlType::TQ1_0 => Some(52),
            GgmlType::TQ2_0 => Some(64),
            GgmlType::MXFP4 => None,
            _ => Some(0),
        }
    }

    #[test]
    fn z512_more_variants_equal_avx2() {
        type Kernel = unsafe fn(usize, &[u8], &[u8]) -> f32;
        let cases: [(GgmlType, Kernel, &str); 9] = [
            (GgmlType::Q3_K, q3_k, "base"),
            (GgmlType::IQ4_XS, iq4_xs, "base"),
            (GgmlType::IQ4_XS, iq4_xs_vbmi, "vbmi"),
            (GgmlType::TQ1_0, tq1_0, "base"),
            (GgmlType::TQ2_0, tq2_0, "base"),
            (GgmlType::IQ4_NL, iq4_nl, "base"),
            (GgmlType::IQ4_NL, iq4_nl_vbmi, "vbmi"),
            (GgmlType::MXFP4, mxfp4, "base"),
            (GgmlType::MXFP4, mxfp4_vbmi, "vbmi"),
        ];
        let mut seed = 0x5eed_0f2a_117e_57a1_u64;
        for (ty, f, feature) in cases {
            if !has(feature) {
                continue;
            }
            let avx2 = dot_fn_at(Level::Avx2, ty).unwrap();
            let at = crate::kernels(ty).unwrap().vec_dot_type;
            let max_nb = if ty.block_size() == 32 { 40 } else { 19 };
            for nb in 1..=max_nb {
                for rep in 0..3 {
                    let n = nb * ty.block_size();
                    let ts = ty.type_size();
                    let mut w: Vec<u8> = (0..nb * ts).map(|_| rnd(&mut seed) as u8).collect();
                    for b in w.chunks_exact_mut(ts) {
                        let r = rnd(&mut seed);
                        match scale_at(ty) {
                            Some(o) => {
                                let h = match r % 4 {
                                    0 => (r >> 8) as u16 & 0x83ff, // zero / subnormal
                                    1 => 0x7bff,                   // 65504
                                    _ => (r >> 8) as u16 & 0xbbff, // |d| < 2
                                };
                                b[o..o + 2].copy_from_slice(&h.to_le_bytes());
                            }
                            None => b[0] = (r % 141) as u8,
                        }
                    }
                    let y: Vec<f32> = (0..n)
                        .map(|_| ((rnd(&mut seed) >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0)
                        .collect();
                    let mut a = vec![0u8; crate::row_bytes(at, n).unwrap()];
                    crate::quantize_row(at, &y, &mut a).unwrap();
                    let want = avx2(n, &w, &a);
                    // SAFETY: the features `feature` names were checked above.
                    let got = unsafe { f(n, &w, &a) };
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{ty:?} ({feature}) nb={nb} rep={rep}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
