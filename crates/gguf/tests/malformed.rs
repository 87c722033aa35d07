//! Malformed input never panics and never allocates beyond the file: every prefix of a small
//! valid file, flipped bytes, huge counts and lengths, bad offsets and alignment, unknown
//! types. Oracle: `GgufFile::from_bytes` returns `Err` (or, for flips that keep the file
//! valid, `Ok`) — never a panic.

use ferrite_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value, ValueType};

/// A small file exercising every value type, nested arrays and three tensors.
fn sample() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.gguf");
    let mut w = GgufWriter::new(&p);
    w.add_kv("general.architecture", "llama");
    w.add_kv("u8", 7u8);
    w.add_kv("i8", -7i8);
    w.add_kv("u16", 700u16);
    w.add_kv("i16", -700i16);
    w.add_kv("u32", 70000u32);
    w.add_kv("i32", -70000i32);
    w.add_kv("f32", 1.5f32);
    w.add_kv("bool", true);
    w.add_kv("u64", 1u64 << 40);
    w.add_kv("i64", -(1i64 << 40));
    w.add_kv("f64", 2.25f64);
    w.add_kv("strs", Value::strings(["a", "bc", ""]));
    w.add_kv(
        "ints",
        Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(-2)]),
    );
    w.add_kv(
        "nested",
        Value::Array(
            ValueType::Array,
            vec![
                Value::Array(ValueType::U8, vec![Value::U8(1)]),
                Value::Array(ValueType::String, vec![Value::from("x")]),
            ],
        ),
    );
    w.add_tensor("a", GgmlType::F32, &[4, 2]).unwrap();
    w.add_tensor("b", GgmlType::Q8_0, &[32]).unwrap();
    w.add_tensor("c", GgmlType::F16, &[3]).unwrap();
    let mut d = w.begin_data().unwrap();
    d.write_tensor("a", &[1u8; 32]).unwrap();
    d.write_tensor("b", &[2u8; 34]).unwrap();
    d.write_tensor("c", &[3u8; 6]).unwrap();
    d.finish().unwrap();
    std::fs::read(&p).unwrap()
}

#[test]
fn sample_is_valid_and_typed_access_works() {
    let f = GgufFile::from_bytes(sample()).unwrap();
    assert_eq!(f.get::<u32>("u32").unwrap(), 70000);
    assert_eq!(f.get::<u64>("u32").unwrap(), 70000, "lossless widening");
    assert!(matches!(
        f.get::<u8>("u32"),
        Err(GgufError::TypeMismatch { .. })
    ));
    assert!(matches!(f.get::<u32>("missing"), Err(GgufError::KeyNotFound(k)) if k == "missing"));
    assert_eq!(f.get::<i64>("i64").unwrap(), -(1 << 40));
    assert_eq!(f.get::<&str>("general.architecture").unwrap(), "llama");
    assert!(f.get::<bool>("bool").unwrap());
    assert_eq!(f.get::<f32>("f32").unwrap(), 1.5);
    let strs: Vec<&[u8]> = f.get_array("strs").unwrap().strings().unwrap().collect();
    assert_eq!(strs, vec![&b"a"[..], b"bc", b""]);
    assert_eq!(
        f.get_array("ints").unwrap().to_vec::<i32>().unwrap(),
        vec![1, -2]
    );
    assert_eq!(
        f.get_array("nested").unwrap().type_name(),
        "array[array[u8]]"
    );
    assert_eq!(f.tensor_data("b").unwrap(), &[2u8; 34][..]);
    assert_eq!(f.tensor_info("c").unwrap().n_bytes, 6);
    assert_eq!(f.tensor_info("b").unwrap().offset % 32, 0);
}

#[test]
fn every_prefix_is_an_error() {
    let full = sample();
    // Trailing padding after the last tensor is optional; everything before its end is needed.
    let f = GgufFile::from_bytes(full.clone()).unwrap();
    let needed = f
        .tensors()
        .iter()
        .map(|t| f.data_offset() + t.offset + t.n_bytes)
        .max()
        .unwrap();
    assert!(needed < full.len() as u64);
    for n in needed as usize..=full.len() {
        assert!(
            GgufFile::from_bytes(full[..n].to_vec()).is_ok(),
            "prefix {n}"
        );
    }
    for n in 0..needed as usize {
        let r = GgufFile::from_bytes(full[..n].to_vec());
        assert!(r.is_err(), "prefix of {n} of {} bytes parsed", full.len());
    }
}

#[test]
fn every_flipped_byte_is_handled() {
    let full = sample();
    // Only the header region matters (tensor data is opaque); flip each byte three ways.
    let f = GgufFile::from_bytes(full.clone()).unwrap();
    for i in 0..f.data_offset() as usize {
        for x in [0xffu8, 0x80, 0x01] {
            let mut b = full.clone();
            b[i] ^= x;
            let _ = GgufFile::from_bytes(b).map(|f| {
                // If it still parses, every accessor must stay in bounds.
                for (_, v) in f.metadata() {
                    if let Some(a) = v.as_array() {
                        let _ = a.iter().count();
                    }
                }
                for t in f.tensors() {
                    let _ = f.data_of(t).len();
                }
            });
        }
    }
}

fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

fn kv(b: &mut Vec<u8>, key: &str, ty: u32, payload: &[u8]) {
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(payload);
}

fn err(b: Vec<u8>) -> String {
    match GgufFile::from_bytes(b) {
        Ok(_) => panic!("malformed file parsed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn huge_counts_and_lengths() {
    let e = err(header(3, 1 << 63, 0));
    assert!(e.contains("tensor count"), "{e}");
    let e = err(header(3, 0, u64::MAX));
    assert!(e.contains("metadata count"), "{e}");
    // A 2^40-byte string value.
    let mut b = header(3, 0, 1);
    kv(&mut b, "k", 8, &(1u64 << 40).to_le_bytes());
    let e = err(b);
    assert!(e.contains("truncated") && e.contains("'k'"), "{e}");
    // A 2^40-byte key.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    b.extend_from_slice(&[0u8; 64]);
    assert!(err(b).contains("key of metadata entry 0"));
    // An array of 2^62 u64 (overflowing byte count) and of 2^60 strings.
    let mut b = header(3, 0, 1);
    let mut p = 10u32.to_le_bytes().to_vec();
    p.extend_from_slice(&(1u64 << 62).to_le_bytes());
    kv(&mut b, "arr", 9, &p);
    assert!(err(b).contains("'arr'"));
    let mut b = header(3, 0, 1);
    let mut p = 8u32.to_le_bytes().to_vec();
    p.extend_from_slice(&(1u64 << 60).to_le_bytes());
    kv(&mut b, "arr", 9, &p);
    assert!(err(b).contains("'arr'"));
}

#[test]
fn versions_and_magic() {
    assert!(err(b"GGML\x03\0\0\0".to_vec()).contains("not a GGUF file"));
    assert!(err(header(1, 0, 0)).contains("version 1"));
    let mut be = b"GGUF".to_vec();
    be.extend_from_slice(&3u32.to_be_bytes());
    be.extend_from_slice(&[0u8; 16]);
    assert!(err(be).contains("big-endian"));
    assert!(err(header(4, 0, 0)).contains("version 4"));
    assert!(GgufFile::from_bytes(header(2, 0, 0)).is_ok());
}

#[test]
fn unknown_value_types_and_bad_bools() {
    let mut b = header(3, 0, 1);
    kv(&mut b, "k", 13, &[0; 8]);
    assert!(err(b).contains("unknown value type 13"));
    let mut b = header(3, 0, 1);
    let mut p = 99u32.to_le_bytes().to_vec();
    p.extend_from_slice(&1u64.to_le_bytes());
    kv(&mut b, "k", 9, &p);
    assert!(err(b).contains("unknown array element type 99"));
    let mut b = header(3, 0, 1);
    kv(&mut b, "k", 7, &[2]);
    assert!(err(b).contains("neither 0 nor 1"));
}

#[test]
fn deep_nesting_is_refused() {
    let mut b = header(3, 0, 1);
    let mut p = Vec::new();
    for _ in 0..100 {
        p.extend_from_slice(&9u32.to_le_bytes());
        p.extend_from_slice(&1u64.to_le_bytes());
    }
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    kv(&mut b, "deep", 9, &p);
    assert!(err(b).contains("nested deeper"));
}

fn tensor(b: &mut Vec<u8>, name: &str, dims: &[u64], ty: u32, offset: u64) {
    b.extend_from_slice(&(name.len() as u64).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
}

fn with_data(mut b: Vec<u8>, data: usize) -> Vec<u8> {
    let padded = b.len().div_ceil(32) * 32;
    b.resize(padded + data, 0);
    b
}

#[test]
fn bad_tensor_infos() {
    let one = |name: &str, dims: &[u64], ty: u32, off: u64, data: usize| {
        let mut b = header(3, 1, 0);
        tensor(&mut b, name, dims, ty, off);
        err(with_data(b, data))
    };
    assert!(one("t", &[4], 0, 64, 16).contains("past the end"));
    assert!(one("t", &[4], 0, 3, 64).contains("alignment"));
    assert!(one("t", &[4], 77, 0, 16).contains("unknown ggml type id 77"));
    assert!(one("t", &[32], 31, 0, 64).contains("Q4_0_4_4 (type 31)"));
    assert!(one("t", &[33], 2, 0, 64).contains("block size"));
    assert!(one("t", &[1 << 32, 1 << 32], 0, 0, 16).contains("overflows"));
    assert!(one("t", &[1, 1, 1, 1, 1], 0, 0, 16).contains("5 dimensions"));
    // Valid single tensor for contrast.
    let mut b = header(3, 1, 0);
    tensor(&mut b, "t", &[4], 0, 0);
    assert!(GgufFile::from_bytes(with_data(b, 16)).is_ok());
    // Duplicate names.
    let mut b = header(3, 2, 0);
    tensor(&mut b, "t", &[4], 0, 0);
    tensor(&mut b, "t", &[4], 0, 32);
    assert!(err(with_data(b, 64)).contains("duplicate tensor"));
}

#[test]
fn bad_alignment() {
    for (ty, payload, want) in [
        (4u32, 3u32.to_le_bytes().to_vec(), "power of two"),
        (4, 0u32.to_le_bytes().to_vec(), "power of two"),
        (10, 32u64.to_le_bytes().to_vec(), "must be a u32"),
    ] {
        let mut b = header(3, 0, 1);
        kv(&mut b, "general.alignment", ty, &payload);
        let e = err(b);
        assert!(e.contains(want) && e.contains("general.alignment"), "{e}");
    }
    let mut b = header(3, 0, 1);
    kv(&mut b, "general.alignment", 4, &64u32.to_le_bytes());
    assert_eq!(GgufFile::from_bytes(b).unwrap().alignment(), 64);
}

#[test]
fn duplicate_keys() {
    let mut b = header(3, 0, 2);
    kv(&mut b, "k", 4, &1u32.to_le_bytes());
    kv(&mut b, "k", 4, &2u32.to_le_bytes());
    assert!(err(b).contains("duplicate metadata key 'k'"));
}

#[test]
fn open_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.gguf");
    std::fs::write(&p, b"GGUF").unwrap();
    let e = GgufFile::open(&p).err().unwrap().to_string();
    assert!(e.contains("bad.gguf") && e.contains("truncated"), "{e}");
    let p = dir.path().join("empty.gguf");
    std::fs::write(&p, b"").unwrap();
    assert!(GgufFile::open(&p).is_err());
}

#[test]
fn writer_never_leaves_half_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.gguf");
    let mut w = GgufWriter::new(&p);
    w.add_tensor("a", GgmlType::F32, &[4]).unwrap();
    w.add_tensor("b", GgmlType::F32, &[4]).unwrap();
    let mut d = w.begin_data().unwrap();
    d.write_tensor("a", &[0; 16]).unwrap();
    assert!(d.write_tensor("b", &[0; 15]).is_err(), "wrong size refused");
    assert!(d.finish().is_err(), "b never written");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no file left behind: {left:?}");
    assert!(!p.exists());
}
