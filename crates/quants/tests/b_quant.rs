//! Quantizer properties for the IQ types beyond the ggml byte oracles in `b_refdata.rs`:
//! the importance-matrix paths (IQ2_XXS, IQ2_XS, IQ1_S need one in ggml; IQ1_M, IQ2_S, IQ3_*,
//! IQ4_* accept one). There are no ggml bytes for these in the refdata, so the oracles are:
//! - round trip: `dequantize(quantize(x))` against `x` for N(0,1) data
//!   (`ggml-quants/act_f32.npy`), relative RMSE below a per-type bound (ggml's typical
//!   errors for these bit rates, with margin; a broken grid search or scale blows far past it);
//! - `imatrix = None` ≡ an all-ones imatrix for the types ggml requires one for (documented
//!   contract of this crate), byte for byte;
//! - importance shifts error: weighting half the columns ×100 must lower their error.

mod b_util;
use b_util::*;
use ferrite_quants::GgmlType;

fn data() -> Vec<f32> {
    read_npy_f32("ggml-quants/act_f32.npy")
}

fn quant(ty: GgmlType, x: &[f32], w: Option<&[f32]>) -> Vec<u8> {
    let mut q = vec![0u8; ferrite_quants::row_bytes(ty, x.len()).unwrap()];
    ferrite_quants::quantize_row_imatrix(ty, x, &mut q, w).unwrap();
    q
}

fn rel_rmse(a: &[f32], b: &[f32], w: Option<&[f32]>) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for i in 0..a.len() {
        let wi = w.map_or(1.0, |w| w[i] as f64);
        num += wi * (a[i] as f64 - b[i] as f64).powi(2);
        den += wi * (b[i] as f64).powi(2);
    }
    (num / den).sqrt()
}

#[test]
fn imatrix_round_trip_error_is_bounded() {
    let x = data();
    let ones = vec![1.0f32; x.len()];
    // (type, bound on relative RMSE with a unit imatrix)
    for (ty, bound) in [
        // measured here: 0.484, 0.452, 0.338, 0.296, 0.243, 0.181, 0.137, 0.075, 0.075
        (GgmlType::IQ1_S, 0.55),
        (GgmlType::IQ1_M, 0.52),
        (GgmlType::IQ2_XXS, 0.39),
        (GgmlType::IQ2_XS, 0.34),
        (GgmlType::IQ2_S, 0.28),
        (GgmlType::IQ3_XXS, 0.21),
        (GgmlType::IQ3_S, 0.16),
        (GgmlType::IQ4_XS, 0.087),
        (GgmlType::IQ4_NL, 0.087),
    ] {
        let q = quant(ty, &x, Some(&ones));
        let y = dequantize_all(ty, &q);
        let e = rel_rmse(&y, &x, None);
        assert!(e < bound, "{ty}: relative RMSE {e:.4} >= {bound}");
        // The quantizer is a function of its input.
        assert_eq!(q, quant(ty, &x, Some(&ones)), "{ty}: not deterministic");
    }
}

#[test]
fn missing_imatrix_means_unit_importance() {
    let x = data();
    let ones = vec![1.0f32; x.len()];
    for ty in [GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S] {
        assert!(
            ferrite_quants::kernels(ty).unwrap().quantize_row.is_none(),
            "{ty}: ggml needs an imatrix"
        );
        let a = quant(ty, &x, None);
        let b = quant(ty, &x, Some(&ones));
        assert_eq!(a, b, "{ty}: None differs from an all-ones imatrix");
        let mut c = vec![0u8; a.len()];
        ferrite_quants::quantize_row(ty, &x, &mut c).unwrap();
        assert_eq!(
            a, c,
            "{ty}: quantize_row differs from quantize_row_imatrix(None)"
        );
    }
}

#[test]
fn importance_lowers_error_where_it_is_high() {
    let x = data();
    // Every other 8-column group gets 100x importance.
    let w: Vec<f32> = (0..x.len())
        .map(|i| if (i / 8) % 2 == 0 { 100.0 } else { 1.0 })
        .collect();
    let only_hi: Vec<f32> = w.iter().map(|&v| if v > 1.0 { 1.0 } else { 0.0 }).collect();
    let ones = vec![1.0f32; x.len()];
    for ty in [
        GgmlType::IQ1_S,
        GgmlType::IQ1_M,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ2_S,
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
        GgmlType::IQ4_XS,
        GgmlType::IQ4_NL,
    ] {
        let e_flat = rel_rmse(
            &dequantize_all(ty, &quant(ty, &x, Some(&ones))),
            &x,
            Some(&only_hi),
        );
        let e_w = rel_rmse(
            &dequantize_all(ty, &quant(ty, &x, Some(&w))),
            &x,
            Some(&only_hi),
        );
        assert!(
            e_w < e_flat,
            "{ty}: weighted error {e_w:.4} not below unweighted {e_flat:.4}"
        );
    }
}
