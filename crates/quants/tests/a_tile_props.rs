//! Property tests for the GEMM tile entry `vec_dot_tile` (AVX-512 micro-kernels where the CPU
//! has them, the column-by-column path otherwise) against its scalar twin `vec_dot_tile_ref`.
//!
//! Oracle: `vec_dot_tile_ref` (= `TypeKernels::vec_dot_ref` per pair).
//! Tolerance: as tests/a_simd_props.rs, per (row, column): |tile - ref| <= 1e-4 * M + 1e-30,
//! M = Σ_i |w_i · a_i| over the dequantized operands (f64). Integer partial sums are exact; only
//! the f32 accumulation order differs.
mod a_util;
use a_util::{f16_fields, Rng};
use ferrite_quants::simd::{has_tile_kernel, TILE_MIN_COLS};
use ferrite_quants::{
    dequantize_row, kernels, quantize_row, row_bytes, vec_dot_rows, vec_dot_tile, vec_dot_tile_ref,
    GgmlType,
};
use proptest::prelude::*;

const TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::F16,
];

fn normal_vec(rng: &mut Rng, n: usize, exp: i32) -> Vec<f32> {
    let s = 2f32.powi(exp);
    (0..n).map(|_| rng.normal() * s).collect()
}

fn dequant(ty: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut v = vec![0f32; n];
    dequantize_row(ty, b, &mut v).unwrap();
    v
}

/// Compare the tile with its twin for `nrows` weight rows and `ncols` activation rows.
#[allow(clippy::too_many_arguments)]
fn check_tile(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    nrows: usize,
    a: &[u8],
    ncols: usize,
    stride_pad: usize,
) -> Result<(), TestCaseError> {
    let k = kernels(ty).unwrap();
    let (rb, arb) = (
        row_bytes(ty, n).unwrap(),
        row_bytes(k.vec_dot_type, n).unwrap(),
    );
    let stride = nrows + stride_pad;
    let len = (ncols - 1) * stride + nrows;
    let mut want = vec![f32::NAN; len];
    vec_dot_tile_ref(ty, n, w, nrows, a, ncols, &mut want, stride).unwrap();
    let mut got = vec![f32::NAN; len];
    vec_dot_tile(ty, n, w, nrows, a, ncols, &mut got, stride).unwrap();
    let wd: Vec<Vec<f32>> = (0..nrows)
        .map(|r| dequant(ty, &w[r * rb..(r + 1) * rb], n))
        .collect();
    for c in 0..ncols {
        let ad = dequant(k.vec_dot_type, &a[c * arb..(c + 1) * arb], n);
        for r in 0..nrows {
            let mag: f64 = wd[r]
                .iter()
                .zip(&ad)
                .map(|(x, y)| (*x as f64 * *y as f64).abs())
                .sum();
            let tol = 1e-4 * mag + 1e-30;
            let (g, e) = (got[c * stride + r] as f64, want[c * stride + r] as f64);
            prop_assert!(
                (g - e).abs() <= tol,
                "{:?} n={} rows={} cols={} [r{} c{}]: tile {} vs ref {} (tol {})",
                ty,
                n,
                nrows,
                ncols,
                r,
                c,
                g,
                e,
                tol
            );
        }
    }
    // Untouched padding between output rows stays untouched.
    for c in 0..ncols.saturating_sub(1) {
        for p in nrows..stride {
            prop_assert!(got[c * stride + p].is_nan(), "{:?}: padding written", ty);
        }
    }
    Ok(())
}

fn quant_rows(rng: &mut Rng, ty: GgmlType, n: usize, rows: usize, exp: i32) -> Vec<u8> {
    let rb = row_bytes(ty, n).unwrap();
    let mut w = vec![0u8; rb * rows];
    for r in 0..rows {
        let x = normal_vec(rng, n, exp);
        quantize_row(ty, &x, &mut w[r * rb..(r + 1) * rb]).unwrap();
    }
    w
}

fn acts(rng: &mut Rng, ty: GgmlType, n: usize, cols: usize, exp: i32) -> Vec<u8> {
    let vt = kernels(ty).unwrap().vec_dot_type;
    quant_rows(rng, vt, n, cols, exp)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Quantized random weights; row counts hitting the 8-row groups, the 4-row group and single
    /// rows; column counts below and above the micro-kernel threshold, odd and even.
    #[test]
    fn tile_matches_ref_quantized(seed in 1u64.., nrows in 1usize..20,
                                  ncols in prop::sample::select(vec![1usize, 2, 3, TILE_MIN_COLS, TILE_MIN_COLS + 1, 37]),
                                  nsb in 1usize..4, exp in -12i32..8, aexp in -8i32..8, pad in 0usize..3) {
        let mut rng = Rng(seed);
        for &ty in TYPES {
            // Multiples of 256 fit every type; n = 256·nsb (+32 for legacy types: odd block
            // count / not a multiple of 64 exercises the fallback path too).
            for n in [256 * nsb, 256 * nsb + 32] {
                if row_bytes(ty, n).is_err() || row_bytes(kernels(ty).unwrap().vec_dot_type, n).is_err() {
                    continue;
                }
                let w = quant_rows(&mut rng, ty, n, nrows, exp);
                let a = acts(&mut rng, ty, n, ncols, aexp);
                check_tile(ty, n, &w, nrows, &a, ncols, pad)?;
            }
        }
    }

    /// Random weight bytes (every nibble / bit / scale pattern) with finite f16 scales from
    /// subnormal to 2^15.
    #[test]
    fn tile_matches_ref_random_bytes(seed in 1u64.., nrows in 1usize..12, nsb in 1usize..3,
                                     dexp in prop::sample::select(vec![-24i32, -14, -8, 0, 4, 10, 15])) {
        let mut rng = Rng(seed);
        let ncols = TILE_MIN_COLS + 3;
        for &ty in TYPES.iter().filter(|t| !f16_fields(**t).is_empty()) {
            let n = 256 * nsb;
            let mut w: Vec<u8> = (0..row_bytes(ty, n).unwrap() * nrows).map(|_| rng.next_u64() as u8).collect();
            for b in w.chunks_exact_mut(ty.type_size()) {
                for &off in f16_fields(ty) {
                    let v = half::f16::from_f32(2f32.powi(dexp) * (1.0 + (rng.next_u64() % 1000) as f32 / 1000.0));
                    b[off..off + 2].copy_from_slice(&v.to_bits().to_le_bytes());
                }
            }
            let a = acts(&mut rng, ty, n, ncols, 0);
            check_tile(ty, n, &w, nrows, &a, ncols, 1)?;
        }
    }
}

/// Batch invariance: a (row, column) product is bit-identical whether the GEMM tile, the
/// 4-row kernel or the single-row kernel computes it, so a token's matmul output does not
/// depend on how many tokens share the batch. Oracle: the single-row `vec_dot`; tolerance 0.
fn check_paths_bitwise(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    nrows: usize,
    a: &[u8],
    ncols: usize,
) -> Result<(), TestCaseError> {
    let k = kernels(ty).unwrap();
    let (rb, arb) = (
        row_bytes(ty, n).unwrap(),
        row_bytes(k.vec_dot_type, n).unwrap(),
    );
    let mut tile = vec![0f32; ncols * nrows];
    vec_dot_tile(ty, n, w, nrows, a, ncols, &mut tile, nrows).unwrap();
    for c in 0..ncols {
        let act = &a[c * arb..(c + 1) * arb];
        let mut rows = vec![0f32; nrows];
        vec_dot_rows(ty, n, w, act, &mut rows).unwrap();
        for r in 0..nrows {
            let one = (k.vec_dot)(n, &w[r * rb..(r + 1) * rb], act);
            let t = tile[c * nrows + r];
            prop_assert!(
                one.to_bits() == rows[r].to_bits() && one.to_bits() == t.to_bits(),
                "{:?} n={} rows={} cols={} [r{} c{}]: single {} rows {} tile {}",
                ty,
                n,
                nrows,
                ncols,
                r,
                c,
                one,
                rows[r],
                t
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// Row counts hitting every row grouping of the tiles and the 4-row kernels; n with block
    /// counts ≡ 0, 1, 2, 3 mod 4 (the models' 576 = 18 blocks of 32 among them).
    #[test]
    fn tile_rows4_and_single_row_are_bit_identical(seed in 1u64.., nrows in 1usize..20,
            ncols in prop::sample::select(vec![TILE_MIN_COLS, TILE_MIN_COLS + 1, 37]),
            n in prop::sample::select(vec![256usize, 576, 768, 896, 1536, 64 * 5, 32 * 9]),
            exp in -6i32..6) {
        let mut rng = Rng(seed);
        for &ty in TYPES {
            if row_bytes(ty, n).is_err() || row_bytes(kernels(ty).unwrap().vec_dot_type, n).is_err() {
                continue;
            }
            let w = quant_rows(&mut rng, ty, n, nrows, exp);
            let a = acts(&mut rng, ty, n, ncols, 0);
            check_paths_bitwise(ty, n, &w, nrows, &a, ncols)?;
        }
    }
}

/// The micro-kernels are really used on a CPU that has them (the props above would otherwise
/// only compare the fallback with itself), and size errors are reported, not panics.
#[test]
fn tile_kernels_present_and_sizes_checked() {
    let has512 = is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni");
    let no_simd = std::env::var_os("FERRITE_NO_SIMD").is_some();
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        assert_eq!(has_tile_kernel(ty, 512), has512 && !no_simd, "{ty:?}");
    }
    let ty = GgmlType::Q4_0;
    let w = vec![0u8; row_bytes(ty, 64).unwrap() * 2];
    let a = vec![0u8; row_bytes(GgmlType::Q8_0, 64).unwrap() * 3];
    let mut out = vec![0f32; 6];
    assert!(vec_dot_tile(ty, 64, &w, 2, &a, 3, &mut out, 2).is_ok());
    assert!(vec_dot_tile(ty, 64, &w, 2, &a, 3, &mut out[..5], 2).is_err());
    assert!(vec_dot_tile(ty, 64, &w, 2, &a, 3, &mut out, 1).is_err());
    assert!(vec_dot_tile(ty, 64, &w[1..], 2, &a, 3, &mut out, 2).is_err());
    assert!(vec_dot_tile(ty, 64, &w, 2, &a[..60], 3, &mut out, 2).is_err());
}
