//! `ferrite inspect --json --full` against the reference reader: the `gguf` Python package
//! (PyPI, installed by scripts/test.sh) dumping the same file through scripts/gguf_py_dump.py.
//! Metadata values, types, tensor names, types, shapes, sizes and offsets must be equal
//! (f32 values compared after rounding both to f32).

use std::path::Path;
use std::process::Command;

use ferrite_testdata::{workspace_root, Model};
use serde_json::Value;

fn ferrite(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .output()
        .expect("run ferrite")
}

fn gguf_py(path: &Path) -> Value {
    let script = workspace_root().join("scripts/gguf_py_dump.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "reference dump failed (install the reference reader: `python3 -m pip install gguf==0.19.0`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn same_value(ty: &str, ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) if ty.contains("f32") => {
            a.as_f64().map(|x| x as f32) == b.as_f64().map(|x| x as f32)
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(ty, x, y))
        }
        _ => ours == theirs,
    }
}

fn compare(path: &Path) {
    let out = ferrite(&["inspect", "--json", "--full", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs = gguf_py(path);
    for k in ["version", "alignment", "data_offset"] {
        assert_eq!(ours[k], theirs[k], "{}: {k}", path.display());
    }
    let (om, tm) = (
        ours["metadata"].as_array().unwrap(),
        theirs["metadata"].as_array().unwrap(),
    );
    assert_eq!(om.len(), tm.len(), "{}: metadata count", path.display());
    for (o, t) in om.iter().zip(tm) {
        assert_eq!(o["key"], t["key"]);
        assert_eq!(o["type"], t["type"], "{}", o["key"]);
        let ty = o["type"].as_str().unwrap();
        assert!(
            same_value(ty, &o["value"], &t["value"]),
            "{}: {} differs",
            path.display(),
            o["key"]
        );
    }
    let (ot, tt) = (
        ours["tensors"].as_array().unwrap(),
        theirs["tensors"].as_array().unwrap(),
    );
    assert_eq!(ot.len(), tt.len());
    for (o, t) in ot.iter().zip(tt) {
        for k in ["name", "type", "shape", "n_bytes", "offset"] {
            assert_eq!(o[k], t[k], "{}: tensor {} {k}", path.display(), o["name"]);
        }
    }
}

#[test]
fn inspect_matches_gguf_py_on_real_models() {
    for m in Model::GGUF {
        compare(&m.path());
    }
}

#[test]
fn inspect_text_summarises_and_totals() {
    let p = Model::SmolLM2.path();
    let out = ferrite(&["inspect", p.to_str().unwrap()]);
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    // Oracle: refdata/llamacpp/*/model_info.json (n_params, tensor count, data offset).
    let info: Value = serde_json::from_slice(
        &std::fs::read(Model::SmolLM2.refdata().join("model_info.json")).unwrap(),
    )
    .unwrap();
    assert!(
        s.contains(&format!("tensor data at byte {}", info["data_offset"])),
        "{s}"
    );
    assert!(s.contains(&format!("tensors ({})", info["n_tensors"])));
    assert!(
        s.contains(&format!("{} params", info["n_params"]))
            || s.contains(&info["n_params"].to_string())
    );
    assert!(s.contains("(49152 items)"), "long arrays are summarised");
}

#[test]
fn inspect_bad_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("ferrite-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("junk.gguf");
    std::fs::write(&p, b"definitely not gguf").unwrap();
    let out = ferrite(&["inspect", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("junk.gguf") && err.contains("not a GGUF file"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
