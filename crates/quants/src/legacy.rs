//! Legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1 (Q8_0/Q8_1 tables live in `q8.rs`).
//!
//! Block layouts follow ggml-common.h; every algorithm mirrors ggml-quants.c
//! (`quantize_row_*_ref`, `quantize_row_*_impl`, `dequantize_row_*`) and the generic
//! `ggml_vec_dot_*` of ggml-cpu/quants.c, in the same float operation order (ggml-base is built
//! without FMA contraction, so neither do we contract).
#![allow(clippy::needless_range_loop)] // loops mirror ggml's C for auditability
use crate::q8::{as_bytes, f16_at, RawBlock};
use crate::{GgmlType, TypeKernels};
use half::f16;
use std::mem::size_of;

pub const QK: usize = 32;

/// ggml `block_q4_0`: `(q - 8) * d`, low nibbles hold elements 0..16, high nibbles 16..32.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}
/// ggml `block_q4_1`: `q * d + m`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}
/// ggml `block_q5_0`: `(q - 16) * d`; bit 4 of element j is bit j of `qh` (little-endian u32).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
/// ggml `block_q5_1`: `q * d + m`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);
// SAFETY: repr(C), f16 + byte arrays, sizes asserted equal to the field sum (no padding).
unsafe impl RawBlock for BlockQ4_0 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ4_1 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ5_0 {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ5_1 {}

fn put<T: RawBlock>(dst: &mut [u8], b: T) {
    dst.copy_from_slice(as_bytes(std::slice::from_ref(&b)));
}

/// (signed value of largest magnitude, its magnitude), first occurrence wins (ggml's `amax < |v|`).
#[inline]
fn abs_max(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// C's `(int8_t)(float)` for the in-range values ggml produces (truncation toward zero).
#[inline(always)]
fn trunc_i8(v: f32) -> i32 {
    v as i8 as i32
}

// ----------------------------------------------------------------------------- reference quantizers

/// ggml `quantize_row_q4_0_ref` for one block.
pub fn quantize_block_q4_0(x: &[f32]) -> BlockQ4_0 {
    let max = abs_max(&x[..QK]);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let x0 = x[j] * id;
        let x1 = x[16 + j] * id;
        let xi0 = trunc_i8(x0 + 8.5).min(15) as u8;
        let xi1 = trunc_i8(x1 + 8.5).min(15) as u8;
        qs[j] = xi0 | (xi1 << 4);
    }
    BlockQ4_0 {
        d: f16::from_f32(d),
        qs,
    }
}

/// ggml `quantize_row_q4_1_ref` for one block.
pub fn quantize_block_q4_1(x: &[f32]) -> BlockQ4_1 {
    let (min, max) = min_max(&x[..QK]);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let xi0 = trunc_i8(x0 + 0.5).min(15) as u8;
        let xi1 = trunc_i8(x1 + 0.5).min(15) as u8;
        qs[j] = xi0 | (xi1 << 4);
    }
    BlockQ4_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qs,
    }
}

fn pack5(l: impl Fn(usize) -> u8) -> ([u8; 4], [u8; 16]) {
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let (xi0, xi1) = (l(j), l(j + 16));
        qs[j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= (((xi0 & 0x10) >> 4) as u32) << j;
        qh |= (((xi1 & 0x10) >> 4) as u32) << (j + 16);
    }
    (qh.to_le_bytes(), qs)
}

/// ggml `quantize_row_q5_0_ref` for one block.
pub fn quantize_block_q5_0(x: &[f32]) -> BlockQ5_0 {
    let max = abs_max(&x[..QK]);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (qh, qs) = pack5(|j| trunc_i8(x[j] * id + 16.5).min(31) as u8);
    BlockQ5_0 {
        d: f16::from_f32(d),
        qh,
        qs,
    }
}

/// ggml `quantize_row_q5_1_ref` for one block.
pub fn quantize_block_q5_1(x: &[f32]) -> BlockQ5_1 {
    let (min, max) = min_max(&x[..QK]);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // C: (uint8_t)(x0 + 0.5f), no clamp.
    let (qh, qs) = pack5(|j| ((x[j] - min) * id + 0.5) as u8);
    BlockQ5_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qh,
        qs,
    }
}

macro_rules! row_quantizer {
    ($name:ident, $block:ident, $bytes:expr) => {
        fn $name(src: &[f32], dst: &mut [u8]) {
            for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut($bytes)) {
                put(y, $block(x));
            }
        }
    };
}
row_quantizer!(quantize_row_q4_0_ref, quantize_block_q4_0, 18);
row_quantizer!(quantize_row_q4_1_ref, quantize_block_q4_1, 20);
row_quantizer!(quantize_row_q5_0_ref, quantize_block_q5_0, 22);
row_quantizer!(quantize_row_q5_1_ref, quantize_block_q5_1, 24);

// ----------------------------------------------------------------------------- imatrix quantizers

/// Per-element weights `qw[j] * sqrt(sigma2 + x[j]^2)` with `sigma2` = mean of x^2 over the row.
fn row_sigma2(x: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    sum_x2 / x.len() as f32
}

fn block_weights(xb: &[f32], qw: &[f32], sigma2: f32) -> [f32; QK] {
    let mut w = [0.0f32; QK];
    for j in 0..QK {
        w[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
    }
    w
}

/// ggml `quantize_q4_0` (`quantize_row_q4_0_impl`).
pub(crate) fn quantize_q4_0(src: &[f32], dst: &mut [u8], qw: Option<&[f32]>) {
    let Some(qw) = qw else {
        return quantize_row_q4_0_ref(src, dst);
    };
    let sigma2 = row_sigma2(src);
    for ((xb, y), q) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(18))
        .zip(qw.chunks_exact(QK))
    {
        let w = block_weights(xb, q, sigma2);
        let mut l = [0i8; QK];
        let d = crate::kquants::make_qx_quants(QK, 8, xb, &mut l, 1, Some(&w));
        let mut qs = [0u8; 16];
        for j in 0..16 {
            qs[j] = l[j] as u8 | ((l[j + 16] as u8) << 4);
        }
        put(
            y,
            BlockQ4_0 {
                d: f16::from_f32(d),
                qs,
            },
        );
    }
}

/// ggml `quantize_q4_1` (`quantize_row_q4_1_impl`).
pub(crate) fn quantize_q4_1(src: &[f32], dst: &mut [u8], qw: Option<&[f32]>) {
    let Some(qw) = qw else {
        return quantize_row_q4_1_ref(src, dst);
    };
    let sigma2 = row_sigma2(src);
    for ((xb, y), q) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(20))
        .zip(qw.chunks_exact(QK))
    {
        let w = block_weights(xb, q, sigma2);
        let mut l = [0u8; QK];
        let (d, min) =
            crate::kquants::make_qkx3_quants(QK, 15, xb, Some(&w), &mut l, -0.9, 0.05, 36, false);
        let mut qs = [0u8; 16];
        for j in 0..16 {
            qs[j] = l[j] | (l[j + 16] << 4);
        }
        put(
            y,
            BlockQ4_1 {
                d: f16::from_f32(d),
                m: f16::from_f32(-min),
                qs,
            },
        );
    }
}

/// ggml `quantize_q5_0` (`quantize_row_q5_0_impl`).
pub(crate) fn quantize_q5_0(src: &[f32], dst: &mut [u8], qw: Option<&[f32]>) {
    let Some(qw) = qw else {
        return quantize_row_q5_0_ref(src, dst);
    };
    let sigma2 = row_sigma2(src);
    for ((xb, y), q) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(22))
        .zip(qw.chunks_exact(QK))
    {
        let w = block_weights(xb, q, sigma2);
        let mut l = [0i8; QK];
        let d = crate::kquants::make_qx_quants(QK, 16, xb, &mut l, 1, Some(&w));
        let (qh, qs) = pack5(|j| l[j] as u8);
        put(
            y,
            BlockQ5_0 {
                d: f16::from_f32(d),
                qh,
                qs,
            },
        );
    }
}

/// ggml `quantize_q5_1` (`quantize_row_q5_1_impl`).
pub(crate) fn quantize_q5_1(src: &[f32], dst: &mut [u8], qw: Option<&[f32]>) {
    let Some(qw) = qw else {
        return quantize_row_q5_1_ref(src, dst);
    };
    let sigma2 = row_sigma2(src);
    for ((xb, y), q) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(24))
        .zip(qw.chunks_exact(QK))
    {
        let w = block_weights(xb, q, sigma2);
        let mut l = [0u8; QK];
        let (d, min) =
            crate::kquants::make_qkx3_quants(QK, 31, xb, Some(&w), &mut l, -0.9, 0.05, 36, false);
        let (qh, qs) = pack5(|j| l[j]);
        put(
            y,
            BlockQ5_1 {
                d: f16::from_f32(d),
                m: f16::from_f32(-min),
                qh,
                qs,
            },
        );
    }
}

/// ggml `quantize_q8_0`: `quant_weights` is unused, always the reference path.
pub(crate) fn quantize_q8_0_imatrix(x: &[f32], y: &mut [u8], _imatrix: Option<&[f32]>) {
    crate::q8::quantize_bytes_q8_0_ref(x, y)
}

// ----------------------------------------------------------------------------- dequantize

fn dequantize_q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for j in 0..16 {
            let q = b[2 + j];
            y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

fn dequantize_q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        for j in 0..16 {
            let q = b[4 + j];
            y[j] = (q & 0x0f) as f32 * d + m;
            y[j + 16] = (q >> 4) as f32 * d + m;
        }
    }
}

#[inline(always)]
fn q5_vals(qh: u32, qs: &[u8], j: usize) -> (i32, i32) {
    let xh0 = (((qh >> j) << 4) & 0x10) as u8;
    let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
    (((qs[j] & 0x0f) | xh0) as i32, ((qs[j] >> 4) | xh1) as i32)
}

fn dequantize_q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for j in 0..16 {
            let (x0, x1) = q5_vals(qh, &b[6..22], j);
            y[j] = (x0 - 16) as f32 * d;
            y[j + 16] = (x1 - 16) as f32 * d;
        }
    }
}

fn dequantize_q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        for j in 0..16 {
            let (x0, x1) = q5_vals(qh, &b[8..24], j);
            y[j] = x0 as f32 * d + m;
            y[j + 16] = x1 as f32 * d + m;
        }
    }
}

// ----------------------------------------------------------------------------- scalar vec_dot

/// ggml `ggml_vec_dot_q4_0_q8_0` (generic).
pub(crate) fn vec_dot_q4_0_q8_0_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(18).zip(a.chunks_exact(34)).take(n / QK) {
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..16 {
            let v0 = (x[2 + j] & 0x0f) as i32 - 8;
            let v1 = (x[2 + j] >> 4) as i32 - 8;
            s0 += v0 * y[2 + j] as i8 as i32;
            s1 += v1 * y[2 + j + 16] as i8 as i32;
        }
        sumf += (s0 + s1) as f32 * f16_at(x, 0) * f16_at(y, 0);
    }
    sumf
}

/// ggml `ggml_vec_dot_q4_1_q8_1` (generic).
pub(crate) fn vec_dot_q4_1_q8_1_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(20).zip(a.chunks_exact(36)).take(n / QK) {
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..16 {
            s0 += (x[4 + j] & 0x0f) as i32 * y[4 + j] as i8 as i32;
            s1 += (x[4 + j] >> 4) as i32 * y[4 + j + 16] as i8 as i32;
        }
        sumf += (f16_at(x, 0) * f16_at(y, 0)) * (s0 + s1) as f32 + f16_at(x, 2) * f16_at(y, 2);
    }
    sumf
}

/// ggml `ggml_vec_dot_q5_0_q8_0` (generic).
pub(crate) fn vec_dot_q5_0_q8_0_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(22).zip(a.chunks_exact(34)).take(n / QK) {
        let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..16 {
            let (x0, x1) = q5_vals(qh, &x[6..22], j);
            s0 += (x0 - 16) * y[2 + j] as i8 as i32;
            s1 += (x1 - 16) * y[2 + j + 16] as i8 as i32;
        }
        sumf += (s0 + s1) as f32 * f16_at(x, 0) * f16_at(y, 0);
    }
    sumf
}

/// ggml `ggml_vec_dot_q5_1_q8_1` (generic).
pub(crate) fn vec_dot_q5_1_q8_1_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(24).zip(a.chunks_exact(36)).take(n / QK) {
        let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..16 {
            let (x0, x1) = q5_vals(qh, &x[8..24], j);
            s0 += x0 * y[4 + j] as i8 as i32;
            s1 += x1 * y[4 + j + 16] as i8 as i32;
        }
        sumf += (f16_at(x, 0) * f16_at(y, 0)) * (s0 + s1) as f32 + f16_at(x, 2) * f16_at(y, 2);
    }
    sumf
}

macro_rules! dispatched {
    ($name:ident, $ty:expr) => {
        fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            crate::simd::vec_dot($ty, n, w, a)
        }
    };
}
dispatched!(dot_q4_0, GgmlType::Q4_0);
dispatched!(dot_q4_1, GgmlType::Q4_1);
dispatched!(dot_q5_0, GgmlType::Q5_0);
dispatched!(dot_q5_1, GgmlType::Q5_1);

static Q4_0: TypeKernels = TypeKernels {
    ty: GgmlType::Q4_0,
    vec_dot_type: GgmlType::Q8_0,
    dequantize_row: dequantize_q4_0,
    quantize_row: Some(quantize_row_q4_0_ref),
    quantize_row_imatrix: Some(quantize_q4_0),
    vec_dot: dot_q4_0,
    vec_dot_ref: vec_dot_q4_0_q8_0_ref,
};
static Q4_1: TypeKernels = TypeKernels {
    ty: GgmlType::Q4_1,
    vec_dot_type: GgmlType::Q8_1,
    dequantize_row: dequantize_q4_1,
    quantize_row: Some(quantize_row_q4_1_ref),
    quantize_row_imatrix: Some(quantize_q4_1),
    vec_dot: dot_q4_1,
    vec_dot_ref: vec_dot_q4_1_q8_1_ref,
};
static Q5_0: TypeKernels = TypeKernels {
    ty: GgmlType::Q5_0,
    vec_dot_type: GgmlType::Q8_0,
    dequantize_row: dequantize_q5_0,
    quantize_row: Some(quantize_row_q5_0_ref),
    quantize_row_imatrix: Some(quantize_q5_0),
    vec_dot: dot_q5_0,
    vec_dot_ref: vec_dot_q5_0_q8_0_ref,
};
static Q5_1: TypeKernels = TypeKernels {
    ty: GgmlType::Q5_1,
    vec_dot_type: GgmlType::Q8_1,
    dequantize_row: dequantize_q5_1,
    quantize_row: Some(quantize_row_q5_1_ref),
    quantize_row_imatrix: Some(quantize_q5_1),
    vec_dot: dot_q5_1,
    vec_dot_ref: vec_dot_q5_1_q8_1_ref,
};

pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels> {
    match ty {
        GgmlType::Q4_0 => Some(&Q4_0),
        GgmlType::Q4_1 => Some(&Q4_1),
        GgmlType::Q5_0 => Some(&Q5_0),
        GgmlType::Q5_1 => Some(&Q5_1),
        GgmlType::Q8_0 | GgmlType::Q8_1 => crate::q8::kernels(ty),
        _ => None,
    }
}
