//! The 4-row interleaved layout (`ferrite_quants::packed`): pack/unpack round trip, and the
//! x4 kernels against the plain-layout kernels.
//!
//! Oracle: `vec_dot_rows` on the unpacked rows (itself pinned to ggml's float order by
//! tests/a_ggml_order.rs) and the single-row `vec_dot`. Tolerance: **bit-identical**: the x4
//! kernels do the same integer sums and the same f32 operations per output, so any
//! difference is a bug. Inputs: the crate's quantizers on random data (magnitudes
//! 2^-12..2^8), and random block bytes with f16 scales from subnormal (2^-24) to 2^15;
//! 4..28 rows (one and two groups per kernel pass), 1..3 superblocks, +32 elements for the
//! legacy types (odd block counts).
mod a_util;
use a_util::{f16_fields, Rng};
use ferrite_quants::packed::{
    copy_row, has_kernels, has_layout, pack_rows, unpack_rows, vec_dot_rows_x4, GROUP,
};
use ferrite_quants::{kernels, quantize_row, row_bytes, vec_dot_rows, GgmlType, QuantError};
use proptest::prelude::*;

const TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
];

fn quant_rows(rng: &mut Rng, ty: GgmlType, n: usize, rows: usize, exp: i32) -> Vec<u8> {
    let rb = row_bytes(ty, n).unwrap();
    let s = 2f32.powi(exp);
    let mut w = vec![0u8; rb * rows];
    for r in 0..rows {
        let x: Vec<f32> = (0..n).map(|_| rng.normal() * s).collect();
        quantize_row(ty, &x, &mut w[r * rb..(r + 1) * rb]).unwrap();
    }
    w
}

fn check(ty: GgmlType, n: usize, w: &[u8], rows: usize, a: &[u8]) -> Result<(), TestCaseError> {
    let rb = row_bytes(ty, n).unwrap();
    let mut p = vec![0u8; w.len()];
    pack_rows(ty, n, w, &mut p).unwrap();
    let mut back = vec![0u8; w.len()];
    unpack_rows(ty, n, &p, &mut back).unwrap();
    prop_assert!(back == w, "{:?}: unpack(pack(w)) != w", ty);
    let mut one = vec![0u8; rb];
    for r in 0..rows {
        copy_row(ty, n, &p, r, &mut one).unwrap();
        prop_assert!(
            one[..] == w[r * rb..(r + 1) * rb],
            "{:?}: copy_row {}",
            ty,
            r
        );
    }
    prop_assert!(copy_row(ty, n, &p, rows, &mut one).is_err());
    let mut want = vec![0f32; rows];
    vec_dot_rows(ty, n, w, a, &mut want).unwrap();
    let mut got = vec![f32::NAN; rows];
    vec_dot_rows_x4(ty, n, &p, a, &mut got).unwrap();
    let k = kernels(ty).unwrap();
    for r in 0..rows {
        let one = (k.vec_dot)(n, &w[r * rb..(r + 1) * rb], a);
        prop_assert!(
            got[r].to_bits() == want[r].to_bits() && one.to_bits() == want[r].to_bits(),
            "{:?} n={} rows={} [r{}]: x4 {} rows {} single {}",
            ty,
            n,
            rows,
            r,
            got[r],
            want[r],
            one
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    #[test]
    fn x4_matches_plain_quantized(seed in 1u64.., groups in 1usize..8, nsb in 1usize..4,
                                  exp in -12i32..8, aexp in -8i32..8) {
        let mut rng = Rng(seed);
        for &ty in TYPES {
            for n in [256 * nsb, 256 * nsb + 32] {
                if row_bytes(ty, n).is_err() {
                    continue;
                }
                let rows = GROUP * groups;
                let w = quant_rows(&mut rng, ty, n, rows, exp);
                let a = quant_rows(&mut rng, kernels(ty).unwrap().vec_dot_type, n, 1, aexp);
                check(ty, n, &w, rows, &a)?;
            }
        }
    }

    #[test]
    fn x4_matches_plain_random_bytes(seed in 1u64.., groups in 1usize..5, nsb in 1usize..3,
                                     dexp in prop::sample::select(vec![-24i32, -14, -8, 0, 4, 10, 15])) {
        let mut rng = Rng(seed);
        for &ty in TYPES {
            let n = 256 * nsb;
            let rows = GROUP * groups;
            let mut w: Vec<u8> = (0..row_bytes(ty, n).unwrap() * rows).map(|_| rng.next_u64() as u8).collect();
            for b in w.chunks_exact_mut(ty.type_size()) {
                for &off in f16_fields(ty) {
                    let v = half::f16::from_f32(2f32.powi(dexp) * (1.0 + (rng.next_u64() % 1000) as f32 / 1000.0));
                    b[off..off + 2].copy_from_slice(&v.to_bits().to_le_bytes());
                }
            }
            // All-zero blocks too.
            if seed % 3 == 0 {
                let bs = ty.type_size();
                w[..bs].fill(0);
            }
            let a = quant_rows(&mut rng, kernels(ty).unwrap().vec_dot_type, n, 1, 0);
            check(ty, n, &w, rows, &a)?;
        }
    }
}

/// The layout itself, on a hand-checkable case: Q4_0 group block 0 is the four rows' `d`
/// then their quants.
#[test]
fn q4_0_layout_is_d_then_quants() {
    let (ty, n) = (GgmlType::Q4_0, 64);
    let rb = row_bytes(ty, n).unwrap(); // 2 blocks of 18 bytes
    let w: Vec<u8> = (0..4 * rb).map(|i| i as u8).collect();
    let mut p = vec![0u8; w.len()];
    pack_rows(ty, n, &w, &mut p).unwrap();
    let mut want = Vec::new();
    for b in 0..2 {
        for r in 0..4 {
            want.extend_from_slice(&w[r * rb + 18 * b..r * rb + 18 * b + 2]);
        }
        for r in 0..4 {
            want.extend_from_slice(&w[r * rb + 18 * b + 2..r * rb + 18 * (b + 1)]);
        }
    }
    assert_eq!(p, want);
}

#[test]
fn x4_refuses_bad_input() {
    let (ty, n) = (GgmlType::Q4_0, 64);
    let rb = row_bytes(ty, n).unwrap();
    let w = vec![0u8; 3 * rb];
    let mut d = vec![0u8; 3 * rb];
    // Not whole groups.
    assert!(matches!(
        pack_rows(ty, n, &w, &mut d),
        Err(QuantError::BadLength { .. })
    ));
    let mut o = vec![0f32; 3];
    let a = vec![0u8; row_bytes(GgmlType::Q8_0, n).unwrap()];
    assert!(matches!(
        vec_dot_rows_x4(ty, n, &w, &a, &mut o),
        Err(QuantError::BadLength { .. })
    ));
    // Types without the layout are named.
    assert!(!has_layout(GgmlType::Q6_K));
    let w = vec![0u8; 4 * row_bytes(GgmlType::Q6_K, 256).unwrap()];
    let mut d = vec![0u8; w.len()];
    assert_eq!(
        pack_rows(GgmlType::Q6_K, 256, &w, &mut d),
        Err(QuantError::Unsupported(GgmlType::Q6_K))
    );
}

/// On an AVX-512 VNNI + VBMI CPU (this project's machines) the kernels must exist, or the
/// tests above only checked the unpack fallback.
#[test]
fn x4_kernels_present_on_avx512() {
    if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vbmi") {
        for &ty in TYPES {
            assert!(has_kernels(ty), "{:?}", ty);
        }
    }
}
