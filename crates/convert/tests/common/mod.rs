//! Shared helpers: convert a checkpoint into a temp dir and compare two GGUF files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ferrite_convert::{convert, ConvertOptions, ConvertReport, OutType};
use ferrite_gguf::{GgufFile, Value};

pub fn hf_tiny(model: &str) -> PathBuf {
    ferrite_testdata::refdata_dir().join("hf-tiny").join(model)
}

pub fn convert_to(dir: &Path, outtype: OutType, out_dir: &Path) -> ConvertReport {
    let output = out_dir.join(format!("out-{}.gguf", outtype.name()));
    let opts = ConvertOptions {
        input_dir: dir.to_owned(),
        output: Some(output),
        outtype,
        threads: 3,
        progress: false,
    };
    convert(&opts).unwrap_or_else(|e| panic!("converting {}: {e}", dir.display()))
}

pub fn metadata(f: &GgufFile) -> Vec<(String, Value)> {
    f.metadata()
        .map(|(k, v)| (k.to_owned(), v.to_owned_raw()))
        .collect()
}

fn short(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 300 {
        format!("{}…", &s[..300])
    } else {
        s
    }
}

/// Compare `ours` with llama.cpp's `oracle`: every metadata key and value (in llama.cpp's order)
/// except `exempt`, keys only we write must be exactly `extra`, and every tensor's name, type,
/// shape and data bytes, in order.
pub fn assert_same_gguf(ours: &Path, oracle: &Path, exempt: &[&str], extra: &[String]) {
    let a = GgufFile::open(ours).unwrap_or_else(|e| panic!("{}: {e}", ours.display()));
    let b = GgufFile::open(oracle).unwrap_or_else(|e| panic!("{}: {e}", oracle.display()));
    let ma: Vec<_> = metadata(&a)
        .into_iter()
        .filter(|(k, _)| !exempt.contains(&k.as_str()))
        .collect();
    let mb: Vec<_> = metadata(&b)
        .into_iter()
        .filter(|(k, _)| !exempt.contains(&k.as_str()))
        .collect();

    let ours_only: Vec<String> = ma
        .iter()
        .filter(|(k, _)| !mb.iter().any(|(kb, _)| kb == k))
        .map(|(k, _)| k.clone())
        .collect();
    let theirs_only: Vec<String> = mb
        .iter()
        .filter(|(k, _)| !ma.iter().any(|(ka, _)| ka == k))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        theirs_only.is_empty(),
        "{}: keys llama.cpp writes and we do not: {theirs_only:?}",
        ours.display()
    );
    let mut want_extra = extra.to_vec();
    want_extra.sort();
    let mut got_extra = ours_only.clone();
    got_extra.sort();
    assert_eq!(
        got_extra,
        want_extra,
        "{}: keys only we write",
        ours.display()
    );

    for (k, vb) in &mb {
        let va = &ma.iter().find(|(ka, _)| ka == k).expect("checked").1;
        assert!(
            va == vb,
            "{}: metadata {k}: ours {} vs llama.cpp {}",
            ours.display(),
            short(va),
            short(vb)
        );
    }
    let order_a: Vec<&String> = ma
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !extra.contains(k))
        .collect();
    let order_b: Vec<&String> = mb.iter().map(|(k, _)| k).collect();
    assert_eq!(order_a, order_b, "{}: metadata key order", ours.display());

    let ta = a.tensors();
    let tb = b.tensors();
    let na: Vec<&str> = ta.iter().map(|t| t.name.as_str()).collect();
    let nb: Vec<&str> = tb.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(na, nb, "{}: tensor names and order", ours.display());
    for (x, y) in ta.iter().zip(tb) {
        assert_eq!(
            (x.ty, &x.dims),
            (y.ty, &y.dims),
            "{}: tensor {} type/shape",
            ours.display(),
            x.name
        );
        let (da, db) = (a.data_of(x), b.data_of(y));
        if da != db {
            let first = da.iter().zip(db).position(|(p, q)| p != q).unwrap_or(0);
            panic!(
                "{}: tensor {} data differs from llama.cpp's (first differing byte {first} of {})",
                ours.display(),
                x.name,
                da.len()
            );
        }
    }
}
