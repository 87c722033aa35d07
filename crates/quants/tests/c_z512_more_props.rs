//! The AVX-512-level kernels of Q3_K, IQ4_NL, IQ4_XS, MXFP4, TQ1_0 and TQ2_0
//! (src/simd/x86/z512_more.rs) against the AVX2 kernels of the same types.
//!
//! Oracle: `dot_fn_at(Level::Avx2, ty)`, the AVX2 kernel (itself checked against the scalar
//! `vec_dot_ref` twin in a_simd_props.rs, b_props.rs and c_lowbit_simd_props.rs).
//! Tolerance: **bit-identical**. The 512-bit kernels compute the same exact integer block sums
//! and, per output, the AVX2 kernel's f32 operations in its order, so any difference is a bug.
//! Inputs: random block bytes (every nibble / bit / code pattern) with scales from f16
//! subnormals (2^-24) to the f16 maximum (65504), both signs, E8M0 exponents 0..=140
//! (including the subnormal half-scales of 0 and 1), whole blocks zeroed at random; odd and
//! even block counts (1..=40 blocks of 32, 1..=19 super-blocks of 256, so every main loop and
//! every tail of the kernels runs); activations N(0,1)·2^-10..2^10 quantized with the crate's
//! Q8_0 / Q8_K quantizers (consistent `bsums`), some blocks all zero; and weights from the
//! crate's own quantizers.
mod a_util;
use a_util::Rng;
use ferrite_quants::simd::{available_levels, dot_fn_at, Level};
use ferrite_quants::{kernels, quantize_row, row_bytes, GgmlType};
use proptest::prelude::*;

const TYPES: [GgmlType; 6] = [
    GgmlType::Q3_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

fn has_avx512() -> bool {
    available_levels().contains(&Level::Avx512)
}

/// The scale field of a block: an f16 at this offset, or (MXFP4) the E8M0 byte 0.
fn f16_scale_at(ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::Q3_K => Some(108),
        GgmlType::IQ4_NL | GgmlType::IQ4_XS => Some(0),
        GgmlType::TQ1_0 => Some(52),
        GgmlType::TQ2_0 => Some(64),
        GgmlType::MXFP4 => None,
        other => panic!("{other:?}"),
    }
}

/// A finite f16 scale from class `cls`: subnormal, tiny, ordinary, large or the f16 maximum.
fn f16_scale(rng: &mut Rng, cls: u64) -> u16 {
    let sign = if rng.next_u64() & 1 == 1 {
        -1.0f32
    } else {
        1.0
    };
    let frac = 1.0 + (rng.next_u64() % 1000) as f32 / 1000.0;
    let v = match cls % 6 {
        0 => 2f32.powi(-24) * (1 + rng.next_u64() % 1023) as f32, // subnormal
        1 => 2f32.powi(-14) * frac,
        2 => frac,
        3 => 2f32.powi(10) * frac,
        4 => 65504.0,
        _ => 2f32.powi(15) * frac.min(1.999),
    };
    half::f16::from_f32(sign * v.min(65504.0)).to_bits()
}

fn weights(rng: &mut Rng, ty: GgmlType, nb: usize, zero_mask: u64) -> Vec<u8> {
    let ts = ty.type_size();
    let mut w: Vec<u8> = (0..nb * ts).map(|_| rng.next_u64() as u8).collect();
    for (i, b) in w.chunks_exact_mut(ts).enumerate() {
        if zero_mask.rotate_left(5 * i as u32) & 0x9 == 0x9 {
            b.fill(0);
            continue;
        }
        let cls = rng.next_u64();
        match f16_scale_at(ty) {
            Some(o) => b[o..o + 2].copy_from_slice(&f16_scale(rng, cls).to_le_bytes()),
            None => b[0] = (rng.next_u64() % 141) as u8,
        }
    }
    w
}

fn activations(rng: &mut Rng, ty: GgmlType, n: usize, aexp: i32, zero_mask: u64) -> Vec<u8> {
    let at = kernels(ty).unwrap().vec_dot_type;
    let s = 2f32.powi(aexp);
    let y: Vec<f32> = (0..n)
        .map(|i| {
            if zero_mask >> ((i / 32) % 64) & 1 == 1 {
                0.0
            } else {
                rng.normal() * s
            }
        })
        .collect();
    let mut a = vec![0u8; row_bytes(at, n).unwrap()];
    quantize_row(at, &y, &mut a).unwrap();
    a
}

/// AVX-512 level == AVX2 level, bit for bit (and the AVX-512 level is not the AVX2 kernel).
fn check_same(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<(), TestCaseError> {
    let f2 = dot_fn_at(Level::Avx2, ty).unwrap();
    let f5 = dot_fn_at(Level::Avx512, ty).unwrap();
    let (g2, g5) = (f2(n, w, a), f5(n, w, a));
    prop_assert_eq!(
        g5.to_bits(),
        g2.to_bits(),
        "{:?} n={}: avx512 {} vs avx2 {}",
        ty,
        n,
        g5,
        g2
    );
    Ok(())
}

fn blocks_of(ty: GgmlType, k: usize) -> usize {
    // 1..=40 blocks of 32, 1..=19 super-blocks of 256.
    if ty.block_size() == 32 {
        1 + k % 40
    } else {
        1 + k % 19
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn z512_more_equals_avx2_random_bytes(
        seed in 1u64..,
        k in 0usize..760,
        aexp in -10i32..=10,
        zero_mask in any::<u64>(),
    ) {
        if !has_avx512() {
            return Ok(());
        }
        let mut rng = Rng(seed);
        for ty in TYPES {
            let nb = blocks_of(ty, k);
            let n = nb * ty.block_size();
            let w = weights(&mut rng, ty, nb, zero_mask);
            let a = activations(&mut rng, ty, n, aexp, zero_mask.rotate_left(17));
            check_same(ty, n, &w, &a)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn z512_more_equals_avx2_quantized(seed in 1u64.., k in 0usize..760, exp in -12i32..8) {
        if !has_avx512() {
            return Ok(());
        }
        let mut rng = Rng(seed);
        for ty in TYPES {
            let n = blocks_of(ty, k) * ty.block_size();
            let s = 2f32.powi(exp);
            let x: Vec<f32> = (0..n).map(|_| rng.normal() * s).collect();
            let mut w = vec![0u8; row_bytes(ty, n).unwrap()];
            quantize_row(ty, &x, &mut w).unwrap();
            let a = activations(&mut rng, ty, n, 0, 0);
            check_same(ty, n, &w, &a)?;
        }
    }
}

/// Fixed extremes: all-zero rows, all-ones bytes (every index 15 / code 3 / trit 2) with the
/// f16 maximum and the smallest subnormal as scales, and activations at ±127; every block
/// count up to 40 / 19. Oracle and tolerance as above.
#[test]
fn z512_more_equals_avx2_extremes() {
    if !has_avx512() {
        return;
    }
    for ty in TYPES {
        for k in 0..40 {
            let nb = blocks_of(ty, k);
            let n = nb * ty.block_size();
            let ts = ty.type_size();
            let zero = vec![0u8; nb * ts];
            let a0 = vec![0u8; row_bytes(kernels(ty).unwrap().vec_dot_type, n).unwrap()];
            let mut rng = Rng(k as u64 + 1);
            let a = activations(&mut rng, ty, n, 0, 0);
            let y: Vec<f32> = (0..n)
                .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
                .collect();
            let at = kernels(ty).unwrap().vec_dot_type;
            let mut amax = vec![0u8; row_bytes(at, n).unwrap()];
            quantize_row(at, &y, &mut amax).unwrap();
            for (h, e) in [(0x7bffu16, 140u8), (0x0001, 0), (0xfbff, 1), (0x3c00, 127)] {
                let mut ones = vec![0xffu8; nb * ts];
                for b in ones.chunks_exact_mut(ts) {
                    match f16_scale_at(ty) {
                        Some(o) => b[o..o + 2].copy_from_slice(&h.to_le_bytes()),
                        None => b[0] = e,
                    }
                }
                for (w, a) in [(&zero, &a), (&ones, &a0), (&ones, &a), (&ones, &amax)] {
                    check_same(ty, n, w, a).unwrap();
                }
            }
        }
    }
}

/// The AVX-512 level runs these 512-bit kernels, not the AVX2 ones (else the properties above
/// would compare a kernel with itself).
#[test]
fn z512_more_kernels_present() {
    if !has_avx512() {
        return;
    }
    for ty in TYPES {
        let f2 = dot_fn_at(Level::Avx2, ty).unwrap() as usize;
        let f5 = dot_fn_at(Level::Avx512, ty).unwrap() as usize;
        assert_ne!(f2, f5, "{ty:?}: the AVX-512 level is the AVX2 kernel");
    }
}
