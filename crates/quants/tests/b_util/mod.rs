//! Shared helpers for the `b_*` integration tests (IQ / ternary / MXFP4 types): locating the
//! refdata, a tiny .npy reader, and row helpers.
#![allow(dead_code)]

use ferrite_quants::GgmlType;
use std::path::PathBuf;

/// `<workspace root>/../shared/refdata` (workspace root = `CARGO_MANIFEST_DIR/../..`), or
/// `$FERRITE_REFDATA`. A missing refdata directory fails the test with a clear message.
pub fn refdata() -> PathBuf {
    let p = match std::env::var_os("FERRITE_REFDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/refdata"),
    };
    assert!(
        p.join("ggml-quants/ggml_ref.json").is_file() && p.join("hf-tiny/gguf-quants").is_dir(),
        "refdata not found at {} (set FERRITE_REFDATA to the shared/refdata directory)",
        p.display()
    );
    p
}

pub fn read(rel: &str) -> Vec<u8> {
    let p = refdata().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

pub fn read_f32_raw(rel: &str) -> Vec<f32> {
    let b = read(rel);
    assert_eq!(b.len() % 4, 0, "{rel}: not a whole number of f32");
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Minimal .npy reader: format version 1–3, dtype `<f4`, C order; returns the flat data.
pub fn read_npy_f32(rel: &str) -> Vec<f32> {
    let b = read(rel);
    assert_eq!(&b[..6], b"\x93NUMPY", "{rel}: not an .npy file");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).expect("npy header is not utf8");
    assert!(
        header.contains("'descr': '<f4'"),
        "{rel}: dtype is not <f4: {header}"
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{rel}: fortran order unsupported"
    );
    let data = &b[start + hlen..];
    assert_eq!(data.len() % 4, 0, "{rel}: truncated data");
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `(vec_dot_type name, row_dots)` of type `name` in `ggml-quants/ggml_ref.json`.
pub fn ggml_ref(name: &str) -> (String, Vec<f64>) {
    let v: serde_json::Value =
        serde_json::from_slice(&read("ggml-quants/ggml_ref.json")).expect("ggml_ref.json parse");
    let e = v
        .as_array()
        .expect("ggml_ref.json is a list")
        .iter()
        .find(|e| e["type"] == name)
        .unwrap_or_else(|| panic!("{name} missing from ggml_ref.json"));
    let dots = e["row_dots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    (e["vec_dot_type"].as_str().unwrap().to_string(), dots)
}

/// The 16×256 test input (`hf-tiny/gguf-quants/input_f32.npy`).
pub fn input() -> Vec<f32> {
    let x = read_npy_f32("hf-tiny/gguf-quants/input_f32.npy");
    assert_eq!(x.len(), 4096);
    x
}

/// Index and value of the first differing element, bitwise.
pub fn first_bit_diff(a: &[f32], b: &[f32]) -> Option<(usize, f32, f32)> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x.to_bits() != y.to_bits())
        .map(|(i, (x, y))| (i, *x, *y))
}

pub fn first_byte_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// Quantize `x` row by row (`n` per row) with the crate's no-imatrix entry point.
pub fn quantize_rows(ty: GgmlType, x: &[f32], n: usize) -> Vec<u8> {
    let rb = ferrite_quants::row_bytes(ty, n).unwrap();
    let mut out = vec![0u8; x.len() / n * rb];
    for (xr, yr) in x.chunks_exact(n).zip(out.chunks_exact_mut(rb)) {
        ferrite_quants::quantize_row(ty, xr, yr).unwrap();
    }
    out
}

pub fn dequantize_all(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / ty.type_size() * ty.block_size();
    let mut out = vec![0.0f32; n];
    ferrite_quants::dequantize_row(ty, bytes, &mut out).unwrap();
    out
}

/// `|got - want| <= rel * max(|want|, 1)`.
pub fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1.0)
}

/// Σ w_i a_i in f64 over dequantized weights and activations (an exact-math oracle for
/// vec_dot), plus Σ |w_i a_i| for scaling tolerances.
pub fn f64_dot(ty: GgmlType, w: &[u8], act_ty: GgmlType, act: &[u8]) -> (f64, f64) {
    let wf = dequantize_all(ty, w);
    let af = dequantize_all(act_ty, act);
    assert_eq!(wf.len(), af.len());
    let mut s = 0.0f64;
    let mut sa = 0.0f64;
    for (x, y) in wf.iter().zip(&af) {
        s += *x as f64 * *y as f64;
        sa += (*x as f64 * *y as f64).abs();
    }
    (s, sa)
}
