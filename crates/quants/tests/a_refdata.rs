//! Bit-exactness against ggml's own outputs (refdata/ggml-quants) and the gguf python package
//! (refdata/hf-tiny/gguf-quants) for the float, legacy and K-quant types.
mod a_util;
use a_util::*;
use ferrite_quants::{dequantize_row, kernels, quantize_row, row_bytes, vec_dot, GgmlType};

const MINE: &[&str] = &[
    "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "f16", "bf16",
];

fn ty(name: &str) -> GgmlType {
    GgmlType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"))
}

/// Oracle: `T.ggml.bin` = ggml_quantize_chunk(T, input_f32, imatrix=NULL). Tolerance: none
/// (byte-identical), for every one of our types in ggml_ref.json, all 16 rows.
#[test]
fn quantize_matches_ggml_bytes() {
    let input = read_npy_f32("hf-tiny/gguf-quants/input_f32.npy");
    assert_eq!(input.len(), 4096);
    let mut failures = vec![];
    let refs = ggml_ref();
    for name in MINE {
        assert!(
            refs.iter().any(|e| e.name == *name),
            "{name} missing from ggml_ref.json"
        );
        let t = ty(name);
        let want = read(&format!("ggml-quants/{name}.ggml.bin"));
        let rb = row_bytes(t, 256).unwrap();
        assert_eq!(want.len(), 16 * rb, "{name}: file size");
        for r in 0..16 {
            let mut got = vec![0u8; rb];
            quantize_row(t, &input[r * 256..(r + 1) * 256], &mut got).unwrap();
            if got != want[r * rb..(r + 1) * rb] {
                let first = got
                    .iter()
                    .zip(&want[r * rb..])
                    .position(|(a, b)| a != b)
                    .unwrap();
                failures.push(format!("{name} row {r}: first differing byte {first}"));
            }
            // With no imatrix the imatrix entry point must take ggml's reference path too.
            let mut got2 = vec![0u8; rb];
            ferrite_quants::quantize_row_imatrix(
                t,
                &input[r * 256..(r + 1) * 256],
                &mut got2,
                None,
            )
            .unwrap();
            assert_eq!(
                got, got2,
                "{name} row {r}: imatrix=None differs from reference quantizer"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "quantize mismatches:\n{}",
        failures.join("\n")
    );
}

/// Oracle: `T.ggml.dequant.f32` = ggml to_float of `T.ggml.bin`. Tolerance: bit-identical f32.
#[test]
fn dequantize_matches_ggml_bits() {
    for name in MINE {
        let t = ty(name);
        let bytes = read(&format!("ggml-quants/{name}.ggml.bin"));
        let want = read_f32_raw(&format!("ggml-quants/{name}.ggml.dequant.f32"));
        let mut got = vec![0f32; 4096];
        dequantize_row(t, &bytes, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{name} element {i}: {g} vs {w}");
        }
    }
}

/// Oracle: ggml_ref.json `row_dots[r]` = ggml's CPU vec_dot (its SIMD path) of weight row r with
/// `T.act.V.bin` row r. Tolerance: |ours - ggml| <= 1e-3 * max(|ggml|, 1). Checks both the
/// dispatched kernel and the scalar reference, using the activation bytes from the file.
#[test]
fn vec_dot_matches_ggml_row_dots() {
    for e in ggml_ref()
        .iter()
        .filter(|e| MINE.contains(&e.name.as_str()))
    {
        let t = ty(&e.name);
        let k = kernels(t).unwrap();
        assert_eq!(
            k.vec_dot_type.name().to_lowercase(),
            e.vec_dot_type.to_lowercase(),
            "{}",
            e.name
        );
        let w = read(&format!("ggml-quants/{}.ggml.bin", e.name));
        let a = read(&format!(
            "ggml-quants/{}.act.{}.bin",
            e.name, e.vec_dot_type
        ));
        let (wb, ab) = (
            row_bytes(t, 256).unwrap(),
            row_bytes(k.vec_dot_type, 256).unwrap(),
        );
        for r in 0..16 {
            let (wr, ar) = (&w[r * wb..(r + 1) * wb], &a[r * ab..(r + 1) * ab]);
            let want = e.row_dots[r];
            let tol = 1e-3 * want.abs().max(1.0);
            let got = vec_dot(t, 256, wr, ar).unwrap() as f64;
            let got_ref = (k.vec_dot_ref)(256, wr, ar) as f64;
            assert!(
                (got - want).abs() <= tol,
                "{} row {r}: dispatched {got} vs ggml {want}",
                e.name
            );
            assert!(
                (got_ref - want).abs() <= tol,
                "{} row {r}: reference {got_ref} vs ggml {want}",
                e.name
            );
        }
    }
}

/// Oracle: refdata/hf-tiny/gguf-quants (gguf python package). `<T>.bin` must equal our quantize of
/// input_f32.npy byte for byte (where gguf can quantize), and our dequantize of `<T>.bin` /
/// `<T>.random.bin` must equal `<T>(.random).dequant.npy` bit for bit (tolerance: none).
#[test]
fn gguf_package_files() {
    let input = read_npy_f32("hf-tiny/gguf-quants/input_f32.npy");
    let quantizable = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"];
    for name in quantizable {
        let t = ty(name);
        let want = read(&format!("hf-tiny/gguf-quants/{name}.bin"));
        let mut got = vec![0u8; row_bytes(t, input.len()).unwrap()];
        quantize_row(t, &input, &mut got).unwrap();
        assert!(
            got == want,
            "{name}: quantize differs from gguf package bytes"
        );
        let deq = read_npy_f32(&format!("hf-tiny/gguf-quants/{name}.dequant.npy"));
        let mut out = vec![0f32; input.len()];
        dequantize_row(t, &want, &mut out).unwrap();
        for (i, (g, w)) in out.iter().zip(&deq).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{name} dequant element {i}: {g} vs {w}"
            );
        }
    }
    for name in ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"] {
        let t = ty(name);
        let bytes = read(&format!("hf-tiny/gguf-quants/{name}.random.bin"));
        let deq = read_npy_f32(&format!("hf-tiny/gguf-quants/{name}.random.dequant.npy"));
        assert_eq!(
            bytes.len() / t.type_size() * t.block_size(),
            deq.len(),
            "{name}: sizes"
        );
        let mut out = vec![0f32; deq.len()];
        dequantize_row(t, &bytes, &mut out).unwrap();
        for (i, (g, w)) in out.iter().zip(&deq).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{name} random dequant element {i}: {g} vs {w}"
            );
        }
    }
}
