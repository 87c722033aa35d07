//! Property tests for the SIMD kernels of IQ2_XXS, IQ3_XXS, IQ2_XS, IQ2_S, IQ3_S, IQ1_S, IQ1_M and
//! TQ1_0 (vs Q8_K activations; AVX2 in src/iquants/iq_x86.rs and lowbit_x86.rs, 512-bit AVX-512
//! in src/iquants/iq_z512.rs and src/simd/x86): every SIMD level this CPU has, and the
//! dispatched `vec_dot`, against the scalar `vec_dot_ref` twin.
//!
//! Oracle: `TypeKernels::vec_dot_ref` (port of ggml's generic C kernel).
//! Tolerance: **bit-identical**. The kernels compute each super-block's integer sum exactly and
//! combine `d_w · d_a · Σ` (and the IQ1 delta terms) in the twin's float order, so any
//! difference at all is a bug.
//! Inputs: random block bytes (every index / sign / scale bit pattern) with finite f16 scales
//! from subnormal (2^-24) to huge (2^15), all-zero blocks, 1..=9 super-blocks, activations of
//! magnitudes 2^-10..2^10 quantized with the crate's Q8_K quantizer (consistent `bsums`); and
//! weights from the crate's own quantizers.
mod a_util;
use a_util::Rng;
use ferrite_quants::simd::{available_levels, dot_fn_at, Level};
use ferrite_quants::{kernels, quantize_row, row_bytes, GgmlType};
use proptest::prelude::*;

const TYPES: &[GgmlType] = &[
    GgmlType::IQ2_XXS,
    GgmlType::IQ3_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ3_S,
    GgmlType::IQ2_S,
    GgmlType::IQ1_S,
    GgmlType::IQ1_M,
    GgmlType::TQ1_0,
];

fn simd_levels() -> Vec<Level> {
    available_levels()
        .into_iter()
        .filter(|l| *l != Level::Scalar)
        .collect()
}

/// Write the f16 `h` as the block's scale (IQ1_M spreads it over the top nibbles of its four
/// scale words).
fn set_scale(ty: GgmlType, b: &mut [u8], h: u16) {
    match ty {
        GgmlType::IQ1_M => {
            for i in 0..4 {
                let o = 48 + 2 * i;
                let w = u16::from_le_bytes([b[o], b[o + 1]]);
                let w = (w & 0x0fff) | ((h >> (4 * i)) & 0xf) << 12;
                b[o..o + 2].copy_from_slice(&w.to_le_bytes());
            }
        }
        GgmlType::TQ1_0 => b[52..54].copy_from_slice(&h.to_le_bytes()),
        _ => b[0..2].copy_from_slice(&h.to_le_bytes()),
    }
}

fn act_row(rng: &mut Rng, n: usize, aexp: i32, zero_mask: u32) -> Vec<u8> {
    let s = 2f32.powi(aexp);
    let y: Vec<f32> = (0..n)
        .map(|i| {
            if zero_mask >> ((i / 256) % 32) & 1 == 1 {
                0.0
            } else {
                rng.normal() * s
            }
        })
        .collect();
    let mut a = vec![0u8; row_bytes(GgmlType::Q8_K, n).unwrap()];
    quantize_row(GgmlType::Q8_K, &y, &mut a).unwrap();
    a
}

fn check_exact(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<(), TestCaseError> {
    let k = kernels(ty).unwrap();
    let want = (k.vec_dot_ref)(n, w, a);
    prop_assert!(want.is_finite(), "{:?}: reference not finite: {}", ty, want);
    for lvl in simd_levels() {
        let f = dot_fn_at(lvl, ty).unwrap_or_else(|| panic!("{ty:?} has no {lvl:?} kernel"));
        let got = f(n, w, a);
        prop_assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{:?} {:?} n={}: simd {} vs ref {}",
            ty,
            lvl,
            n,
            got,
            want
        );
    }
    let got = ferrite_quants::vec_dot(ty, n, w, a).unwrap();
    prop_assert_eq!(got.to_bits(), want.to_bits(), "{:?} dispatched", ty);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn lowbit_simd_equals_ref_random_bytes(
        seed in 1u64..,
        nblocks in 1usize..=9,
        dexp in prop::sample::select(vec![-24i32, -14, -8, -2, 0, 4, 10, 15]),
        aexp in -10i32..10,
        zero_mask in any::<u32>(),
    ) {
        let mut rng = Rng(seed);
        for &ty in TYPES {
            let n = nblocks * 256;
            let mut w: Vec<u8> = (0..row_bytes(ty, n).unwrap()).map(|_| rng.next_u64() as u8).collect();
            for (i, b) in w.chunks_exact_mut(ty.type_size()).enumerate() {
                // Every 5th bit of the mask (rotated per type) zeroes a whole weight block.
                if zero_mask.rotate_left(3 * i as u32) & 0x11 == 0x11 {
                    b.fill(0);
                    continue;
                }
                let frac = (rng.next_u64() % 1000) as f32 / 1000.0;
                let sign = if rng.next_u64() & 1 == 1 { -1.0 } else { 1.0 };
                let h = half::f16::from_f32(sign * 2f32.powi(dexp) * (1.0 + frac));
                set_scale(ty, b, h.to_bits());
            }
            let a = act_row(&mut rng, n, aexp, zero_mask.rotate_left(11));
            check_exact(ty, n, &w, &a)?;
        }
    }
}

proptest! {
    // The IQ quantizers search lattices: a few cases keep this under a few seconds.
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    #[test]
    fn lowbit_simd_equals_ref_quantized(seed in 1u64.., nblocks in 1usize..=3, exp in -12i32..8) {
        let mut rng = Rng(seed);
        for &ty in TYPES {
            let n = nblocks * 256;
            let s = 2f32.powi(exp);
            let x: Vec<f32> = (0..n).map(|_| rng.normal() * s).collect();
            let mut w = vec![0u8; row_bytes(ty, n).unwrap()];
            quantize_row(ty, &x, &mut w).unwrap();
            let a = act_row(&mut rng, n, 0, 0);
            check_exact(ty, n, &w, &a)?;
        }
    }
}

/// All-zero weights and activations: exactly 0 on every level.
#[test]
fn lowbit_zero_blocks() {
    for &ty in TYPES {
        for nb in [1usize, 2, 3] {
            let n = nb * 256;
            let w = vec![0u8; row_bytes(ty, n).unwrap()];
            let a = vec![0u8; row_bytes(GgmlType::Q8_K, n).unwrap()];
            for lvl in available_levels() {
                let f = dot_fn_at(lvl, ty).unwrap();
                assert_eq!(f(n, &w, &a), 0.0, "{ty:?} {lvl:?}");
            }
        }
    }
}

/// The properties above must exercise SIMD code on an AVX2 machine, not silently the scalar
/// path: each type has an AVX2 (and AVX-512-level) kernel distinct from the reference.
#[test]
fn lowbit_simd_kernels_present() {
    if !(cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2")) {
        return;
    }
    for &ty in TYPES {
        let r = kernels(ty).unwrap().vec_dot_ref as usize;
        for lvl in simd_levels() {
            let f = dot_fn_at(lvl, ty).unwrap_or_else(|| panic!("{ty:?} lacks a {lvl:?} kernel"));
            assert_ne!(f as usize, r, "{ty:?} {lvl:?} is the scalar reference");
        }
    }
}

/// On a CPU with the extensions they use (AVX512_VBMI/VBMI2/BITALG, GFNI, BMI2), the AVX-512
/// level runs its own 512-bit kernels for the grid-coded IQ types (src/iquants/iq_z512.rs), not
/// the AVX2 bodies again: the bit-exact properties above then check those kernels.
#[test]
fn lowbit_avx512_kernels_are_512_bit() {
    #[cfg(target_arch = "x86_64")]
    {
        let ext = std::is_x86_feature_detected!("avx512vbmi")
            && std::is_x86_feature_detected!("avx512vbmi2")
            && std::is_x86_feature_detected!("avx512bitalg")
            && std::is_x86_feature_detected!("gfni")
            && std::is_x86_feature_detected!("bmi2");
        if !(available_levels().contains(&Level::Avx512) && ext) {
            return;
        }
        for ty in [
            GgmlType::IQ2_XXS,
            GgmlType::IQ3_XXS,
            GgmlType::IQ2_XS,
            GgmlType::IQ2_S,
            GgmlType::IQ3_S,
            GgmlType::IQ1_S,
            GgmlType::IQ1_M,
        ] {
            let avx2 = dot_fn_at(Level::Avx2, ty).unwrap() as usize;
            let avx512 = dot_fn_at(Level::Avx512, ty).unwrap() as usize;
            assert_ne!(
                avx2, avx512,
                "{ty:?}: the AVX-512 level runs the AVX2 kernel"
            );
        }
    }
}
