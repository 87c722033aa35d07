//! Genuine 512-bit AVX-512 dot kernels (vs Q8_K activations) for the grid-coded IQ types:
//! IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M. They run at the AVX-512 level in place
//! of the AVX2 bodies (iq_x86.rs, lowbit_x86.rs) where the CPU also has AVX512_VBMI/VBMI2,
//! AVX512_BITALG, GFNI and BMI2 (`dot` checks; otherwise the AVX2 kernels stay).
//!
//! Shape shared by all seven: output register `k` of a 256-weight super-block holds weights
//! `64k..64k+64` (two 32-weight groups), matching one plain load of the activations. For each
//! the kernel builds the unsigned grid bytes, a 64-bit sign mask (AVX-512 has no `vpsignb`:
//! the activations are negated by a masked subtract) and a dword multiplier holding the scale
//! in both words; `vpmaddubsw` then `vpdpwssd` accumulate exact i32 lanes. Two super-blocks go
//! per iteration (their lookups share registers and one horizontal sum, `hsum2`).
//!
//! Grid rows (the part the AVX2 kernels spend their time on: 4..8 scalar table loads and
//! inserts per 32 weights):
//! - Small grids are looked up in registers. Each row is coded as one digit per weight (E8
//!   grids of IQ2_XXS / IQ2_XS: 2 bits for 8/25/43; D4 grids of IQ3_XXS / IQ3_S: 3 bits), the
//!   codes stored as byte tables read by `vpermi2b` (128 entries, 64 lookups per op); the
//!   codes are interleaved so that `vpmultishiftqb` brings every weight's digit to its byte,
//!   and `vgf2p8affineqb` (digit → 8 ⊕ 17·d0 ⊕ 35·d1 resp. 2d + 1) or `vpermb` (IQ3_XXS:
//!   4..52, 62 is not affine) turns it into the grid byte.
//! - IQ2_S (1024 rows), IQ1_S and IQ1_M (2048) are gathered, eight rows per `vpgatherqq`, from
//!   indices built as words for the whole block.
//!
//! Port 5 (every cross-lane shuffle, the lookups) and port 0 are the limit on this class of
//! core (512-bit ops issue only there), so the kernels keep work on the load and integer
//! ports: scale multipliers are one row of a precomputed table (index math in general
//! registers), plain sign bits are `kmovq` loads. A few spots use inline asm where LLVM would
//! otherwise turn that work back into shuffles (noted there); measured each time with
//! `cargo bench -p ferrite-quants --bench a_matvec -- level_in_cache_64k`.
//!
//! Exactness: every super-block's integer sum is exact (the `vpmaddubsw` pairs stay far below
//! i16 saturation: grid bytes ≤ 62, |q| ≤ 127), and `d_w · d_a · Σ` is combined in block
//! order as the scalar twin (`vec_dot_ref`) does, so results are **bit-identical** to the twins
//! and the AVX2 kernels (tests/c_lowbit_simd_props.rs). IQ1_S / IQ1_M fold their delta terms
//! into the same integer (see the IQ1_S section).
//!
//! Safety: every `unsafe fn` needs AVX-512 F/BW/VL/VNNI (+ AVX2/FMA/F16C), and the kernels the
//! extensions named above; they are only reachable through `dot`, which checks those and is
//! only called by `crate::simd::dot_fn_at` after the level check. Each kernel asserts its slice
//! lengths before any raw load, and every raw load stays inside its block or activation block.
#![allow(clippy::missing_safety_doc)]

use super::grids::{
    IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS,
};
use super::iq1::{IQ1M_DELTA, IQ1S_DELTA};
use crate::GgmlType;
use std::arch::x86_64::*;

const Q8K: usize = 292;

// ------------------------------------------------------------------------------ tables

/// 64-byte aligned bytes (whole-register loads of tables and shuffle controls).
#[repr(C, align(64))]
struct A64<const N: usize>([u8; N]);

/// A register of 32 little-endian words (shuffle controls, shift counts, `vpermw` tables),
/// word `n` = `$e` (an integer that fits an i16).
macro_rules! words {
    (|$n:ident| $e:expr) => {{
        let mut t = [0u8; 64];
        let mut $n = 0usize;
        while $n < 32 {
            let v = ($e as i16).to_le_bytes();
            t[2 * $n] = v[0];
            t[2 * $n + 1] = v[1];
            $n += 1;
        }
        A64(t)
    }};
}

/// 2-bit digit of an E8-grid byte (0x08 → 0, 0x19 → 1, 0x2b → 2).
const fn e8_digit(b: u8) -> u16 {
    match b {
        0x08 => 0,
        0x19 => 1,
        0x2b => 2,
        _ => panic!("not an E8 grid value"),
    }
}

/// The 16-bit code (digit j at bits 2j..2j+1) of every row of an E8 grid, as two byte tables:
/// `[0..N)` the low bytes, `[N..2N)` the high bytes.
const fn e8_codes<const N: usize, const M: usize>(g: &[u64; N]) -> A64<M> {
    let mut t = [0u8; M];
    let mut i = 0;
    while i < N {
        let mut c = 0u16;
        let mut j = 0;
        while j < 8 {
            c |= e8_digit((g[i] >> (8 * j)) as u8) << (2 * j);
            j += 1;
        }
        t[i] = c as u8;
        t[N + i] = (c >> 8) as u8;
        i += 1;
    }
    A64(t)
}

static IQ2XXS_CODES: A64<512> = e8_codes::<256, 512>(&IQ2XXS_GRID);
static IQ2XS_CODES: A64<1024> = e8_codes::<512, 1024>(&IQ2XS_GRID);
static KSIGNS: A64<128> = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = KSIGNS_IQ2XS[i];
        i += 1;
    }
    A64(t)
};

/// Scale multiplier rows (`vpdpwssd`): entry `i` holds `mul·(2s + 1)` in both words of every
/// dword, `s` = the low `bits` bits of `i` in dwords `0..L/2`, `i >> bits` in `L/2..L`.
#[repr(C, align(64))]
struct ScaleRows<const N: usize, const L: usize>([[u32; L]; N]);

const fn scale_rows<const N: usize, const L: usize>(bits: u32, mul: u32) -> ScaleRows<N, L> {
    let mut t = [[0u32; L]; N];
    let mut i = 0;
    while i < N {
        let mut l = 0;
        while l < L {
            let s = (if l < L / 2 {
                i & ((1 << bits) - 1)
            } else {
                i >> bits
            }) as u32;
            t[i][l] = mul * (2 * s + 1) * 0x10001;
            l += 1;
        }
        i += 1;
    }
    ScaleRows(t)
}

/// Per-32 scale pairs: entry `a | b << 4` (a, b = 4-bit scales) holds `ls = 2·scale + 1`,
/// `ls(a)` in dwords 0..8 and `ls(b)` in dwords 8..16: the `vpdpwssd` multiplier of an output
/// register covering two 32-weight groups, one plain load.
static SCALE_PAIRS: ScaleRows<256, 16> = scale_rows(4, 1);

/// The `SCALE_PAIRS` entry of the scales in the high nibbles of the bytes at `pa` and `pb`.
/// The index math is inline asm on purpose: LLVM otherwise gathers the bytes of several calls
/// into a vector (`vpinsrb`/`vpextrb`, port 5) instead of leaving them to the integer ports.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn scale_pair_hi(pa: *const u8, pb: *const u8) -> __m512i {
    let off: usize;
    std::arch::asm!(
        "movzx {o:e}, byte ptr [{pa}]",
        "movzx {t:e}, byte ptr [{pb}]",
        "shr {o:e}, 4",
        "and {t:e}, 0xf0",
        "or {o:e}, {t:e}",
        "shl {o:e}, 6",
        pa = in(reg) pa,
        pb = in(reg) pb,
        o = out(reg) off,
        t = out(reg) _,
        options(pure, readonly, nostack),
    );
    ld((SCALE_PAIRS.0.as_ptr() as *const u8).add(off))
}

/// The `SCALE_PAIRS` entry of the byte at `p` (scale a in its low, b in its high nibble); asm
/// for the same reason as `scale_pair_hi`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn scale_pair_byte(p: *const u8) -> __m512i {
    let off: usize;
    std::arch::asm!(
        "movzx {o:e}, byte ptr [{p}]",
        "shl {o:e}, 6",
        p = in(reg) p,
        o = out(reg) off,
        options(pure, readonly, nostack),
    );
    ld((SCALE_PAIRS.0.as_ptr() as *const u8).add(off))
}

/// Per-16 scales: entry `b` (a scale byte, two 4-bit scales) holds `ls = 2·scale + 1`,
/// `ls(b & 15)` in dwords 0..4 and `ls(b >> 4)` in dwords 4..8.
static SCALE_QUADS: ScaleRows<256, 8> = scale_rows(4, 1);

/// The multiplier of an output register covering two 32-weight groups with per-16 scale bytes
/// at `pa` and `pb`: `SCALE_QUADS[*pa]` in dwords 0..8, `SCALE_QUADS[*pb]` in 8..16 (a
/// 256-bit broadcast load and a merge-masked load, `hi8` = 0xff00; asm as `scale_pair_hi`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn scale_quads(pa: *const u8, pb: *const u8, hi8: __mmask16) -> __m512i {
    let v: __m512i;
    std::arch::asm!(
        "movzx {a:e}, byte ptr [{pa}]",
        "movzx {b:e}, byte ptr [{pb}]",
        "shl {a:e}, 5",
        "shl {b:e}, 5",
        "vbroadcasti64x4 {v}, ymmword ptr [{t} + {a}]",
        "vmovdqu32 {v} {{{m}}}, zmmword ptr [{t} + {b} - 32]",
        pa = in(reg) pa,
        pb = in(reg) pb,
        t = in(reg) SCALE_QUADS.0.as_ptr(),
        m = in(kreg) hi8,
        a = out(reg) _,
        b = out(reg) _,
        v = out(zmm_reg) v,
        options(pure, readonly, nostack),
    );
    v
}

/// A `vgf2p8affineqb` matrix mapping byte `x` to `b ⊕ Σ_j x_j·cols[j]` (with the immediate
/// `b`): row `i` (the byte at 7 − i) holds bit `i` of every column.
const fn affine(cols: [u8; 8]) -> i64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < 8 {
        let mut row = 0u64;
        let mut j = 0;
        while j < 8 {
            row |= ((cols[j] as u64 >> i) & 1) << j;
            j += 1;
        }
        m |= row << (8 * (7 - i));
        i += 1;
    }
    m as i64
}

/// E8 digit → grid byte: 8 ⊕ 17·d0 ⊕ 35·d1 gives 8, 25, 43 for d = 0, 1, 2 (bits 2..7 of the
/// input are ignored).
const E8_AFFINE: i64 = affine([17, 35, 0, 0, 0, 0, 0, 0]);
const E8_B: i32 = 8;

/// One byte per qword position: `f(k)` for k in 0..8, repeated in every qword.
const fn q64(f: [u8; 8]) -> i64 {
    i64::from_le_bytes(f)
}

// ------------------------------------------------------------------------------ helpers

/// The f16 at `p` as f32; reads the 8 bytes at `p` (the caller keeps them in bounds). Inline
/// asm on purpose: every intrinsic spelling of a one-half load becomes a `vpinsrw` merging into
/// a live register (see `crate::simd::x86::f16_ld`); the memory form of `vcvtph2ps` writes a
/// fresh register and costs one vector uop instead of three.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_ld8(p: *const u8) -> f32 {
    let v: __m128;
    std::arch::asm!(
        "vcvtph2ps {v}, qword ptr [{p}]",
        p = in(reg) p,
        v = lateout(xmm_reg) v,
        options(pure, readonly, nostack, preserves_flags),
    );
    _mm_cvtss_f32(v)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn ld(p: *const u8) -> __m512i {
    _mm512_loadu_si512(p as *const _)
}

/// Bytes ahead of the current weight pair to prefetch (as `crate::simd::x86::z512`'s `PF`:
/// far ahead, a thread walks contiguous rows).
pub(crate) const PF: usize = 16384;

/// Prefetch the `bytes` of weights at `x + PF` (one `prefetcht0` per line).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn prefetch(x: *const u8, bytes: usize) {
    let mut o = 0;
    while o < bytes {
        _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add(PF + o) as *const i8);
        o += 64;
    }
}

/// The 64-bit mask stored at `p` (`kmovq k, m64`). Inline asm so that it stays one mask load
/// rather than a general-register load and a `kmovq k, r64`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn kld(p: *const u8) -> __mmask64 {
    let k: __mmask64;
    std::arch::asm!(
        "kmovq {k}, qword ptr [{p}]",
        p = in(reg) p,
        k = out(kreg) k,
        options(pure, readonly, nostack, preserves_flags),
    );
    k
}

/// `acc + Σ pairs(a·b)` (`vpdpwssd`). Inline asm on purpose: LLVM rewrites a chain of the
/// intrinsic into `vpmaddwd` + `vpaddd` pairs (one more uop each on ports 0/5, which these
/// kernels saturate). Also used by `crate::simd::x86::z512_more`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    let mut acc = acc;
    std::arch::asm!(
        "vpdpwssd {acc}, {a}, {b}",
        acc = inout(zmm_reg) acc,
        a = in(zmm_reg) a,
        b = in(zmm_reg) b,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
}

/// The two totals of `a` and `b` (16 i32 lanes each; exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn hsum2(a: __m512i, b: __m512i) -> (i32, i32) {
    // [a.l0 + a.l2, a.l1 + a.l3, b.l0 + b.l2, b.l1 + b.l3] (128-bit lanes)
    let s = _mm512_add_epi32(
        _mm512_shuffle_i64x2::<0x44>(a, b),
        _mm512_shuffle_i64x2::<0xee>(a, b),
    );
    let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0x4e>(s));
    let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0xb1>(s));
    let s = _mm512_add_epi32(s, _mm512_shuffle_i64x2::<0xb1>(s, s));
    (
        _mm_cvtsi128_si32(_mm512_castsi512_si128(s)),
        _mm_cvtsi128_si32(_mm512_extracti32x4_epi32::<2>(s)),
    )
}

/// The 64 activations at `p`, negated where `m` is set (AVX-512 has no `vpsignb`; `−(−128)`
/// wraps as `vpsignb` does).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn neg_ld(p: *const u8, m: __mmask64) -> __m512i {
    let q = ld(p);
    _mm512_mask_sub_epi8(q, m, _mm512_setzero_si512(), q)
}

/// A super-block's four output registers: `init + Σ_k vpdpwssd(vpmaddubsw(u, q), sc)` with
/// `(u, q, sc) = out(k)` (grid bytes, activations, scale multiplier of output `k`), in two
/// accumulators (shorter `vpdpwssd` chains); exact i32 lanes.
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn sum4(init: __m512i, out: impl Fn(usize) -> [__m512i; 3]) -> __m512i {
    let mut acc = [init, _mm512_setzero_si512()];
    for k in 0..4 {
        let [u, q, sc] = out(k);
        acc[k % 2] = dpwssd(acc[k % 2], _mm512_maddubs_epi16(u, q), sc);
    }
    _mm512_add_epi32(acc[0], acc[1])
}

/// Per byte: entry `idx` of the 256-byte table at `t` (two `vpermi2b`s over its halves, the
/// half chosen by bit 7 of the index, `m7`).
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn lut256(t: *const u8, idx: __m512i, m7: __mmask64) -> __m512i {
    _mm512_mask_blend_epi8(
        m7,
        _mm512_permutex2var_epi8(ld(t), idx, ld(t.add(64))),
        _mm512_permutex2var_epi8(ld(t.add(128)), idx, ld(t.add(192))),
    )
}

/// The shared walk over a row (as `q8k_kernel!` in lowbit_x86.rs): blocks of `$wsz` bytes in
/// pairs, their exact integer sums from `$pair(xa, xb, ya, yb)` (or `hsum2` of `$block(x, y)`
/// for each); `d_w · d_a · $sum(Σ)` is added per block in block order, as the scalar twin
/// does, and `$post · Σ` returned. An odd last block is paired with itself and its twin's sum
/// dropped. Asserts the lengths before any raw load.
macro_rules! pair_kernel {
    ($name:ident, $wsz:expr, block: $block:ident, $dw:expr, $sum:expr, $post:expr) => {
        pair_kernel!(
            $name,
            $wsz,
            pair: (|xa, xb, ya, yb| hsum2($block(xa, ya), $block(xb, yb))),
            $dw,
            $sum,
            $post
        );
    };
    ($name:ident, $wsz:expr, pair: $pair:expr, $dw:expr, $sum:expr, $post:expr) => {
        #[target_feature(
            enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
        )]
        unsafe fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = n / 256;
            assert!(
                w.len() >= nb * $wsz && a.len() >= nb * Q8K,
                "vec_dot: buffers shorter than n"
            );
            let mut sumf = 0.0f32;
            let mut i = 0;
            while i < nb {
                let xa = w.as_ptr().add(i * $wsz);
                let ya = a.as_ptr().add(i * Q8K);
                prefetch(xa, 2 * $wsz);
                let (xb, yb) = if i + 1 < nb {
                    (xa.add($wsz), ya.add(Q8K))
                } else {
                    (xa, ya)
                };
                let (sa, sb) = ($pair)(xa, xb, ya, yb);
                sumf += $dw(xa) * (ya as *const f32).read_unaligned() * ($sum)(sa);
                if i + 1 < nb {
                    sumf += $dw(xb) * (yb as *const f32).read_unaligned() * ($sum)(sb);
                }
                i += 2;
            }
            $post * sumf
        }
    };
}

// ------------------------------------------------------------------------------ IQ2_XXS (66 B)
//
// E8 grids (IQ2_XXS, IQ2_XS). A pair of blocks has 64 grid indices: one register, looked up
// with four (IQ2_XS: eight) `vpermi2b`s into the low and high code bytes, which
// `vpunpck{l,h}bw` interleave into one D register per block (qword e: the four codes output k
// needs in its qword e, word k). Per output: `vpmultishiftqb` (digit j of the code to byte
// j), `vgf2p8affineqb` (digit → 8/25/43), a sign mask by `vpshufbitqmb` from the looked-up
// `ksigns` bytes (transposed the same way), the masked negation of the activations,
// `vpmaddubsw`, `vpdpwssd` with the scale row. Storing the sign bytes and loading the masks
// with `kmovq` instead measured slower (the loads wait for the store to drain).

/// Byte offset (from `x + 2`) of the grid index of entry `n` (8 weights each): the block is
/// eight `[4 index bytes, aux32]` groups.
const fn xxs_pos(n: usize) -> u8 {
    (8 * (n / 4) + n % 4) as u8
}

/// `vpermi2b` control packing the grid indices of two blocks (A = table 0, B = table 1) so
/// that after the lookup `vpunpcklbw(L, H)` is D of A and `vpunpckhbw(L, H)` D of B, where D
/// has, in qword `e`, word `k`: the code of entry `8k + e` (the entry whose weights land in
/// qword `e` of output register `k`). Unpacking works per 128-bit lane `c`: positions
/// `16c + w` (w < 8) feed qword `2c + w / 4` of the low unpack, `16c + 8 + w` of the high.
static IQ2XXS_PACK: A64<64> = {
    let mut t = [0u8; 64];
    let mut c = 0;
    while c < 4 {
        let mut w = 0;
        while w < 8 {
            let e = 2 * c + w / 4;
            let k = w % 4;
            t[16 * c + w] = xxs_pos(8 * k + e);
            t[16 * c + 8 + w] = 64 + xxs_pos(8 * k + e);
            w += 1;
        }
        c += 1;
    }
    A64(t)
};

/// `vpermb` control transposing the looked-up sign bytes of two blocks: qword `e`, byte `k`
/// = signs of entry `8k + e` of A, byte `4 + k` those of B (A's sign bytes sit at the grid
/// index positions, B's 4 bytes after them).
static IQ2XXS_SCTL: A64<64> = {
    let mut t = [0u8; 64];
    let mut e = 0;
    while e < 8 {
        let mut k = 0;
        while k < 4 {
            t[8 * e + k] = xxs_pos(8 * k + e);
            t[8 * e + 4 + k] = 4 + xxs_pos(8 * k + e);
            k += 1;
        }
        e += 1;
    }
    A64(t)
};

/// One E8-grid block's four output registers (64 weights each): grid bytes from the codes in
/// `dd` (qword `e`, word `k` → output `k`, qword `e`), signs from bits `sb + 8k + j` of the
/// qwords of `sg`, scale multipliers `sc(k)`, activations at `y + 4`. Returns the
/// scale-weighted i32 lanes.
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn e8_block(
    dd: __m512i,
    sg: __m512i,
    sb: u8,
    sc: impl Fn(usize) -> __m512i,
    y: *const u8,
) -> __m512i {
    let aff = _mm512_set1_epi64(E8_AFFINE);
    sum4(_mm512_setzero_si512(), |k| {
        let ms = _mm512_set1_epi64(q64(std::array::from_fn(|j| (16 * k + 2 * j) as u8)));
        let vals = _mm512_gf2p8affine_epi64_epi8::<E8_B>(_mm512_multishift_epi64_epi8(ms, dd), aff);
        let bc = _mm512_set1_epi64(q64(std::array::from_fn(|j| sb + (8 * k + j) as u8)));
        let m = _mm512_bitshuffle_epi64_mask(sg, bc);
        [vals, neg_ld(y.add(4 + 64 * k), m), sc(k)]
    })
}

/// The exact integer sums of the IQ2_XXS blocks at `xa`, `xb` (activations `ya`, `yb`).
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq2_xxs_pair(xa: *const u8, xb: *const u8, ya: *const u8, yb: *const u8) -> (i32, i32) {
    let t = IQ2XXS_CODES.0.as_ptr();
    let va = ld(xa.add(2));
    let vb = ld(xb.add(2));
    // Grid codes: 64 indices, 128-entry halves selected by bit 7.
    let idx = _mm512_permutex2var_epi8(va, ld(IQ2XXS_PACK.0.as_ptr()), vb);
    let m7 = _mm512_movepi8_mask(idx);
    let (lo, hi) = (lut256(t, idx, m7), lut256(t.add(256), idx, m7));
    // Sign indices (aux bits 7l..7l+6 = qword bits 32 + 7l): A's to bytes 0..4 of each
    // qword, B's to bytes 4..8; then `ksigns` (bit 7 of each index is ignored) and transpose.
    let sictl = _mm512_set1_epi64(q64([32, 39, 46, 53, 32, 39, 46, 53]));
    let si = _mm512_mask_multishift_epi64_epi8(
        _mm512_multishift_epi64_epi8(sictl, va),
        0xf0f0_f0f0_f0f0_f0f0,
        sictl,
        vb,
    );
    let ks = KSIGNS.0.as_ptr();
    let sg = _mm512_permutex2var_epi8(ld(ks), si, ld(ks.add(64)));
    let sg = _mm512_permutexvar_epi8(ld(IQ2XXS_SCTL.0.as_ptr()), sg);
    // Per-32 scales: the top nibbles of the aux words of groups 2k and 2k + 1 (bytes
    // 9 + 16k and 17 + 16k of the block), through the pair table (scalar index math keeps
    // them off the vector ports).
    let sc = |x: *const u8| move |k: usize| scale_pair_hi(x.add(9 + 16 * k), x.add(17 + 16 * k));
    let acc_a = e8_block(_mm512_unpacklo_epi8(lo, hi), sg, 0, sc(xa), ya);
    let acc_b = e8_block(_mm512_unpackhi_epi8(lo, hi), sg, 32, sc(xb), yb);
    hsum2(acc_a, acc_b)
}

pair_kernel!(iq2_xxs, 66, pair: iq2_xxs_pair, f16_ld8, |s: i32| s as f32, 0.125f32);

// ------------------------------------------------------------------------------ IQ2_XS (74 B)
//
// As IQ2_XXS with a 512-row grid (index bit 8 selects the table half) and per-16 scales.
// Gathering the rows as IQ2_S does measured ~5% slower than these lookups.

/// As `IQ2XXS_PACK`, for IQ2_XS blocks (entry n = the u16 at byte 2n from `x + 2`): the low
/// bytes (`[0..64)`) or the high bytes (`[64..128)`) of the 64 entries of A and B.
static IQ2XS_PACK: A64<128> = {
    let mut t = [0u8; 128];
    let mut h = 0;
    while h < 2 {
        let mut c = 0;
        while c < 4 {
            let mut w = 0;
            while w < 8 {
                let n = 8 * (w % 4) + 2 * c + w / 4;
                t[64 * h + 16 * c + w] = (2 * n + h) as u8;
                t[64 * h + 16 * c + 8 + w] = (64 + 2 * n + h) as u8;
                w += 1;
            }
            c += 1;
        }
        h += 1;
    }
    A64(t)
};

/// `vpermb` control transposing sign bytes from the packed order of `IQ2XS_PACK` (A's entry
/// `8k + e` at `16(e / 2) + 4(e % 2) + k`, B's 8 later) to qword `e`, byte `k` (A) / `4 + k`
/// (B).
static IQ2XS_SCTL: A64<64> = {
    let mut t = [0u8; 64];
    let mut e = 0;
    while e < 8 {
        let mut k = 0;
        while k < 4 {
            t[8 * e + k] = (16 * (e / 2) + 4 * (e % 2) + k) as u8;
            t[8 * e + 4 + k] = (16 * (e / 2) + 8 + 4 * (e % 2) + k) as u8;
            k += 1;
        }
        e += 1;
    }
    A64(t)
};

/// The exact integer sums of the IQ2_XS blocks at `xa`, `xb` (activations `ya`, `yb`).
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq2_xs_pair(xa: *const u8, xb: *const u8, ya: *const u8, yb: *const u8) -> (i32, i32) {
    let t = IQ2XS_CODES.0.as_ptr();
    let va = ld(xa.add(2));
    let vb = ld(xb.add(2));
    let pk = IQ2XS_PACK.0.as_ptr();
    // Low index bytes and high bytes (bit 0: index bit 8; bits 1..8: the sign index).
    let idx = _mm512_permutex2var_epi8(va, ld(pk), vb);
    let hb = _mm512_permutex2var_epi8(va, ld(pk.add(64)), vb);
    let m7 = _mm512_movepi8_mask(idx);
    let m8 = _mm512_test_epi8_mask(hb, _mm512_set1_epi8(1));
    let tl = |o: usize| {
        _mm512_mask_blend_epi8(
            m8,
            lut256(t.add(o), idx, m7),
            lut256(t.add(o + 256), idx, m7),
        )
    };
    let (lo, hi) = (tl(0), tl(512));
    // Signs: `ksigns` of the high byte >> 1 (bit 7 of each index is ignored), transposed.
    let ks = KSIGNS.0.as_ptr();
    let si = _mm512_srli_epi16(hb, 1);
    let sg = _mm512_permutex2var_epi8(ld(ks), si, ld(ks.add(64)));
    let sg = _mm512_permutexvar_epi8(ld(IQ2XS_SCTL.0.as_ptr()), sg);
    // Per-16 scales: bytes 66 + 2k and 67 + 2k of the block.
    let sc =
        |x: *const u8| move |k: usize| scale_quads(x.add(66 + 2 * k), x.add(67 + 2 * k), 0xff00);
    let acc_a = e8_block(_mm512_unpacklo_epi8(lo, hi), sg, 0, sc(xa), ya);
    let acc_b = e8_block(_mm512_unpackhi_epi8(lo, hi), sg, 32, sc(xb), yb);
    hsum2(acc_a, acc_b)
}

pair_kernel!(iq2_xs, 74, pair: iq2_xs_pair, f16_ld8, |s: i32| s as f32, 0.125f32);

// ------------------------------------------------------------------------------ IQ2_S (82 B)
//
// 1024 grid rows: in-register lookups would take 16 `vpermi2b`s (32 port-5 cycles) and 14
// blends per pair of blocks, so the rows are gathered instead, which also spares the digit
// expansion. Signs are plain bits in the block (`kmovq` loads), scales per 16.

/// `vpermb` (zero-masked to bytes 0, 1 of each qword) control widening words `8k..8k+8` of a
/// register to qwords.
const fn widen_ctl(k: usize) -> A64<64> {
    let mut t = [0u8; 64];
    let mut e = 0;
    while e < 8 {
        t[8 * e] = (2 * (8 * k + e)) as u8;
        t[8 * e + 1] = (2 * (8 * k + e) + 1) as u8;
        e += 1;
    }
    A64(t)
}
static WIDEN: [A64<64>; 4] = [widen_ctl(0), widen_ctl(1), widen_ctl(2), widen_ctl(3)];
const QWORD_LO2: __mmask64 = 0x0303_0303_0303_0303;

/// `vpermb` control (zero-masked to the odd bytes) putting byte `n / 4` of a register in the
/// high byte of word `n` (n < 32).
static QUAD_HI: A64<64> = words!(|n| (n / 4) << 8);

/// Word `n`: `2(n % 4)` (IQ2_S: the shift of entry n's two high index bits in its `qh` byte).
static SHIFT2: A64<64> = words!(|n| 2 * (n % 4));

/// One IQ2_S block's scale-weighted i32 lanes (block at `x`, activations at `y`). The grid has
/// 1024 rows, too many for in-register lookups: rows are gathered (`vpgatherqq`, eight per
/// output register) from the 10-bit indices, built as words for all 32 entries at once.
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq2_s_block(x: *const u8, y: *const u8) -> __m512i {
    // idx(n) = qs[n] | ((qh[n / 4] >> 2(n % 4)) & 3) << 8
    let lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256(x.add(2) as *const __m256i));
    let qh = _mm512_set1_epi64((x.add(66) as *const i64).read_unaligned());
    let qw = _mm512_maskz_permutexvar_epi8(0xaaaa_aaaa_aaaa_aaaa, ld(QUAD_HI.0.as_ptr()), qh);
    let hi = _mm512_srlv_epi16(qw, ld(SHIFT2.0.as_ptr()));
    // lo | (hi & 0x300)
    let idx = _mm512_ternarylogic_epi32::<0xf8>(lo, hi, _mm512_set1_epi16(0x300));
    sum4(_mm512_setzero_si512(), |k| {
        let iq = _mm512_maskz_permutexvar_epi8(QWORD_LO2, ld(WIDEN[k].0.as_ptr()), idx);
        let vals = _mm512_i64gather_epi64::<8>(iq, IQ2S_GRID.as_ptr() as *const i64);
        // Signs: one plain bit per weight, bytes 34 + 8k.. of the block.
        let qs = neg_ld(y.add(4 + 64 * k), kld(x.add(34 + 8 * k)));
        let sc = scale_quads(x.add(74 + 2 * k), x.add(75 + 2 * k), 0xff00);
        [vals, qs, sc]
    })
}

pair_kernel!(iq2_s, 82, block: iq2_s_block, f16_ld8, |s: i32| s as f32, 0.125f32);

// ------------------------------------------------------------------------------ IQ3_XXS (98 B)
//
// D4 grids (IQ3_XXS, IQ3_S): 64 rows of 4 weights per block, one register of indices per
// block. The 12-bit codes are a low byte table and a high nibble table (two entries per byte,
// the nibble picked by the top index bit: one `vpermi2b` fewer); the indices are permuted
// first so that `vpunpck{l,h}bw` yield two D registers (outputs 0, 1 and 2, 3). Per output:
// `vpmultishiftqb`, then `vpermb` (IQ3_XXS: 4..52, 62 is not affine) or `vgf2p8affineqb`
// (IQ3_S: 2d + 1). IQ3_XXS signs are `ksigns` bytes as for IQ2_XXS (one lookup for the pair);
// IQ3_S signs are plain bits in the block.

/// The grid values of the 3-bit digits of `iq3xxs_grid`.
const D4_VALS: [u8; 8] = [4, 12, 20, 28, 36, 44, 52, 62];

/// 3-bit digit of an `iq3xxs_grid` byte (4, 12, .., 52, 62 → 0..7).
const fn d4_digit(b: u8) -> u16 {
    let mut d = 0;
    while d < 8 {
        if D4_VALS[d] == b {
            return d as u16;
        }
        d += 1;
    }
    panic!("not an iq3xxs grid value")
}

/// The 12-bit codes (digit j at bits 3j..3j+3) of `iq3xxs_grid`: `[0..256)` the low bytes,
/// `[256..384)` the high nibbles of entries i and i + 128 packed as `h(i) | h(i + 128) << 4`.
static IQ3XXS_CODES: A64<384> = {
    let mut t = [0u8; 384];
    let mut i = 0;
    while i < 256 {
        let mut c = 0u16;
        let mut j = 0;
        while j < 4 {
            c |= d4_digit((IQ3XXS_GRID[i] >> (8 * j)) as u8) << (3 * j);
            j += 1;
        }
        t[i] = c as u8;
        t[256 + i % 128] |= ((c >> 8) as u8) << (4 * (i / 128));
        i += 1;
    }
    A64(t)
};

/// `vpermb` table: byte i → the grid value of digit `i & 7`.
static IQ3XXS_VALS: A64<64> = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = D4_VALS[i & 7];
        i += 1;
    }
    A64(t)
};

/// `vpermb` control ordering a block's 64 grid indices (entry n = weights 4n..4n+4) so that
/// after the lookup `vpunpcklbw(L, H)` is D0 and `vpunpckhbw(L, H)` D1: qword `e` of D0 holds
/// the codes (16-bit slots) of entries `2e`, `2e + 1` (output 0) and `16 + 2e`, `17 + 2e`
/// (output 1); D1 the same for outputs 2 and 3.
static IQ3XXS_PACK: A64<64> = {
    let mut t = [0u8; 64];
    let mut c = 0;
    while c < 4 {
        let mut h = 0;
        while h < 2 {
            let mut q = 0;
            while q < 2 {
                let mut r = 0;
                while r < 4 {
                    let e = 2 * c + q;
                    t[16 * c + 8 * h + 4 * q + r] = (16 * (2 * h + r / 2) + 2 * e + r % 2) as u8;
                    r += 1;
                }
                q += 1;
            }
            h += 1;
        }
        c += 1;
    }
    A64(t)
};

/// The `vpmultishiftqb` control of output `k` on its D register: byte `j` of each qword from
/// slot `2(k % 2) + j / 4`, digit `j % 4`.
const fn iq3xxs_ms(k: usize) -> i64 {
    let mut b = [0u8; 8];
    let mut j = 0;
    while j < 8 {
        b[j] = (16 * (2 * (k % 2) + j / 4) + 3 * (j % 4)) as u8;
        j += 1;
    }
    q64(b)
}

/// The two D registers of the IQ3_XXS block whose grid indices are at `q`.
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq3_xxs_codes(q: *const u8) -> [__m512i; 2] {
    let t = IQ3XXS_CODES.0.as_ptr();
    let idx = _mm512_permutexvar_epi8(ld(IQ3XXS_PACK.0.as_ptr()), ld(q));
    let m7 = _mm512_movepi8_mask(idx);
    let lo = lut256(t, idx, m7);
    // High nibbles: one lookup for both halves, the upper nibble where bit 7 is set (the
    // bits above each digit are never read).
    let h = _mm512_permutex2var_epi8(ld(t.add(256)), idx, ld(t.add(320)));
    let hi = _mm512_mask_blend_epi8(m7, h, _mm512_srli_epi16(h, 4));
    [_mm512_unpacklo_epi8(lo, hi), _mm512_unpackhi_epi8(lo, hi)]
}

/// One IQ3_XXS block's four output registers from its D registers `dd`, sign bits `sb + 8k + j`
/// of the qwords of `sg` and the block at `x`; activations at `y + 4`.
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq3_xxs_block(
    dd: [__m512i; 2],
    sg: __m512i,
    sb: u8,
    x: *const u8,
    y: *const u8,
) -> __m512i {
    let vt = ld(IQ3XXS_VALS.0.as_ptr());
    sum4(_mm512_setzero_si512(), |k| {
        let vals = _mm512_permutexvar_epi8(
            _mm512_multishift_epi64_epi8(_mm512_set1_epi64(iq3xxs_ms(k)), dd[k / 2]),
            vt,
        );
        let bc = _mm512_set1_epi64(q64(std::array::from_fn(|j| sb + (8 * k + j) as u8)));
        let m = _mm512_bitshuffle_epi64_mask(sg, bc);
        // Scales: top nibbles of the aux words of groups 2k, 2k + 1.
        let sc = scale_pair_hi(x.add(69 + 8 * k), x.add(73 + 8 * k));
        [vals, neg_ld(y.add(4 + 64 * k), m), sc]
    })
}

/// `vpermb` control transposing the sign bytes of two IQ3_XXS blocks (group g = weights
/// 8g..8g+8 of A at byte g, of B at byte 32 + g): qword `e`, byte `k` = A's group `8k + e`,
/// byte `4 + k` = B's.
static IQ3XXS_SCTL: A64<64> = {
    let mut t = [0u8; 64];
    let mut e = 0;
    while e < 8 {
        let mut k = 0;
        while k < 4 {
            t[8 * e + k] = (8 * k + e) as u8;
            t[8 * e + 4 + k] = (32 + 8 * k + e) as u8;
            k += 1;
        }
        e += 1;
    }
    A64(t)
};

/// The exact integer sums of the IQ3_XXS blocks at `xa`, `xb` (activations `ya`, `yb`).
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq3_xxs_pair(xa: *const u8, xb: *const u8, ya: *const u8, yb: *const u8) -> (i32, i32) {
    let da = iq3_xxs_codes(xa.add(2));
    let db = iq3_xxs_codes(xb.add(2));
    // Sign indices: aux words (A in bytes 0..32, B in 32..64; a masked load never touches the
    // bytes before B's), 7-bit fields 7l → byte 4·ib + l, `ksigns`, transposed.
    let aux = _mm512_mask_loadu_epi8(
        _mm512_castsi256_si512(_mm256_loadu_si256(xa.add(66) as *const __m256i)),
        0xffff_ffff_0000_0000,
        xb.add(66 - 32) as *const i8,
    );
    let si =
        _mm512_multishift_epi64_epi8(_mm512_set1_epi64(q64([0, 7, 14, 21, 32, 39, 46, 53])), aux);
    let ks = KSIGNS.0.as_ptr();
    let sg = _mm512_permutex2var_epi8(ld(ks), si, ld(ks.add(64)));
    let sg = _mm512_permutexvar_epi8(ld(IQ3XXS_SCTL.0.as_ptr()), sg);
    let acc_a = iq3_xxs_block(da, sg, 0, xa, ya);
    let acc_b = iq3_xxs_block(db, sg, 32, xb, yb);
    hsum2(acc_a, acc_b)
}

pair_kernel!(iq3_xxs, 98, pair: iq3_xxs_pair, f16_ld8, |s: i32| s as f32, 0.25f32);

// ------------------------------------------------------------------------------ IQ3_S (110 B)

/// 3-bit digit of an `iq3s_grid` byte (1, 3, .., 15 → 0..7).
const fn d4s_digit(b: u8) -> u16 {
    assert!(b % 2 == 1 && b <= 15, "not an iq3s grid value");
    (b / 2) as u16
}

/// The 12-bit codes (digit j at bits 3j..3j+3) of `iq3s_grid`: `[0..512)` the low bytes,
/// `[512..768)` the high nibbles of entries i and i + 256 packed as `h(i) | h(i + 256) << 4`.
static IQ3S_CODES: A64<768> = {
    let mut t = [0u8; 768];
    let mut i = 0;
    while i < 512 {
        let mut c = 0u16;
        let mut j = 0;
        while j < 4 {
            c |= d4s_digit((IQ3S_GRID[i] >> (8 * j)) as u8) << (3 * j);
            j += 1;
        }
        t[i] = c as u8;
        t[512 + i % 256] |= ((c >> 8) as u8) << (4 * (i / 256));
        i += 1;
    }
    A64(t)
};

/// `iq3s_grid` digit → value: 1 ⊕ 2·d0 ⊕ 4·d1 ⊕ 8·d2 = 2d + 1.
const D4S_AFFINE: i64 = affine([2, 4, 8, 0, 0, 0, 0, 0]);
const D4S_B: i32 = 1;

/// The two D registers (as `iq3_xxs_codes`) of the IQ3_S block at `x`: 9-bit indices, the
/// low bytes at `x + 2`, bit 8 of entry n = bit n of the u64 `qh` at `x + 66`.
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq3_s_codes(x: *const u8) -> [__m512i; 2] {
    let t = IQ3S_CODES.0.as_ptr();
    let pi = ld(IQ3XXS_PACK.0.as_ptr());
    let idx = _mm512_permutexvar_epi8(pi, ld(x.add(2)));
    // Bit p of m8 = qh bit π(p): the same permutation, on bits.
    let qh = _mm512_set1_epi64((x.add(66) as *const i64).read_unaligned());
    let m8 = _mm512_bitshuffle_epi64_mask(qh, pi);
    let m7 = _mm512_movepi8_mask(idx);
    let lo = _mm512_mask_blend_epi8(m8, lut256(t, idx, m7), lut256(t.add(256), idx, m7));
    let h = lut256(t.add(512), idx, m7);
    let hi = _mm512_mask_blend_epi8(m8, h, _mm512_srli_epi16(h, 4));
    [_mm512_unpacklo_epi8(lo, hi), _mm512_unpackhi_epi8(lo, hi)]
}

/// One IQ3_S block's scale-weighted i32 lanes (block at `x`, activations at `y`).
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq3_s_block(x: *const u8, y: *const u8) -> __m512i {
    let dd = iq3_s_codes(x);
    let aff = _mm512_set1_epi64(D4S_AFFINE);
    sum4(_mm512_setzero_si512(), |k| {
        let ms = _mm512_multishift_epi64_epi8(_mm512_set1_epi64(iq3xxs_ms(k)), dd[k / 2]);
        let vals = _mm512_gf2p8affine_epi64_epi8::<D4S_B>(ms, aff);
        // Signs: one plain bit per weight, bytes 74 + 8k.. of the block.
        let qs = neg_ld(y.add(4 + 64 * k), kld(x.add(74 + 8 * k)));
        [vals, qs, scale_pair_byte(x.add(106 + k))]
    })
}

pair_kernel!(iq3_s, 110, block: iq3_s_block, f16_ld8, |s: i32| s as f32, 1.0f32);

// ------------------------------------------------------------------------------ IQ1_S (50 B)
//
// IQ1_S / IQ1_M: 2048 ternary grid rows, gathered (`vpgatherqq`, eight rows per output) from a
// copy with every byte + 1 (0, 1, 2: unsigned for `vpmaddubsw`, no sign masks); the +1 comes
// off through the Q8_K block sums. The delta terms fold into the same integer: the twin
// computes `Σ as f32 + delta · Σ1 as f32` with delta = 1/8, where both conversions and the
// product are exact (|Σ|, |Σ1| < 2^24), so its one rounding is that of `(8Σ + Σ1) / 8`, and
// scaling by 2^-3 commutes with rounding: `(8Σ + Σ1) as f32 * 0.125` is its value bit for
// bit. IQ1_S: `8Σ + Σ1 = Σ 8·ls·(g + 1)·q + Σ ls·(δ − 8)·bsum` (the scale rows carry 8·ls).
const _: () = assert!(IQ1S_DELTA == 0.125 && IQ1M_DELTA == 0.125);

/// `iq1s_grid` with every byte + 1 (−1, 0, 1 → 0, 1, 2): unsigned for `vpmaddubsw`; the +1
/// comes off through the Q8_K block sums.
#[repr(C, align(64))]
struct Grid2048([u64; 2048]);
static IQ1S_P1: Grid2048 = {
    let mut t = [0u64; 2048];
    let mut i = 0;
    while i < 2048 {
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            v |= (((IQ1S_GRID[i] >> (8 * j)) as u8).wrapping_add(1) as u64) << (8 * j);
            j += 1;
        }
        t[i] = v;
        i += 1;
    }
    Grid2048(t)
};

/// IQ1_S scale pairs ×8: entry `a | b << 3` (3-bit scales) holds `8·(2a + 1)` in both words
/// of dwords 0..8 and `8·(2b + 1)` in dwords 8..16.
static IQ1S_SCALES: ScaleRows<64, 16> = scale_rows(3, 8);

/// The `IQ1S_SCALES` entry of the scales in bits 4..7 of the bytes at `pa` and `pb` (the high
/// bytes of two `qh` words); asm as `scale_pair_hi`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn iq1s_scale(pa: *const u8, pb: *const u8) -> __m512i {
    let off: usize;
    std::arch::asm!(
        "movzx {o:e}, byte ptr [{pa}]",
        "movzx {t:e}, byte ptr [{pb}]",
        "shr {o:e}, 4",
        "and {o:e}, 7",
        "shr {t:e}, 1",
        "and {t:e}, 0x38",
        "or {o:e}, {t:e}",
        "shl {o:e}, 6",
        pa = in(reg) pa,
        pb = in(reg) pb,
        o = out(reg) off,
        t = out(reg) _,
        options(pure, readonly, nostack),
    );
    ld((IQ1S_SCALES.0.as_ptr() as *const u8).add(off))
}

/// `vpermw` control: word t ← word t / 2.
static DUP2W: A64<64> = words!(|n| n / 2);

/// `vpermw` table: key `s | d << 3` (`qh >> 12`: scale, delta sign) → `(2s + 1)·(δ − 8)`
/// with δ = −1 where d is set, else 1 (the per-16 multiplier of the block sums).
static IQ1S_CORR: A64<64> = words!(|key| if key < 16 {
    let ls = 2 * (key & 7) as i16 + 1;
    let delta = if key & 8 != 0 { -1 } else { 1 };
    ls * (delta - 8)
} else {
    0
});

/// `vpermb` control (zero-masked to odd bytes): the high byte of word n ← byte
/// `2(n / 4) + 1` (the high byte of IQ1_S `qh` word n / 4); the low byte ← byte `2(n / 4)`.
static IQ1S_QH: A64<64> = words!(|n| (2 * (n / 4)) | ((2 * (n / 4) + 1) << 8));

/// Word n: `(8 − 3(n % 4)) mod 16`, the left rotation bringing entry n's three high index
/// bits (bits 3l..3l+3 of its `qh` word) to bits 8..11.
static IQ1S_ROT: A64<64> = words!(|n| (16 + 8 - 3 * (n % 4)) % 16);

/// One IQ1_S block: `8·Σ + Σ1` in i32 lanes (block at `x`, activations at `y`).
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq1_s_block(x: *const u8, y: *const u8) -> __m512i {
    // idx(n) = qs[n] | ((qh[n / 4] >> 3(n % 4)) & 7) << 8
    let lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256(x.add(2) as *const __m256i));
    let qh = _mm512_castsi128_si512(_mm_loadu_si128(x.add(34) as *const __m128i));
    let qw = _mm512_permutexvar_epi8(ld(IQ1S_QH.0.as_ptr()), qh);
    let rot = _mm512_shldv_epi16(qw, qw, ld(IQ1S_ROT.0.as_ptr()));
    // lo | (rot & 0x700)
    let idx = _mm512_ternarylogic_epi32::<0xf8>(lo, rot, _mm512_set1_epi16(0x700));
    // Σ ls·(δ − 8)·bsum over the 16 block sums, first in the accumulator.
    let key = _mm512_srli_epi16(_mm512_permutexvar_epi16(ld(DUP2W.0.as_ptr()), qh), 12);
    let cw = _mm512_permutexvar_epi16(key, ld(IQ1S_CORR.0.as_ptr()));
    // (The upper half of `cw` is garbage; `bs` is zero there.)
    let bs = _mm512_zextsi256_si512(_mm256_loadu_si256(y.add(260) as *const __m256i));
    sum4(dpwssd(_mm512_setzero_si512(), bs, cw), |k| {
        let iq = _mm512_maskz_permutexvar_epi8(QWORD_LO2, ld(WIDEN[k].0.as_ptr()), idx);
        let u = _mm512_i64gather_epi64::<8>(iq, IQ1S_P1.0.as_ptr() as *const i64);
        let sc = iq1s_scale(x.add(35 + 4 * k), x.add(37 + 4 * k));
        [u, ld(y.add(4 + 64 * k)), sc]
    })
}

pair_kernel!(iq1_s, 50, block: iq1_s_block, f16_ld8, |s: i32| s as f32 * 0.125, 1.0f32);

// ------------------------------------------------------------------------------ IQ1_M (56 B)

/// IQ1_M scale quads: entry `a | b << 3` (3-bit scales of two 16-weight halves) holds
/// `2a + 1` in both words of dwords 0..4 and `2b + 1` in dwords 4..8.
static IQ1M_SCALES: ScaleRows<64, 8> = scale_rows(3, 1);

/// The multiplier of IQ1_M output register `k` from its scale word at `p` (bits 0..6: the two
/// halves of group 2k, bits 6..12: of group 2k + 1); loads as `scale_quads`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn iq1m_scale(p: *const u8, hi8: __mmask16) -> __m512i {
    let v: __m512i;
    std::arch::asm!(
        "movzx {a:e}, word ptr [{p}]",
        "mov {b:e}, {a:e}",
        "and {a:e}, 63",
        "shr {b:e}, 6",
        "and {b:e}, 63",
        "shl {a:e}, 5",
        "shl {b:e}, 5",
        "vbroadcasti64x4 {v}, ymmword ptr [{t} + {a}]",
        "vmovdqu32 {v} {{{m}}}, zmmword ptr [{t} + {b} - 32]",
        p = in(reg) p,
        t = in(reg) IQ1M_SCALES.0.as_ptr(),
        m = in(kreg) hi8,
        a = out(reg) _,
        b = out(reg) _,
        v = out(zmm_reg) v,
        options(pure, readonly, nostack),
    );
    v
}

/// The 8-bit mask (bit e = entry `8k + e`) of IQ1_M entries whose delta is +1: bit 3 of each
/// `qh` nibble clear, the four `qh` bytes at `p`. `pext` runs on an integer port; asm so that
/// LLVM keeps it there.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,bmi2")]
unsafe fn iq1m_dplus(p: *const u8) -> __mmask8 {
    let k: __mmask8;
    std::arch::asm!(
        "mov {m:e}, 0x88888888",
        "mov {v:e}, dword ptr [{p}]",
        "pext {v:e}, {v:e}, {m:e}",
        "not {v:e}",
        "kmovb {k}, {v:e}",
        p = in(reg) p,
        m = out(reg) _,
        v = out(reg) _,
        k = out(kreg) k,
        options(pure, readonly, nostack),
    );
    k
}

/// The f16 given by its bits, as f32 (asm: a clean `vmovd`, no `vpinsrw` merge).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_bits(h: u32) -> f32 {
    let v: __m128;
    std::arch::asm!(
        "vmovd {v}, {h:e}",
        "vcvtph2ps {v}, {v}",
        h = in(reg) h,
        v = out(xmm_reg) v,
        options(pure, nomem, nostack, preserves_flags),
    );
    _mm_cvtss_f32(v)
}

/// `vpermb` control (zero-masked to odd bytes): the high byte of word n ← byte `n / 2` (the
/// IQ1_M `qh` byte holding entry n's nibble).
static IQ1M_QH: A64<64> = words!(|n| (n / 2) << 8);

/// Word n: `4(n % 2)` (the shift of entry n's nibble in its `qh` byte).
static SHIFT4: A64<64> = words!(|n| 4 * (n % 2));

/// `vpermw` control: word t ← word t / 4 (the scale word of 16-weight group t).
static DUP4W: A64<64> = words!(|n| n / 4);

/// Word t: `3(t % 4)` (the shift of group t's scale in its word).
static SHIFT3: A64<64> = words!(|n| 3 * (n % 4));

/// `vpermw` table: i (low 3 bits: a scale) → `−9·(2s + 1)`.
static IQ1M_CORR: A64<64> = words!(|n| -9 * (2 * (n & 7) as i16 + 1));

/// IQ1_M: grid bytes g and the delta δ of each 8 weights enter as `u = 8(g + 1) + 1 + δ =
/// 8g + δ + 9` (0..18, unsigned); `Σ ls·u·q − 9·Σ ls·bsum = 8Σ1 + Σ2` of the twin. Returns
/// that in i32 lanes (block at `x`, activations at `y`).
#[inline]
#[target_feature(
    enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi2"
)]
unsafe fn iq1_m_block(x: *const u8, y: *const u8) -> __m512i {
    // idx(n) = qs[n] | (nibble n of qh & 7) << 8
    let lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256(x as *const __m256i));
    let qh = _mm512_castsi128_si512(_mm_loadu_si128(x.add(32) as *const __m128i));
    let qw = _mm512_maskz_permutexvar_epi8(0xaaaa_aaaa_aaaa_aaaa, ld(IQ1M_QH.0.as_ptr()), qh);
    let hi = _mm512_srlv_epi16(qw, ld(SHIFT4.0.as_ptr()));
    let idx = _mm512_ternarylogic_epi32::<0xf8>(lo, hi, _mm512_set1_epi16(0x700));
    // −9·Σ ls·bsum over the 16 block sums, first in the accumulator.
    let sw = _mm512_castsi128_si512(_mm_loadl_epi64(x.add(48) as *const __m128i));
    let s3 = _mm512_srlv_epi16(
        _mm512_permutexvar_epi16(ld(DUP4W.0.as_ptr()), sw),
        ld(SHIFT3.0.as_ptr()),
    );
    let cw = _mm512_permutexvar_epi16(s3, ld(IQ1M_CORR.0.as_ptr()));
    // (The upper half of `cw` is garbage; `bs` is zero there.)
    let bs = _mm512_zextsi256_si512(_mm256_loadu_si256(y.add(260) as *const __m256i));
    sum4(dpwssd(_mm512_setzero_si512(), bs, cw), |k| {
        let iq = _mm512_maskz_permutexvar_epi8(QWORD_LO2, ld(WIDEN[k].0.as_ptr()), idx);
        // 8(g + 1): g + 1 ≤ 2, so the word shift never carries across bytes.
        let g8 = _mm512_slli_epi16(
            _mm512_i64gather_epi64::<8>(iq, IQ1S_P1.0.as_ptr() as *const i64),
            3,
        );
        let u = _mm512_mask_or_epi64(g8, iq1m_dplus(x.add(32 + 4 * k)), g8, _mm512_set1_epi8(2));
        [
            u,
            ld(y.add(4 + 64 * k)),
            iq1m_scale(x.add(48 + 2 * k), 0xff00),
        ]
    })
}

/// The IQ1_M block scale: an f16 spread over the top nibbles of the four scale words.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq1m_d(x: *const u8) -> f32 {
    let s = (x.add(48) as *const u64).read_unaligned();
    let h = (s >> 12 & 0xf) | (s >> 24 & 0xf0) | (s >> 36 & 0xf00) | (s >> 48 & 0xf000);
    f16_bits(h as u32)
}

pair_kernel!(iq1_m, 56, block: iq1_m_block, iq1m_d, |s: i32| s as f32 * 0.125, 1.0f32);

// ------------------------------------------------------------------------------ table

/// Whether the CPU has the extensions these kernels use beyond the AVX-512 level (checked once).
fn has_ext() -> bool {
    static H: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *H.get_or_init(|| {
        is_x86_feature_detected!("avx512vbmi")
            && is_x86_feature_detected!("avx512bitalg")
            && is_x86_feature_detected!("avx512vbmi2")
            && is_x86_feature_detected!("gfni")
            && is_x86_feature_detected!("bmi2")
    })
}

/// The 512-bit kernel for `ty`, where one exists and the CPU has the extensions it uses
/// (the caller, `crate::simd::dot_fn_at`, has checked the AVX-512 level itself).
pub(crate) fn dot(ty: GgmlType) -> Option<crate::VecDotFn> {
    if !has_ext() {
        return None;
    }
    // SAFETY (all closures): only reachable after the CPU checks above and in the caller.
    Some(match ty {
        GgmlType::IQ2_XXS => |n, w, a| unsafe { iq2_xxs(n, w, a) },
        GgmlType::IQ3_XXS => |n, w, a| unsafe { iq3_xxs(n, w, a) },
        GgmlType::IQ2_XS => |n, w, a| unsafe { iq2_xs(n, w, a) },
        GgmlType::IQ2_S => |n, w, a| unsafe { iq2_s(n, w, a) },
        GgmlType::IQ1_S => |n, w, a| unsafe { iq1_s(n, w, a) },
        GgmlType::IQ1_M => |n, w, a| unsafe { iq1_m(n, w, a) },
        GgmlType::IQ3_S => |n, w, a| unsafe { iq3_s(n, w, a) },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vgf2p8affineqb` on one byte, from Intel's definition: bit i = parity(A.byte[7 − i] & x)
    /// ⊕ bit i of `b`.
    fn gf_affine(x: u8, a: i64, b: i32) -> u8 {
        let m = (a as u64).to_le_bytes();
        (0..8).fold(0u8, |r, i| {
            r | ((((m[7 - i] & x).count_ones() & 1) as u8 ^ (b as u8 >> i & 1)) << i)
        })
    }

    /// Oracle: grids.rs. The E8 code tables and the digit → byte affine map give back every
    /// row of the IQ2_XXS and IQ2_XS grids; exact.
    #[test]
    fn e8_codes_decode_to_grids() {
        let check = |codes: &[u8], grid: &[u64]| {
            let n = grid.len();
            for (i, &row) in grid.iter().enumerate() {
                let c = codes[i] as u16 | (codes[n + i] as u16) << 8;
                for j in 0..8 {
                    // The next digits above this one, as the multishift windows leave them.
                    let x = (c >> (2 * j)) as u8;
                    assert_eq!(
                        gf_affine(x, E8_AFFINE, E8_B),
                        (row >> (8 * j)) as u8,
                        "{i} {j}"
                    );
                }
            }
        };
        check(&IQ2XXS_CODES.0, &IQ2XXS_GRID);
        check(&IQ2XS_CODES.0, &IQ2XS_GRID);
    }

    /// Oracle: grids.rs. The D4 code tables (low bytes + packed high nibbles) give back every
    /// row of the IQ3_XXS grid (through `IQ3XXS_VALS`) and the IQ3_S grid (affine); exact.
    #[test]
    fn d4_codes_decode_to_grids() {
        for (i, &row) in IQ3XXS_GRID.iter().enumerate() {
            let h = IQ3XXS_CODES.0[256 + i % 128] >> (4 * (i / 128)) & 15;
            let c = IQ3XXS_CODES.0[i] as u16 | (h as u16) << 8;
            for j in 0..4 {
                let d = (c >> (3 * j)) as usize & 63;
                assert_eq!(IQ3XXS_VALS.0[d], (row >> (8 * j)) as u8, "{i} {j}");
            }
        }
        for (i, &row) in IQ3S_GRID.iter().enumerate() {
            let h = IQ3S_CODES.0[512 + i % 256] >> (4 * (i / 256)) & 15;
            let c = IQ3S_CODES.0[i] as u16 | (h as u16) << 8;
            for j in 0..4 {
                let x = (c >> (3 * j)) as u8;
                assert_eq!(
                    gf_affine(x, D4S_AFFINE, D4S_B),
                    (row >> (8 * j)) as u8,
                    "{i} {j}"
                );
            }
        }
    }

    /// Oracle: ggml's `KSIGNS_IQ2XS` and `iq1s_grid` (grids.rs); the derived tables; exact.
    #[test]
    fn derived_tables() {
        assert_eq!(KSIGNS.0, KSIGNS_IQ2XS);
        for (i, &row) in IQ1S_GRID.iter().enumerate() {
            for j in 0..8 {
                let g = (row >> (8 * j)) as u8 as i8;
                assert_eq!((IQ1S_P1.0[i] >> (8 * j)) as u8 as i32, g as i32 + 1);
            }
        }
        // Scale rows: 2s + 1 in both words.
        let ls = |v: u32| {
            assert_eq!(v >> 16, v & 0xffff);
            v & 0xffff
        };
        for (i, row) in SCALE_PAIRS.0.iter().enumerate() {
            for (l, &v) in row.iter().enumerate() {
                let s = if l < 8 { i & 15 } else { i >> 4 };
                assert_eq!(ls(v), 2 * s as u32 + 1);
            }
        }
        for (i, row) in SCALE_QUADS.0.iter().enumerate() {
            for (l, &v) in row.iter().enumerate() {
                let s = if l < 4 { i & 15 } else { i >> 4 };
                assert_eq!(ls(v), 2 * s as u32 + 1);
            }
        }
    }
}
