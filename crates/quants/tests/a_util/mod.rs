//! Shared helpers for the `a_*` integration tests: locating refdata and reading .npy files.
#![allow(dead_code)]

use std::path::PathBuf;

use ferrite_quants::GgmlType;

/// `<workspace>/../shared/refdata`, or `$FERRITE_REFDATA`. Panics (fails the test) if missing.
pub fn refdata() -> PathBuf {
    let p = match std::env::var_os("FERRITE_REFDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/refdata"),
    };
    assert!(
        p.join("ggml-quants/ggml_ref.json").is_file(),
        "refdata not found at {} (set FERRITE_REFDATA to the shared/refdata directory)",
        p.display()
    );
    p
}

pub fn read(rel: &str) -> Vec<u8> {
    let p = refdata().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Raw little-endian f32 file.
pub fn read_f32_raw(rel: &str) -> Vec<f32> {
    let b = read(rel);
    assert_eq!(b.len() % 4, 0, "{rel}: not a whole number of f32");
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Minimal .npy reader: version 1/2/3 header, dtype `<f4`, C order; returns the flat data.
pub fn read_npy_f32(rel: &str) -> Vec<f32> {
    let b = read(rel);
    assert_eq!(&b[..6], b"\x93NUMPY", "{rel}: not an .npy file");
    let major = b[6];
    let (hlen, start) = if major == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).expect("npy header utf8");
    assert!(
        header.contains("'descr': '<f4'"),
        "{rel}: dtype is not <f4: {header}"
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{rel}: fortran order unsupported"
    );
    let data = &b[start + hlen..];
    assert_eq!(data.len() % 4, 0);
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub struct RefEntry {
    pub name: String,
    pub vec_dot_type: String,
    pub row_dots: Vec<f64>,
}

/// `ggml-quants/ggml_ref.json`.
pub fn ggml_ref() -> Vec<RefEntry> {
    let v: serde_json::Value =
        serde_json::from_slice(&read("ggml-quants/ggml_ref.json")).expect("ggml_ref.json parse");
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| RefEntry {
            name: e["type"].as_str().unwrap().to_string(),
            vec_dot_type: e["vec_dot_type"].as_str().unwrap().to_string(),
            row_dots: e["row_dots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect(),
        })
        .collect()
}

/// Deterministic xorshift generator for test data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Roughly N(0,1) (sum of uniforms).
    pub fn normal(&mut self) -> f32 {
        let mut s = 0.0f32;
        for _ in 0..4 {
            s += (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        }
        (s - 2.0) * 1.732
    }
}

/// Offsets of the f16 scale fields inside one block (to patch random bytes into finite blocks).
pub fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}
