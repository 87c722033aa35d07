//! Float types: F32, F16, BF16 (conversion "quantizers" and float dot products).
//!
//! ggml pairs each with itself for `vec_dot` (vec_dot_type F32→F32, F16→F16, BF16→BF16). The
//! scalar references follow ggml's generic `ggml_vec_dot_{f32,f16,bf16}`: products in f32,
//! accumulated in f64 (`ggml_float`).
use crate::{GgmlType, TypeKernels};
use half::f16;

/// ggml `GGML_FP32_TO_BF16` (`ggml_compute_fp32_to_bf16`): round to nearest even; NaN keeps its
/// top bits and is forced quiet (`| 64`).
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u.wrapping_add(0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// bf16 bits to f32 (exact).
#[inline]
pub fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

fn deq_f32(src: &[u8], dst: &mut [f32]) {
    for (o, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}
fn q_f32(src: &[f32], dst: &mut [u8]) {
    for (x, c) in src.iter().zip(dst.chunks_exact_mut(4)) {
        c.copy_from_slice(&x.to_le_bytes());
    }
}
fn deq_f16(src: &[u8], dst: &mut [f32]) {
    for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
    }
}
fn q_f16(src: &[f32], dst: &mut [u8]) {
    for (x, c) in src.iter().zip(dst.chunks_exact_mut(2)) {
        c.copy_from_slice(&f16::from_f32(*x).to_bits().to_le_bytes());
    }
}
fn deq_bf16(src: &[u8], dst: &mut [f32]) {
    for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *o = bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
    }
}
fn q_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, c) in src.iter().zip(dst.chunks_exact_mut(2)) {
        c.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
    }
}
fn qi_f32(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    q_f32(src, dst)
}
fn qi_f16(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    q_f16(src, dst)
}
fn qi_bf16(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    q_bf16(src, dst)
}

pub(crate) fn dot_f32_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0.0f64;
    for (x, y) in w.chunks_exact(4).zip(a.chunks_exact(4)).take(n) {
        let x = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
        let y = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        s += (x * y) as f64;
    }
    s as f32
}
pub(crate) fn dot_f16_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0.0f64;
    for (x, y) in w.chunks_exact(2).zip(a.chunks_exact(2)).take(n) {
        let x = f16::from_bits(u16::from_le_bytes([x[0], x[1]])).to_f32();
        let y = f16::from_bits(u16::from_le_bytes([y[0], y[1]])).to_f32();
        s += (x * y) as f64;
    }
    s as f32
}
pub(crate) fn dot_bf16_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut s = 0.0f64;
    for (x, y) in w.chunks_exact(2).zip(a.chunks_exact(2)).take(n) {
        let x = bf16_bits_to_f32(u16::from_le_bytes([x[0], x[1]]));
        let y = bf16_bits_to_f32(u16::from_le_bytes([y[0], y[1]]));
        s += (x * y) as f64;
    }
    s as f32
}

fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::F32, n, w, a)
}
fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::F16, n, w, a)
}
fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    crate::simd::vec_dot(GgmlType::BF16, n, w, a)
}

static F32: TypeKernels = TypeKernels {
    ty: GgmlType::F32,
    vec_dot_type: GgmlType::F32,
    dequantize_row: deq_f32,
    quantize_row: Some(q_f32),
    quantize_row_imatrix: Some(qi_f32),
    vec_dot: dot_f32,
    vec_dot_ref: dot_f32_ref,
};
static F16: TypeKernels = TypeKernels {
    ty: GgmlType::F16,
    vec_dot_type: GgmlType::F16,
    dequantize_row: deq_f16,
    quantize_row: Some(q_f16),
    quantize_row_imatrix: Some(qi_f16),
    vec_dot: dot_f16,
    vec_dot_ref: dot_f16_ref,
};
static BF16: TypeKernels = TypeKernels {
    ty: GgmlType::BF16,
    vec_dot_type: GgmlType::BF16,
    dequantize_row: deq_bf16,
    quantize_row: Some(q_bf16),
    quantize_row_imatrix: Some(qi_bf16),
    vec_dot: dot_bf16,
    vec_dot_ref: dot_bf16_ref,
};

pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels> {
    match ty {
        GgmlType::F32 => Some(&F32),
        GgmlType::F16 => Some(&F16),
        GgmlType::BF16 => Some(&BF16),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Oracle: bf16 rounding rules of ggml_compute_fp32_to_bf16 (RNE; NaN quiet), by hand.
    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is exactly half way between bf16 1.0 and 1.0078125: ties to even -> 1.0.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80); // rounds up to inf, like ggml
    }
}
