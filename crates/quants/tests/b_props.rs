//! Property tests: every dispatching `vec_dot` (AVX2 where the CPU has it) equals its scalar
//! `vec_dot_ref` twin for IQ4_NL, IQ4_XS, IQ2_XXS, IQ3_XXS, TQ2_0, MXFP4 (the types with SIMD
//! paths) and, for the scalar-only types, the dispatcher is the reference itself.
//!
//! Oracle: `vec_dot_ref` (ggml's generic C kernel, ported). Both sides compute the same exact
//! integer block sums and differ only in float accumulation order, so the tolerance is
//! `1e-5 * Σ|w_i·a_i|` (f64 over the dequantized operands) — far below any real kernel bug,
//! which shows up at the size of whole terms. Inputs: random block bytes with finite random
//! scales, odd block counts (1, 3, 5, 7, 17, 35), and blocks zeroed at random; activations are
//! random floats quantized with the crate's Q8_0 / Q8_K quantizers (so Q8_K `bsums` are
//! consistent).
//! The SIMD checks run both the dispatched `vec_dot` and each level forced with `dot_fn_at`;
//! for the types in `BIT_EXACT_WITH_AVX2` the AVX-512 level must equal the AVX2 kernel bit for
//! bit.

use ferrite_quants::simd::{available_levels, dot_fn_at, Level};
use ferrite_quants::{kernels, GgmlType};
use half::f16;
use proptest::prelude::*;

mod b_util;

/// Byte offset and kind of each block's scale field, to keep scales finite.
enum Scale {
    F16At(usize),
    E8m0At(usize),
}

fn scale_of(ty: GgmlType) -> Scale {
    match ty {
        GgmlType::IQ4_NL | GgmlType::IQ4_XS => Scale::F16At(0),
        GgmlType::TQ2_0 => Scale::F16At(64),
        GgmlType::TQ1_0 => Scale::F16At(52),
        GgmlType::MXFP4 => Scale::E8m0At(0),
        GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ2_S
        | GgmlType::IQ3_XXS
        | GgmlType::IQ3_S => Scale::F16At(0),
        GgmlType::IQ1_S => Scale::F16At(0),
        other => panic!("no scale layout for {other}"),
    }
}

/// Random blocks of `ty`: random bytes, scale fields replaced by finite values from `scales`,
/// and blocks whose `zero` flag is set cleared entirely.
fn make_blocks(ty: GgmlType, bytes: &[u8], scales: &[f32], zero: &[bool]) -> Vec<u8> {
    let ts = ty.type_size();
    let mut w = bytes.to_vec();
    for (i, blk) in w.chunks_exact_mut(ts).enumerate() {
        if zero[i] {
            blk.fill(0);
            continue;
        }
        match scale_of(ty) {
            Scale::F16At(o) => {
                blk[o..o + 2].copy_from_slice(&f16::from_f32(scales[i]).to_bits().to_le_bytes())
            }
            Scale::E8m0At(o) => blk[o] = (117.0 + scales[i] * 4.0) as u8,
        }
    }
    w
}

fn check_simd_vs_ref(
    ty: GgmlType,
    nb: usize,
    bytes: &[u8],
    scales: &[f32],
    zero: &[bool],
    act_f: &[f32],
) {
    let k = kernels(ty).unwrap();
    let n = nb * ty.block_size();
    let w = make_blocks(ty, &bytes[..nb * ty.type_size()], scales, zero);
    let mut act = vec![0u8; ferrite_quants::row_bytes(k.vec_dot_type, n).unwrap()];
    ferrite_quants::quantize_row(k.vec_dot_type, &act_f[..n], &mut act).unwrap();
    let got = (k.vec_dot)(n, &w, &act) as f64;
    let want = (k.vec_dot_ref)(n, &w, &act) as f64;
    let (_, mag) = b_util::f64_dot(ty, &w, k.vec_dot_type, &act);
    let tol = 1e-5 * mag + 1e-30;
    assert!(
        got.is_finite() && want.is_finite(),
        "{ty}: non-finite {got} / {want}"
    );
    assert!(
        (got - want).abs() <= tol,
        "{ty}, {nb} blocks: simd {got} vs ref {want} (tol {tol:e})"
    );
    // Every level this CPU has, forced through `dot_fn_at` (so the AVX2 kernels are checked
    // even under FERRITE_NO_SIMD, where the dispatched `vec_dot` is the scalar twin).
    for lvl in available_levels() {
        let f = dot_fn_at(lvl, ty).unwrap_or_else(|| panic!("{ty}: no {lvl:?} kernel"));
        let got = f(n, &w, &act) as f64;
        assert!(got.is_finite(), "{ty} {lvl:?}: non-finite {got}");
        assert!(
            (got - want).abs() <= tol,
            "{ty} {lvl:?}, {nb} blocks: {got} vs ref {want} (tol {tol:e})"
        );
        // The 512-bit kernels of these types keep the AVX2 kernel's float order: bit for bit.
        if lvl > Level::Avx2 && BIT_EXACT_WITH_AVX2.contains(&ty) {
            let avx2 = dot_fn_at(Level::Avx2, ty).unwrap()(n, &w, &act);
            assert_eq!(
                (got as f32).to_bits(),
                avx2.to_bits(),
                "{ty} {lvl:?}, {nb} blocks: {got} vs avx2 {avx2}"
            );
        }
    }
}

/// Types whose AVX-512 kernels (src/simd/x86/z512_more.rs) are bit-identical to their AVX2
/// kernels (oracle: `dot_fn_at(Level::Avx2, ty)`).
const BIT_EXACT_WITH_AVX2: [GgmlType; 4] = [
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::TQ2_0,
];

/// The most blocks a case has.
const MAX_NB: usize = 35;

fn strategy(
    ty: GgmlType,
) -> impl Strategy<Value = (usize, Vec<u8>, Vec<f32>, Vec<bool>, Vec<f32>)> {
    let max_nb = MAX_NB;
    (
        // 17 and 35: past the 8- and 16-block groups of the AVX-512 kernels, with tails.
        prop_oneof![Just(1usize), Just(3), Just(5), Just(7), Just(17), Just(35)],
        proptest::collection::vec(any::<u8>(), max_nb * ty.type_size()),
        proptest::collection::vec(-4.0f32..4.0, max_nb),
        proptest::collection::vec(proptest::bool::weighted(0.2), max_nb),
        proptest::collection::vec(-8.0f32..8.0, max_nb * ty.block_size()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn iq4_nl_simd_matches_ref((nb, bytes, scales, zero, act) in strategy(GgmlType::IQ4_NL)) {
        check_simd_vs_ref(GgmlType::IQ4_NL, nb, &bytes, &scales, &zero, &act);
    }

    #[test]
    fn iq4_xs_simd_matches_ref((nb, bytes, scales, zero, act) in strategy(GgmlType::IQ4_XS)) {
        check_simd_vs_ref(GgmlType::IQ4_XS, nb, &bytes, &scales, &zero, &act);
    }

    #[test]
    fn tq2_0_simd_matches_ref((nb, bytes, scales, zero, act) in strategy(GgmlType::TQ2_0)) {
        check_simd_vs_ref(GgmlType::TQ2_0, nb, &bytes, &scales, &zero, &act);
    }

    #[test]
    fn iq2_xxs_simd_matches_ref((nb, bytes, scales, zero, act) in strategy(GgmlType::IQ2_XXS)) {
        check_simd_vs_ref(GgmlType::IQ2_XXS, nb, &bytes, &scales, &zero, &act);
    }

    #[test]
    fn iq3_xxs_simd_matches_ref((nb, bytes, scales, zero, act) in strategy(GgmlType::IQ3_XXS)) {
        check_simd_vs_ref(GgmlType::IQ3_XXS, nb, &bytes, &scales, &zero, &act);
    }

    #[test]
    fn mxfp4_simd_matches_ref((nb, bytes, scales, zero, act) in strategy(GgmlType::MXFP4)) {
        check_simd_vs_ref(GgmlType::MXFP4, nb, &bytes, &scales, &zero, &act);
    }

    // Scalar-only types: vec_dot must agree with the f64 dot of the dequantized operands
    // (oracle: exact math; tolerance 1e-5·Σ|w·a| for float rounding).
    #[test]
    fn scalar_iq_dots_match_f64((nb, bytes, scales, zero, act) in strategy(GgmlType::IQ3_S)) {
        for ty in [GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS,
                   GgmlType::IQ3_S, GgmlType::IQ1_S, GgmlType::TQ1_0] {
            let k = kernels(ty).unwrap();
            let n = nb * 256;
            let mut raw = bytes.clone();
            raw.resize(MAX_NB * ty.type_size(), 0x5a);
            let w = make_blocks(ty, &raw[..nb * ty.type_size()], &scales, &zero);
            let mut a = vec![0u8; ferrite_quants::row_bytes(k.vec_dot_type, n).unwrap()];
            ferrite_quants::quantize_row(k.vec_dot_type, &act[..n], &mut a).unwrap();
            let got = (k.vec_dot)(n, &w, &a) as f64;
            let (want, mag) = b_util::f64_dot(ty, &w, k.vec_dot_type, &a);
            prop_assert!((got - want).abs() <= 1e-5 * mag + 1e-30, "{}: {} vs {}", ty, got, want);
        }
    }
}

/// All-zero weights and activations give exactly 0 on every path (oracle: arithmetic).
#[test]
fn zero_blocks_dot_to_zero() {
    for ty in [
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ2_S,
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
        GgmlType::IQ1_S,
        GgmlType::IQ1_M,
    ] {
        let k = kernels(ty).unwrap();
        for nb in [1usize, 3] {
            let n = nb * ty.block_size();
            let w = vec![0u8; ferrite_quants::row_bytes(ty, n).unwrap()];
            let a = vec![0u8; ferrite_quants::row_bytes(k.vec_dot_type, n).unwrap()];
            assert_eq!((k.vec_dot)(n, &w, &a), 0.0, "{ty}");
            assert_eq!((k.vec_dot_ref)(n, &w, &a), 0.0, "{ty}");
        }
    }
}

/// Types whose AVX2 dot kernels live in their family files (iq4.rs, iq_x86.rs, mxfp4.rs,
/// ternary.rs) and are routed through `crate::simd` like every other type.
const FAMILY_SIMD: [GgmlType; 6] = [
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::TQ2_0,
    GgmlType::IQ2_XXS,
    GgmlType::IQ3_XXS,
];

/// `dot_fn_at(Level::Scalar)` is exactly the scalar reference (oracle: the kernel table).
#[test]
fn scalar_level_is_reference() {
    for ty in FAMILY_SIMD {
        let r = kernels(ty).unwrap().vec_dot_ref;
        let f = dot_fn_at(Level::Scalar, ty).unwrap();
        assert_eq!(
            f as usize, r as usize,
            "{ty}: scalar level is not vec_dot_ref"
        );
    }
}

/// On an AVX2 machine each of these types has an AVX2 (and, where the CPU has it, AVX-512
/// level) kernel distinct from the reference, so the properties above exercise SIMD code.
#[test]
fn family_simd_kernels_present() {
    if !(cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2")) {
        return;
    }
    assert!(available_levels().contains(&Level::Avx2));
    for ty in FAMILY_SIMD {
        let r = kernels(ty).unwrap().vec_dot_ref as usize;
        for lvl in available_levels() {
            if lvl == Level::Scalar {
                continue;
            }
            let f = dot_fn_at(lvl, ty).unwrap_or_else(|| panic!("{ty} lacks a {lvl:?} kernel"));
            assert_ne!(f as usize, r, "{ty} {lvl:?} is the scalar reference");
        }
    }
}

/// `FERRITE_NO_SIMD` forces the dispatched `vec_dot` onto the scalar reference: bit-identical
/// results (oracle: `vec_dot_ref`).
#[test]
fn no_simd_env_gives_reference() {
    if std::env::var_os("FERRITE_NO_SIMD").is_none() {
        return;
    }
    for ty in FAMILY_SIMD {
        let k = kernels(ty).unwrap();
        let n = 3 * ty.block_size();
        let w: Vec<u8> = (0..ferrite_quants::row_bytes(ty, n).unwrap())
            .map(|i| (i as u32).wrapping_mul(2654435761) as u8 >> 1)
            .collect();
        let w = make_blocks(ty, &w, &[0.5, -1.25, 2.0], &[false; 3]);
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let mut a = vec![0u8; ferrite_quants::row_bytes(k.vec_dot_type, n).unwrap()];
        ferrite_quants::quantize_row(k.vec_dot_type, &x, &mut a).unwrap();
        let got = ferrite_quants::vec_dot(ty, n, &w, &a).unwrap();
        let want = (k.vec_dot_ref)(n, &w, &a);
        assert_eq!(got.to_bits(), want.to_bits(), "{ty}: {got} vs {want}");
    }
}
