//! Property tests: every SIMD level this CPU has (AVX2 and AVX-512 separately, not just the
//! dispatched one) against the scalar `vec_dot_ref`, and the fast q8 activation quantizers
//! against the reference ones.
//!
//! Oracle: `TypeKernels::vec_dot_ref` (scalar twin of ggml's generic kernels).
//! Tolerance: |simd - ref| <= 1e-4 * M + 1e-30, where M = sum_i |w_i * a_i| over the dequantized
//! rows (f64). Integer partial sums are exact in both; only f32 accumulation order differs.
//! For the types in `BIT_EXACT_WITH_AVX2` every level must also equal the AVX2 kernel bit for
//! bit (oracle: `dot_fn_at(Level::Avx2, ty)`).
mod a_util;
use a_util::{f16_fields, Rng};
use ferrite_quants::simd::{available_levels, dot_fn_at, quantize_fn_at, rows4_fn_at, Level};
use ferrite_quants::{dequantize_row, kernels, quantize_row, row_bytes, GgmlType};
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
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
];

/// Types whose SIMD kernels are bit-identical across levels (every level equals the AVX2
/// kernel bit for bit; src/simd/x86/z512_more.rs keeps its float order).
const BIT_EXACT_WITH_AVX2: &[GgmlType] = &[GgmlType::Q3_K];

fn simd_levels() -> Vec<Level> {
    available_levels()
        .into_iter()
        .filter(|l| *l != Level::Scalar)
        .collect()
}

/// Random f32 data: N(0,1)·2^exp, with the blocks whose bit is set in `zero_mask` all-zero.
fn data(rng: &mut Rng, n: usize, block: usize, exp: i32, zero_mask: u32) -> Vec<f32> {
    let s = 2f32.powi(exp);
    (0..n)
        .map(|i| {
            if zero_mask >> ((i / block) % 32) & 1 == 1 {
                0.0
            } else {
                rng.normal() * s
            }
        })
        .collect()
}

fn magnitude(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f64 {
    let vt = kernels(ty).unwrap().vec_dot_type;
    let (mut wd, mut ad) = (vec![0f32; n], vec![0f32; n]);
    dequantize_row(ty, w, &mut wd).unwrap();
    dequantize_row(vt, a, &mut ad).unwrap();
    wd.iter()
        .zip(&ad)
        .map(|(x, y)| (*x as f64 * *y as f64).abs())
        .sum()
}

fn check_all_levels(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<(), TestCaseError> {
    let k = kernels(ty).unwrap();
    let want = (k.vec_dot_ref)(n, w, a) as f64;
    let tol = 1e-4 * magnitude(ty, n, w, a) + 1e-30;
    for lvl in simd_levels() {
        let f = dot_fn_at(lvl, ty).unwrap_or_else(|| panic!("{ty:?} has no {lvl:?} kernel"));
        let got = f(n, w, a) as f64;
        prop_assert!(
            (got - want).abs() <= tol,
            "{:?} {:?} n={}: simd {} vs ref {} (tol {})",
            ty,
            lvl,
            n,
            got,
            want,
            tol
        );
        // Types whose AVX-512 kernel keeps the AVX2 kernel's float order: bit for bit.
        if BIT_EXACT_WITH_AVX2.contains(&ty) {
            let avx2 = dot_fn_at(Level::Avx2, ty).unwrap()(n, w, a);
            prop_assert_eq!(
                (got as f32).to_bits(),
                avx2.to_bits(),
                "{:?} {:?} n={}: simd {} vs avx2 {}",
                ty,
                lvl,
                n,
                got,
                avx2
            );
        }
        if let Some(f4) = rows4_fn_at(lvl, ty) {
            let r = f4(n, [w, w, w, w], a);
            for v in r {
                prop_assert!(
                    (v as f64 - want).abs() <= tol,
                    "{:?} {:?} x4: {} vs ref {}",
                    ty,
                    lvl,
                    v,
                    want
                );
            }
        }
    }
    // The public dispatched entry must agree too.
    let got = ferrite_quants::vec_dot(ty, n, w, a).unwrap() as f64;
    prop_assert!(
        (got - want).abs() <= tol,
        "{:?} dispatched {} vs ref {}",
        ty,
        got,
        want
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Weights from quantizing random data (scales 2^-20..2^12: f16 scales stay finite; some
    /// all-zero blocks);
    /// odd and even block counts.
    #[test]
    fn simd_matches_ref_quantized(seed in 1u64.., nblocks in prop::sample::select(vec![1usize, 2, 3, 5, 7, 8, 9]),
                                  exp in -20i32..12, aexp in -10i32..10, zero_mask in any::<u32>()) {
        let mut rng = Rng(seed);
        for &ty in TYPES {
            let k = kernels(ty).unwrap();
            let block = if ty.block_size() == 1 { 32 } else { ty.block_size() };
            let ablock = k.vec_dot_type.block_size().max(block);
            let n = nblocks * ablock;
            let x = data(&mut rng, n, block, exp, zero_mask);
            let y = data(&mut rng, n, ablock, aexp, zero_mask.rotate_left(7));
            let mut w = vec![0u8; row_bytes(ty, n).unwrap()];
            quantize_row(ty, &x, &mut w).unwrap();
            let mut a = vec![0u8; row_bytes(k.vec_dot_type, n).unwrap()];
            quantize_row(k.vec_dot_type, &y, &mut a).unwrap();
            check_all_levels(ty, n, &w, &a)?;
        }
    }

    /// Weights as random bytes (every nibble/bit pattern) with finite f16 scales, including
    /// huge (up to 2^15) and tiny (subnormal) ones.
    #[test]
    fn simd_matches_ref_random_bytes(seed in 1u64.., nblocks in 1usize..10,
                                     dexp in prop::sample::select(vec![-24i32, -14, -8, 0, 4, 10, 15])) {
        let mut rng = Rng(seed);
        for &ty in TYPES.iter().filter(|t| !f16_fields(**t).is_empty()) {
            let k = kernels(ty).unwrap();
            let n = nblocks * ty.block_size().max(k.vec_dot_type.block_size());
            let mut w: Vec<u8> = (0..row_bytes(ty, n).unwrap()).map(|_| rng.next_u64() as u8).collect();
            for b in w.chunks_exact_mut(ty.type_size()) {
                for &off in f16_fields(ty) {
                    let v = half::f16::from_f32(2f32.powi(dexp) * (1.0 + (rng.next_u64() % 1000) as f32 / 1000.0));
                    b[off..off + 2].copy_from_slice(&v.to_bits().to_le_bytes());
                }
            }
            let y = data(&mut rng, n, 32, 0, 0);
            let mut a = vec![0u8; row_bytes(k.vec_dot_type, n).unwrap()];
            quantize_row(k.vec_dot_type, &y, &mut a).unwrap();
            check_all_levels(ty, n, &w, &a)?;
        }
    }

    /// Oracle: reference q8 quantizers. Tolerance: byte-identical.
    #[test]
    fn fast_q8_quantizers_match_ref(seed in 1u64.., nblocks in 1usize..6, exp in -30i32..30, zero_mask in any::<u32>()) {
        let mut rng = Rng(seed);
        for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
            let n = nblocks * 256;
            let x = data(&mut rng, n, 32, exp, zero_mask);
            let refq = quantize_fn_at(Level::Scalar, ty).unwrap();
            let mut want = vec![0u8; row_bytes(ty, n).unwrap()];
            refq(&x, &mut want);
            for lvl in simd_levels() {
                let f = quantize_fn_at(lvl, ty).unwrap();
                let mut got = vec![0u8; want.len()];
                f(&x, &mut got);
                prop_assert_eq!(&got, &want, "{:?} {:?}", ty, lvl);
            }
        }
    }
}

/// Rounding ties (x.5 after scaling) and sign handling in the fast quantizers: with amax = 127,
/// d = 1 and the values are the ties themselves. Oracle: reference quantizer, byte-identical.
#[test]
fn fast_q8_quantizers_ties() {
    let mut x = vec![0f32; 256];
    x[0] = 127.0;
    for (i, v) in x.iter_mut().enumerate().skip(1) {
        *v = ((i as f32) - 128.0) / 2.0; // ..., -1.5, -1.0, -0.5, 0, 0.5, 1.0, 1.5, ...
    }
    x[40] = -127.0; // Q8_K: first max-magnitude element wins (x[0] = +127)
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        let mut want = vec![0u8; row_bytes(ty, 256).unwrap()];
        quantize_fn_at(Level::Scalar, ty).unwrap()(&x, &mut want);
        for lvl in simd_levels() {
            let mut got = vec![0u8; want.len()];
            quantize_fn_at(lvl, ty).unwrap()(&x, &mut got);
            assert_eq!(got, want, "{ty:?} {lvl:?}");
        }
    }
}

/// This machine is expected to have AVX2 and AVX-512 (Zen 4); make sure the properties above
/// did exercise SIMD code rather than silently testing nothing.
#[test]
fn simd_levels_present_on_x86() {
    if cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2") {
        assert!(simd_levels().contains(&Level::Avx2));
        for &ty in TYPES {
            assert!(
                dot_fn_at(Level::Avx2, ty).is_some(),
                "{ty:?} lacks an AVX2 kernel"
            );
        }
    }
}

/// vec_dot_rows equals per-row vec_dot_ref for 1..=9 rows (covers the 4-row kernel and the
/// remainder). Tolerance as above.
#[test]
fn vec_dot_rows_matches_single_rows() {
    let mut rng = Rng(99);
    for &ty in TYPES {
        let k = kernels(ty).unwrap();
        let n = 512;
        let rb = row_bytes(ty, n).unwrap();
        for nrows in 1..=9 {
            let x = data(&mut rng, n * nrows, 32, 0, 0);
            let mut w = vec![0u8; rb * nrows];
            for r in 0..nrows {
                quantize_row(ty, &x[r * n..(r + 1) * n], &mut w[r * rb..(r + 1) * rb]).unwrap();
            }
            let y = data(&mut rng, n, 32, 0, 0);
            let mut a = vec![0u8; row_bytes(k.vec_dot_type, n).unwrap()];
            quantize_row(k.vec_dot_type, &y, &mut a).unwrap();
            let mut out = vec![0f32; nrows];
            ferrite_quants::vec_dot_rows(ty, n, &w, &a, &mut out).unwrap();
            for r in 0..nrows {
                let wr = &w[r * rb..(r + 1) * rb];
                let want = (k.vec_dot_ref)(n, wr, &a) as f64;
                let tol = 1e-4 * magnitude(ty, n, wr, &a) + 1e-30;
                assert!(
                    (out[r] as f64 - want).abs() <= tol,
                    "{ty:?} rows={nrows} r={r}: {} vs {want}",
                    out[r]
                );
            }
        }
    }
}
