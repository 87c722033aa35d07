//! Activation quantizers: Q8_0, Q8_1, Q8_K (ggml's `quantize_row_q8_*`).
//!
//! Block structs mirror ggml-common.h (`block_q8_0`, `block_q8_1`, `block_q8_K`) with `#[repr(C)]`
//! and compile-time size checks like ggml's `static_assert`s. All multi-byte fields are stored
//! little-endian, as in GGUF files (this crate assumes a little-endian target, which every
//! platform ggml supports is).
//!
//! ## Byte views
//! [`as_bytes`] turns a block slice into bytes (always possible). [`from_bytes`] is the reverse
//! and is *checked*: it returns `None` unless the byte slice is a whole number of blocks **and**
//! correctly aligned for the block (align 2 for Q8_0/Q8_1, 4 for Q8_K). Callers holding bytes at an
//! arbitrary address (e.g. inside a memory-mapped GGUF) should use [`blocks_from_bytes`], which
//! borrows when aligned and copies otherwise. The kernels in this crate never cast: they read
//! fields from `&[u8]` at fixed offsets with `from_le_bytes`, so alignment never matters there.

use crate::{GgmlType, TypeKernels};
use half::f16;
use std::borrow::Cow;
use std::mem::{align_of, size_of};

/// ggml `QK8_0` / `QK8_1`.
pub const QK8_0: usize = 32;
/// ggml `QK_K`.
pub const QK_K: usize = 256;

/// ggml `block_q8_0`: `qs[j] * d`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK8_0],
}

/// ggml `block_q8_1`: `qs[j] * d`, with `s = d * sum(qs)`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK8_0],
}

/// ggml `block_q8_K`: `qs[j] * d`; `bsums[g]` = sum of `qs[16g..16g+16]`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(size_of::<BlockQ8_1>() == 36);
const _: () = assert!(size_of::<BlockQ8K>() == 292);
const _: () = assert!(align_of::<BlockQ8_0>() == 2);
const _: () = assert!(align_of::<BlockQ8K>() == 4);

/// Marker for plain-old-data block structs: `#[repr(C)]`, no padding, every bit pattern valid.
///
/// # Safety
/// Implement only for types meeting the above; `as_bytes`/`from_bytes` rely on it.
pub unsafe trait RawBlock: Copy + 'static {}
// SAFETY: repr(C), fields are f16/i8/f32/i16 arrays; sizes asserted above equal the sum of field
// sizes, so there is no padding; every bit pattern is a valid f16/f32/integer.
unsafe impl RawBlock for BlockQ8_0 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ8_1 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ8K {}

/// The bytes of a block slice (little-endian target assumed, see the module docs).
pub fn as_bytes<T: RawBlock>(blocks: &[T]) -> &[u8] {
    // SAFETY: T is RawBlock (no padding, plain data); u8 has align 1; length is exact.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    }
}

/// Mutable bytes of a block slice.
pub fn as_bytes_mut<T: RawBlock>(blocks: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; any byte pattern written back is a valid T (RawBlock).
    unsafe {
        std::slice::from_raw_parts_mut(
            blocks.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(blocks),
        )
    }
}

/// View bytes as blocks; `None` if the length is not a multiple of the block size or the
/// address is not aligned for `T` (see [`blocks_from_bytes`] for the copying fallback).
pub fn from_bytes<T: RawBlock>(bytes: &[u8]) -> Option<&[T]> {
    let sz = size_of::<T>();
    if !bytes.len().is_multiple_of(sz) || !(bytes.as_ptr() as usize).is_multiple_of(align_of::<T>())
    {
        return None;
    }
    // SAFETY: aligned, in bounds, whole number of T, every bit pattern valid (RawBlock).
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / sz) })
}

/// Blocks from bytes at any address: borrowed when aligned, copied otherwise.
/// `None` only if the length is not a whole number of blocks.
pub fn blocks_from_bytes<T: RawBlock>(bytes: &[u8]) -> Option<Cow<'_, [T]>> {
    let sz = size_of::<T>();
    if !bytes.len().is_multiple_of(sz) {
        return None;
    }
    if let Some(b) = from_bytes::<T>(bytes) {
        return Some(Cow::Borrowed(b));
    }
    let n = bytes.len() / sz;
    let mut v: Vec<T> = Vec::with_capacity(n);
    // SAFETY: the Vec has capacity for n T = bytes.len() bytes; we fill every byte before
    // set_len, and every bit pattern is a valid T (RawBlock).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
        v.set_len(n);
    }
    Some(Cow::Owned(v))
}

// ---------------------------------------------------------------------------------------------
// Small shared helpers (also used by the other family modules).

/// f16 stored little-endian at `b[off..off+2]`, as f32 (exact).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// f32 stored little-endian at `b[off..off+4]`.
#[inline(always)]
pub(crate) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// ggml `nearest_int`: the 12582912.f (1.5·2^23) magic-number round (ties to even); valid for
/// |x| <= 4194303.
#[inline(always)]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12582912.0f32;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers (ggml `quantize_row_q8_*_ref`).

/// One `block_q8_0` from 32 values (ggml `quantize_row_q8_0_ref`: `roundf` = half away from 0).
pub fn quantize_block_q8_0(x: &[f32]) -> BlockQ8_0 {
    let x = &x[..QK8_0];
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK8_0];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_half_away(v * id).clamp(-128, 127) as i8;
    }
    BlockQ8_0 {
        d: f16::from_f32(d),
        qs,
    }
}

/// `roundf` (half away from zero) without the library call baseline x86-64 makes per element
/// (no SSE4.1 `round`), so block loops vectorize: truncate, then one step away from zero when
/// the dropped fraction is at least 1/2. Exact for finite |y| < 2^23 (every quantized block
/// value); NaN → 0 as `NaN.round() as i8` gives.
#[inline(always)]
fn round_half_away(y: f32) -> i32 {
    let t = y as i32;
    let f = y - t as f32;
    t + i32::from(f >= 0.5) - i32::from(f <= -0.5)
}

/// ggml `quantize_row_q8_0_ref`. `x.len()` must equal `32 * y.len()` (panics otherwise; the
/// checked entry point is [`crate::quantize_row`]).
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_eq!(
        x.len(),
        y.len() * QK8_0,
        "quantize_row_q8_0: length mismatch"
    );
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK8_0)) {
        *b = quantize_block_q8_0(xs);
    }
}

/// One `block_q8_1` (ggml `quantize_row_q8_1_ref`).
pub fn quantize_block_q8_1(x: &[f32]) -> BlockQ8_1 {
    let x = &x[..QK8_0];
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK8_0];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
        sum += *q as i32;
    }
    BlockQ8_1 {
        d: f16::from_f32(d),
        s: f16::from_f32(sum as f32 * d),
        qs,
    }
}

/// ggml `quantize_row_q8_1_ref` (`s = fp16(sum(qs) * d)`).
pub fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    assert_eq!(
        x.len(),
        y.len() * QK8_0,
        "quantize_row_q8_1: length mismatch"
    );
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK8_0)) {
        *b = quantize_block_q8_1(xs);
    }
}

/// One `block_q8_K` (ggml `quantize_row_q8_K_ref`: scale `-127/max` where `max` is the signed
/// value of largest magnitude, `nearest_int`, clamp to 127, `d = 1/iscale`).
pub fn quantize_block_q8_k(x: &[f32]) -> BlockQ8K {
    let x = &x[..QK_K];
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    let mut b = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    if amax == 0.0 {
        return b;
    }
    let iscale = -127.0f32 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = g.iter().map(|&q| q as i16).sum();
    }
    b.d = 1.0 / iscale;
    b
}

/// ggml `quantize_row_q8_K_ref`.
pub fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(
        x.len(),
        y.len() * QK_K,
        "quantize_row_q8_k: length mismatch"
    );
    for (b, xs) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        *b = quantize_block_q8_k(xs);
    }
}

// Byte-level reference quantizers (the kernel-table entries).

pub(crate) fn quantize_bytes_q8_0_ref(x: &[f32], y: &mut [u8]) {
    for (xs, ys) in x.chunks_exact(QK8_0).zip(y.chunks_exact_mut(34)) {
        ys.copy_from_slice(as_bytes(std::slice::from_ref(&quantize_block_q8_0(xs))));
    }
}

pub(crate) fn quantize_bytes_q8_1_ref(x: &[f32], y: &mut [u8]) {
    for (xs, ys) in x.chunks_exact(QK8_0).zip(y.chunks_exact_mut(36)) {
        ys.copy_from_slice(as_bytes(std::slice::from_ref(&quantize_block_q8_1(xs))));
    }
}

pub(crate) fn quantize_bytes_q8_k_ref(x: &[f32], y: &mut [u8]) {
    for (xs, ys) in x.chunks_exact(QK_K).zip(y.chunks_exact_mut(292)) {
        ys.copy_from_slice(as_bytes(std::slice::from_ref(&quantize_block_q8_k(xs))));
    }
}

/// One Q8_0/Q8_1 activation block as llama.cpp's CPU backend quantizes matmul inputs on x86
/// (`quantize_row_q8_0`/`quantize_row_q8_1` in ggml-cpu/arch/x86/quants.c, AVX/AVX2):
/// `d = amax / 127`, but the multiplier is `127 / amax` (not `1 / d`) and rounding is to
/// nearest-even (`_mm256_round_ps`), where the `_ref` quantizers (weights) use `1 / d` and
/// `roundf`. The two disagree on a few values per thousand-odd, each flip moving a Q4_1 dot by
/// up to `d_w · d_x` plus `m_w · d_x` through the sum: not noise, so the matmul inputs follow
/// the x86 kernel. `s = fp16(d · Σq)` as there. Returns `(d, s, qs)`.
#[inline]
fn quantize_act_block(x: &[f32]) -> (f16, f16, [i8; QK8_0]) {
    let x = &x[..QK8_0];
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK8_0];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round_ties_even() as i8;
        sum += *q as i32;
    }
    (f16::from_f32(d), f16::from_f32(d * sum as f32), qs)
}

/// Scalar twin of the Q8_0 activation quantizer ([`quantize_act_block`] semantics).
pub(crate) fn quantize_bytes_q8_0_act_ref(x: &[f32], y: &mut [u8]) {
    for (xs, ys) in x.chunks_exact(QK8_0).zip(y.chunks_exact_mut(34)) {
        let (d, _, qs) = quantize_act_block(xs);
        let b = BlockQ8_0 { d, qs };
        ys.copy_from_slice(as_bytes(std::slice::from_ref(&b)));
    }
}

/// Scalar twin of the Q8_1 activation quantizer ([`quantize_act_block`] semantics).
pub(crate) fn quantize_bytes_q8_1_act_ref(x: &[f32], y: &mut [u8]) {
    for (xs, ys) in x.chunks_exact(QK8_0).zip(y.chunks_exact_mut(36)) {
        let (d, s, qs) = quantize_act_block(xs);
        let b = BlockQ8_1 { d, s, qs };
        ys.copy_from_slice(as_bytes(std::slice::from_ref(&b)));
    }
}

/// Fastest Q8_0 activation quantizer on this CPU; byte-identical to
/// `quantize_bytes_q8_0_act_ref` (llama.cpp's x86 `quantize_row_q8_0`).
pub fn quantize_bytes_q8_0(x: &[f32], y: &mut [u8]) {
    crate::simd::quantize_q8_0(x, y)
}
/// Fastest Q8_1 activation quantizer on this CPU; byte-identical to
/// `quantize_bytes_q8_1_act_ref` (llama.cpp's x86 `quantize_row_q8_1`).
pub fn quantize_bytes_q8_1(x: &[f32], y: &mut [u8]) {
    crate::simd::quantize_q8_1(x, y)
}
/// Fastest Q8_K activation quantizer on this CPU; byte-identical to the reference.
pub fn quantize_bytes_q8_k(x: &[f32], y: &mut [u8]) {
    crate::simd::quantize_q8_k(x, y)
}

// ---------------------------------------------------------------------------------------------
// Dequantize and dot products.

fn dequantize_q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(34).zip(dst.chunks_exact_mut(QK8_0)) {
        let d = f16_at(b, 0);
        for (o, &q) in y.iter_mut().zip(&b[2..34]) {
            *o = q as i8 as f32 * d;
        }
    }
}

fn dequantize_q8_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(36).zip(dst.chunks_exact_mut(QK8_0)) {
        let d = f16_at(b, 0);
        for (o, &q) in y.iter_mut().zip(&b[4..36]) {
            *o = q as i8 as f32 * d;
        }
    }
}

fn dequantize_q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(292).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f32_at(b, 0);
        for (o, &q) in y.iter_mut().zip(&b[4..260]) {
            *o = d * q as i8 as f32;
        }
    }
}

#[inline(always)]
pub(crate) fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as i8 as i32 * y as i8 as i32)
        .sum()
}

/// ggml `ggml_vec_dot_q8_0_q8_0` (generic): per block `sumi * (d_x * d_y)`.
pub(crate) fn vec_dot_q8_0_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / QK8_0;
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(34).zip(a.chunks_exact(34)).take(nb) {
        let sumi = dot_i8(&x[2..34], &y[2..34]);
        sumf += sumi as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sumf
}

/// Q8_1·Q8_1 (ggml defines none; this is the plain `sumi * d_x * d_y`).
pub(crate) fn vec_dot_q8_1_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / QK8_0;
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(36).zip(a.chunks_exact(36)).take(nb) {
        let sumi = dot_i8(&x[4..36], &y[4..36]);
        sumf += sumi as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sumf
}

/// Q8_K·Q8_K (ggml defines none; `sumi * d_x * d_y` per block).
pub(crate) fn vec_dot_q8_k_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(292).zip(a.chunks_exact(292)).take(nb) {
        let sumi = dot_i8(&x[4..260], &y[4..260]);
        sumf += sumi as f32 * (f32_at(x, 0) * f32_at(y, 0));
    }
    sumf
}

fn vec_dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::Q8_0, n, w, a)
}

static Q8_0: TypeKernels = TypeKernels {
    ty: GgmlType::Q8_0,
    vec_dot_type: GgmlType::Q8_0,
    dequantize_row: dequantize_q8_0,
    quantize_row: Some(quantize_bytes_q8_0_ref),
    quantize_row_imatrix: Some(crate::legacy::quantize_q8_0_imatrix),
    vec_dot: vec_dot_q8_0,
    vec_dot_ref: vec_dot_q8_0_ref,
};

static Q8_1: TypeKernels = TypeKernels {
    ty: GgmlType::Q8_1,
    vec_dot_type: GgmlType::Q8_1,
    dequantize_row: dequantize_q8_1,
    quantize_row: Some(quantize_bytes_q8_1_ref),
    quantize_row_imatrix: None,
    vec_dot: vec_dot_q8_1_ref,
    vec_dot_ref: vec_dot_q8_1_ref,
};

static Q8_K: TypeKernels = TypeKernels {
    ty: GgmlType::Q8_K,
    vec_dot_type: GgmlType::Q8_K,
    dequantize_row: dequantize_q8_k,
    quantize_row: Some(quantize_bytes_q8_k_ref),
    quantize_row_imatrix: None,
    vec_dot: vec_dot_q8_k_ref,
    vec_dot_ref: vec_dot_q8_k_ref,
};

/// Q8_0 / Q8_1 / Q8_K kernel entries (reached through `legacy::kernels` / `kquants::kernels`).
pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels> {
    match ty {
        GgmlType::Q8_0 => Some(&Q8_0),
        GgmlType::Q8_1 => Some(&Q8_1),
        GgmlType::Q8_K => Some(&Q8_K),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `round_half_away` equals `f32::round` (roundf) on halfway values of both signs, near
    /// integers, tiny values and NaN.
    #[test]
    fn round_half_away_is_roundf() {
        let mut xs: Vec<f32> = (-2600..=2600).map(|i| i as f32 * 0.05).collect();
        for k in -128..=127 {
            let k = k as f32;
            xs.extend([
                k + 0.5,
                k - 0.5,
                k + 0.49999997,
                k - 0.49999997,
                k + 0.50000006,
            ]);
        }
        xs.extend([1e-7, -1e-7, 1e-40, 127.00001, -127.00001, f32::NAN]);
        // (±inf never reaches it: an inf in a block makes `id` 0, so `v * id` is NaN or 0.)
        for x in xs {
            assert_eq!(
                round_half_away(x).clamp(-128, 127) as i8,
                x.round() as i8,
                "{x}"
            );
        }
    }

    // Oracle: hand-computed ggml semantics (roundf half away from zero; nearest_int ties-to-even).
    #[test]
    fn rounding_helpers() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-127.4), -127);
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = 0.5;
        x[2] = -1.5;
        let b = quantize_block_q8_0(&x);
        assert_eq!(b.d.to_f32(), 1.0);
        assert_eq!(&b.qs[..3], &[127, 1, -2]);
    }

    // Oracle: byte round-trip must be the identity; a misaligned view must be refused by
    // `from_bytes` and copied by `blocks_from_bytes`; ragged lengths are refused.
    #[test]
    fn byte_views() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 30.0).collect();
        let mut y = [BlockQ8_0 {
            d: f16::ZERO,
            qs: [0; 32],
        }; 2];
        quantize_row_q8_0(&x, &mut y);
        let bytes = as_bytes(&y).to_vec();
        assert_eq!(bytes.len(), 68);
        // A u16 buffer is 2-aligned, so byte offset 1 inside it is misaligned for BlockQ8_0.
        let mut store = vec![0u16; 40];
        let mut store2 = vec![0u16; 40];
        let buf = as_bytes_mut_u16(&mut store);
        buf[1..69].copy_from_slice(&bytes);
        let buf2 = as_bytes_mut_u16(&mut store2);
        buf2[2..70].copy_from_slice(&bytes);
        assert!(from_bytes::<BlockQ8_0>(&buf[1..69]).is_none());
        assert_eq!(from_bytes::<BlockQ8_0>(&buf2[2..70]).unwrap(), &y[..]);
        let back = blocks_from_bytes::<BlockQ8_0>(&buf[1..69]).unwrap();
        assert!(matches!(back, Cow::Owned(_)));
        assert_eq!(&back[..], &y[..]);
        assert!(matches!(
            blocks_from_bytes::<BlockQ8_0>(&buf2[2..70]).unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(blocks_from_bytes::<BlockQ8_0>(&buf[1..68]).is_none());
        assert!(from_bytes::<BlockQ8_0>(&buf2[2..69]).is_none());
    }

    fn as_bytes_mut_u16(v: &mut [u16]) -> &mut [u8] {
        // SAFETY: u16 has no padding and any byte pattern is a valid u16.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 2) }
    }
}
