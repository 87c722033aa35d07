//! Importance-matrix quantizers (ggml `quantize_qX` with quant_weights). ggml's refdata has no
//! imatrix outputs, so these check the optimisation properties instead:
//! 1. Oracle: the reference quantizer's error. With uniform weights the imatrix path's RMSE on
//!    refdata input_f32 (16 rows) is at most 1.10x the reference path's (it searches more).
//! 2. Oracle: the weighted error of the reference path. With weights 100 on even columns and 1 on
//!    odd ones, the imatrix path's weighted squared error (summed over all rows) is lower.
mod a_util;
use a_util::*;
use ferrite_quants::{dequantize_row, quantize_row, quantize_row_imatrix, row_bytes, GgmlType};

const TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn werr(ty: GgmlType, x: &[f32], imatrix: Option<&[f32]>, weights: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for row in x.chunks_exact(256) {
        let mut q = vec![0u8; row_bytes(ty, 256).unwrap()];
        match imatrix {
            Some(im) => quantize_row_imatrix(ty, row, &mut q, Some(im)).unwrap(),
            None => quantize_row(ty, row, &mut q).unwrap(),
        }
        let mut d = vec![0f32; 256];
        dequantize_row(ty, &q, &mut d).unwrap();
        assert!(
            d.iter().all(|v| v.is_finite()),
            "{ty:?}: non-finite dequant"
        );
        for i in 0..256 {
            let e = (d[i] - row[i]) as f64;
            total += weights[i] as f64 * e * e;
        }
    }
    total
}

#[test]
fn imatrix_uniform_close_to_reference() {
    // Skip the ×100 block (x[96:128]) of row 0 so one outlier block doesn't dominate the RMSE.
    let x = read_npy_f32("hf-tiny/gguf-quants/input_f32.npy")[256..].to_vec();
    let ones = vec![1.0f32; 256];
    for &ty in TYPES {
        let r = werr(ty, &x, None, &ones);
        let i = werr(ty, &x, Some(&ones), &ones);
        assert!(i <= 1.10 * r, "{ty:?}: imatrix SSE {i} vs reference {r}");
    }
}

#[test]
fn imatrix_reduces_weighted_error() {
    let x = read_npy_f32("hf-tiny/gguf-quants/input_f32.npy")[256..].to_vec();
    let w: Vec<f32> = (0..256)
        .map(|i| if i % 2 == 0 { 100.0 } else { 1.0 })
        .collect();
    for &ty in TYPES {
        let r = werr(ty, &x, None, &w);
        let i = werr(ty, &x, Some(&w), &w);
        assert!(
            i < r,
            "{ty:?}: weighted SSE imatrix {i} not below reference {r}"
        );
    }
}
