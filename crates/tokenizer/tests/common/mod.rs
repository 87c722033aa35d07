//! Shared helpers for the oracle tests: where the fixtures live, and a fail-loudly loader.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ferrite_tokenizer::Tokenizer;

/// `shared/refdata/<sub>`; panics (never skips) when the oracles are absent.
pub fn refdata(sub: &str) -> PathBuf {
    let p = ferrite_testdata::refdata_dir().join(sub);
    assert!(
        p.exists(),
        "oracle {} is missing: the read-only oracles live in shared/refdata beside the checkout \
         (set FERRITE_REFDATA)",
        p.display()
    );
    p
}

pub fn load(path: &Path) -> Tokenizer {
    Tokenizer::open(path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read oracle {}: {e}", path.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an id list, got {v}"))
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}
