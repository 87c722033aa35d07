//! IQ / ternary / MXFP4 types against ggml's own outputs.
//!
//! Oracles:
//! - `refdata/ggml-quants/T.ggml.bin`: `ggml_quantize_chunk(T, input_f32, 16 rows x 256, imatrix
//!   NULL)` — our quantizer must match **byte for byte**;
//! - `T.ggml.dequant.f32`: ggml's `to_float` of those bytes — our dequantizer must match
//!   **bit for bit**;
//! - `ggml_ref.json` `row_dots[r]`: ggml's CPU `vec_dot` (its SIMD path) of weight row r with
//!   `T.act.V.bin` row r — ours within **1e-3 relative** (scale `max(|x|, 1)`), for both the
//!   dispatching `vec_dot` and the scalar `vec_dot_ref`;
//! - `refdata/hf-tiny/gguf-quants/*.bin` / `*.dequant.npy`: gguf-py's numpy port of ggml
//!   (quantized bytes for TQ1_0/TQ2_0/MXFP4, seeded random blocks for the IQ types) — dequant
//!   bit for bit, quantize byte for byte.

mod b_util;
use b_util::*;
use ferrite_quants::{kernels, GgmlType};

const ROWS: usize = 16;
const N: usize = 256;

fn act_type(name: &str) -> GgmlType {
    GgmlType::from_name(name).unwrap_or_else(|| panic!("unknown activation type {name}"))
}

/// Quantize, dequantize and vec_dot of one type against ggml-quants.
fn check_ggml_quants(name: &str, ty: GgmlType) {
    let x = input();
    let want_q = read(&format!("ggml-quants/{name}.ggml.bin"));
    let got_q = quantize_rows(ty, &x, N);
    assert_eq!(got_q.len(), want_q.len(), "{name}: quantized size");
    if let Some(i) = first_byte_diff(&got_q, &want_q) {
        let rb = ty.row_size(N as u64).unwrap() as usize;
        panic!(
            "{name}: quantized bytes differ from ggml at byte {i} (row {}, block {}, offset {}): got {:#04x}, want {:#04x}",
            i / rb,
            (i % rb) / ty.type_size(),
            (i % rb) % ty.type_size(),
            got_q[i],
            want_q[i]
        );
    }

    let want_dq = read_f32_raw(&format!("ggml-quants/{name}.ggml.dequant.f32"));
    let got_dq = dequantize_all(ty, &want_q);
    if let Some((i, g, w)) = first_bit_diff(&got_dq, &want_dq) {
        panic!("{name}: dequant differs from ggml at {i}: got {g:e}, want {w:e}");
    }

    let (vdt_name, dots) = ggml_ref(name);
    let k = kernels(ty).unwrap();
    let vdt = act_type(&vdt_name);
    assert_eq!(k.vec_dot_type, vdt, "{name}: vec_dot_type");
    let act = read(&format!("ggml-quants/{name}.act.{vdt_name}.bin"));
    let rb = ty.row_size(N as u64).unwrap() as usize;
    let ab = vdt.row_size(N as u64).unwrap() as usize;
    assert_eq!(act.len(), ROWS * ab);
    for r in 0..ROWS {
        let w = &want_q[r * rb..(r + 1) * rb];
        let a = &act[r * ab..(r + 1) * ab];
        let got = ferrite_quants::vec_dot(ty, N, w, a).unwrap() as f64;
        let got_ref = (k.vec_dot_ref)(N, w, a) as f64;
        assert!(
            close(got, dots[r], 1e-3),
            "{name} row {r}: vec_dot {got} vs ggml {}",
            dots[r]
        );
        assert!(
            close(got_ref, dots[r], 1e-3),
            "{name} row {r}: vec_dot_ref {got_ref} vs ggml {}",
            dots[r]
        );
    }
}

#[test]
fn iq4_nl_matches_ggml() {
    check_ggml_quants("iq4_nl", GgmlType::IQ4_NL);
}

#[test]
fn iq4_xs_matches_ggml() {
    check_ggml_quants("iq4_xs", GgmlType::IQ4_XS);
}

#[test]
fn iq3_xxs_matches_ggml() {
    check_ggml_quants("iq3_xxs", GgmlType::IQ3_XXS);
}

#[test]
fn iq3_s_matches_ggml() {
    check_ggml_quants("iq3_s", GgmlType::IQ3_S);
}

#[test]
fn iq2_s_matches_ggml() {
    check_ggml_quants("iq2_s", GgmlType::IQ2_S);
}

#[test]
fn tq1_0_matches_ggml() {
    check_ggml_quants("tq1_0", GgmlType::TQ1_0);
}

#[test]
fn tq2_0_matches_ggml() {
    check_ggml_quants("tq2_0", GgmlType::TQ2_0);
}

/// Dequantize `hf-tiny/gguf-quants/<file>.bin` and compare bit for bit with `<file>.dequant.npy`.
fn check_hf_dequant(file: &str, ty: GgmlType) {
    let b = read(&format!("hf-tiny/gguf-quants/{file}.bin"));
    let want = read_npy_f32(&format!("hf-tiny/gguf-quants/{file}.dequant.npy"));
    assert_eq!(
        b.len() / ty.type_size() * ty.block_size(),
        want.len(),
        "{file}: size"
    );
    let got = dequantize_all(ty, &b);
    if let Some((i, g, w)) = first_bit_diff(&got, &want) {
        panic!("{file}: dequant differs at {i}: got {g:e}, want {w:e}");
    }
}

#[test]
fn hf_random_blocks_dequantize_bit_exact() {
    for (file, ty) in [
        ("IQ1_M.random", GgmlType::IQ1_M),
        ("IQ1_S.random", GgmlType::IQ1_S),
        ("IQ2_S.random", GgmlType::IQ2_S),
        ("IQ2_XS.random", GgmlType::IQ2_XS),
        ("IQ2_XXS.random", GgmlType::IQ2_XXS),
        ("IQ3_S.random", GgmlType::IQ3_S),
        ("IQ3_XXS.random", GgmlType::IQ3_XXS),
        ("IQ4_NL.random", GgmlType::IQ4_NL),
        ("IQ4_XS.random", GgmlType::IQ4_XS),
    ] {
        check_hf_dequant(file, ty);
    }
}

#[test]
fn hf_ternary_and_mxfp4_quantize_and_dequantize_bit_exact() {
    let x = input();
    for (file, ty) in [
        ("TQ1_0", GgmlType::TQ1_0),
        ("TQ2_0", GgmlType::TQ2_0),
        ("MXFP4", GgmlType::MXFP4),
    ] {
        let want = read(&format!("hf-tiny/gguf-quants/{file}.bin"));
        let got = quantize_rows(ty, &x, N);
        if let Some(i) = first_byte_diff(&got, &want) {
            panic!(
                "{file}: quantized bytes differ at {i}: got {:#04x}, want {:#04x}",
                got[i], want[i]
            );
        }
        check_hf_dequant(file, ty);
    }
}

/// vec_dot of the random IQ blocks (and MXFP4) with a Q8 activation row: ggml's integer dot
/// products are exact, so the only error is float rounding — oracle is the f64 dot of the
/// dequantized operands, tolerance 1e-4 of Σ|w·a|.
#[test]
fn vec_dot_matches_f64_dot_of_dequantized_operands() {
    let act_f = read_npy_f32("ggml-quants/act_f32.npy");
    for (file, ty) in [
        ("IQ1_M.random", GgmlType::IQ1_M),
        ("IQ1_S.random", GgmlType::IQ1_S),
        ("IQ2_S.random", GgmlType::IQ2_S),
        ("IQ2_XS.random", GgmlType::IQ2_XS),
        ("IQ2_XXS.random", GgmlType::IQ2_XXS),
        ("IQ3_S.random", GgmlType::IQ3_S),
        ("IQ3_XXS.random", GgmlType::IQ3_XXS),
        ("IQ4_NL.random", GgmlType::IQ4_NL),
        ("IQ4_XS.random", GgmlType::IQ4_XS),
        ("MXFP4", GgmlType::MXFP4),
        ("TQ1_0", GgmlType::TQ1_0),
        ("TQ2_0", GgmlType::TQ2_0),
    ] {
        let w = read(&format!("hf-tiny/gguf-quants/{file}.bin"));
        let k = kernels(ty).unwrap();
        let n = w.len() / ty.type_size() * ty.block_size();
        let x = &act_f[..n];
        let mut act = vec![0u8; ferrite_quants::row_bytes(k.vec_dot_type, n).unwrap()];
        ferrite_quants::quantize_row(k.vec_dot_type, x, &mut act).unwrap();
        let (want, mag) = f64_dot(ty, &w, k.vec_dot_type, &act);
        let got = ferrite_quants::vec_dot(ty, n, &w, &act).unwrap() as f64;
        let got_ref = (k.vec_dot_ref)(n, &w, &act) as f64;
        let tol = 1e-4 * mag.max(1.0);
        assert!(
            (got - want).abs() <= tol,
            "{file}: vec_dot {got} vs f64 {want} (tol {tol})"
        );
        assert!(
            (got_ref - want).abs() <= tol,
            "{file}: vec_dot_ref {got_ref} vs f64 {want} (tol {tol})"
        );
    }
}

/// Kernel-table entries: each type names itself and the activation type ggml pairs it with
/// (oracle: ggml-cpu's `type_traits_cpu[T].vec_dot_type`), and quantize_row is present exactly
/// where ggml quantizes without an imatrix.
#[test]
fn kernel_table_matches_ggml_type_traits() {
    use GgmlType::*;
    for (ty, vdt, has_plain_quant) in [
        (IQ4_NL, Q8_0, true),
        (IQ4_XS, Q8_K, true),
        (IQ3_XXS, Q8_K, true),
        (IQ3_S, Q8_K, true),
        (IQ2_S, Q8_K, true),
        (IQ2_XXS, Q8_K, false),
        (IQ2_XS, Q8_K, false),
        (IQ1_S, Q8_K, false),
        (IQ1_M, Q8_K, false),
        (TQ1_0, Q8_K, true),
        (TQ2_0, Q8_K, true),
        (MXFP4, Q8_0, true),
    ] {
        let k = kernels(ty).unwrap();
        assert_eq!(k.ty, ty);
        assert_eq!(k.vec_dot_type, vdt, "{ty}");
        assert_eq!(k.quantize_row.is_some(), has_plain_quant, "{ty}");
    }
}
