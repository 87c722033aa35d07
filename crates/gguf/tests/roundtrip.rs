//! Round trip: reading a GGUF and writing it back with `copy_file` gives a byte-identical
//! file. Oracle: the original bytes (every GGUF under shared/refdata and the real models).

use std::path::{Path, PathBuf};

use ferrite_gguf::{copy_file, GgufFile, GgufModel};
use ferrite_testdata::{refdata_dir, Model};

fn ggufs_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            ggufs_under(&p, out);
        } else if p.extension().is_some_and(|x| x == "gguf") {
            out.push(p);
        }
    }
}

fn assert_round_trip(src: &Path) {
    let f = GgufFile::open(src).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("copy.gguf");
    copy_file(&f, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let a = std::fs::read(src).unwrap();
    let b = std::fs::read(&dst).unwrap();
    assert_eq!(a.len(), b.len(), "{}: size differs", src.display());
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!("{}: first difference at byte {i}", src.display());
    }
}

#[test]
fn refdata_ggufs_round_trip() {
    let mut files = Vec::new();
    ggufs_under(&refdata_dir(), &mut files);
    assert!(
        files.len() >= 20,
        "expected the refdata GGUFs, found {}",
        files.len()
    );
    for p in &files {
        assert_round_trip(p);
    }
}

#[test]
fn real_models_round_trip() {
    for m in Model::GGUF {
        assert_round_trip(&m.path());
    }
}

#[test]
fn shards_read_as_one_model() {
    // Split SmolLM2's tensors over three shards the way gguf-split names and tags them.
    let src = GgufFile::open(Model::SmolLM2.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("smol").to_str().unwrap().to_owned();
    let ts = src.tensors();
    let chunks: Vec<&[ferrite_gguf::TensorInfo]> = ts.chunks(ts.len().div_ceil(3)).collect();
    for (no, chunk) in chunks.iter().enumerate() {
        let mut w =
            ferrite_gguf::GgufWriter::new(ferrite_gguf::split_path(&prefix, no as u32 + 1, 3));
        if no == 0 {
            for (k, v) in src.metadata() {
                w.add_kv(k, v.to_owned_raw());
            }
        }
        w.add_kv("split.no", no as u16);
        w.add_kv("split.count", 3u16);
        w.add_kv("split.tensors.count", ts.len() as i32);
        for t in *chunk {
            w.add_tensor(t.name.clone(), t.ty, &t.dims).unwrap();
        }
        let mut d = w.begin_data().unwrap();
        for t in *chunk {
            d.write_tensor(&t.name, src.data_of(t)).unwrap();
        }
        d.finish().unwrap();
    }
    let m = GgufModel::open(ferrite_gguf::split_path(&prefix, 2, 3)).unwrap();
    assert_eq!(m.shards().len(), 3);
    assert_eq!(m.n_tensors(), ts.len());
    assert_eq!(
        m.meta().get::<&str>("general.architecture").unwrap(),
        "llama"
    );
    for t in ts {
        assert_eq!(
            m.tensor_data(&t.name).unwrap(),
            src.data_of(t),
            "{}",
            t.name
        );
    }
    // A missing shard is an error naming it.
    std::fs::remove_file(ferrite_gguf::split_path(&prefix, 3, 3)).unwrap();
    let e = GgufModel::open(ferrite_gguf::split_path(&prefix, 1, 3))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("00003-of-00003"), "{e}");
}

/// Releasing a tensor's pages (done after a model packs a copy) leaves its bytes readable and
/// unchanged: the map re-reads them from the file. Oracle: the bytes read before the release;
/// also for ranges past the tensor's end and on an in-memory file (a no-op there).
#[test]
fn released_pages_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.gguf");
    let mut w = ferrite_gguf::GgufWriter::new(&p);
    w.add_kv("general.architecture", "llama");
    w.add_tensor("big", ferrite_gguf::GgmlType::F32, &[64 * 1024])
        .unwrap();
    let data: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut d = w.begin_data().unwrap();
    d.write_tensor("big", &data).unwrap();
    d.finish().unwrap();
    let m = ferrite_gguf::GgufModel::open(&p).unwrap();
    assert_eq!(m.tensor_data("big").unwrap(), &data[..]);
    m.release_tensor_pages("big", 5000..100_000);
    m.release_tensor_pages("big", 0..usize::MAX);
    m.release_tensor_pages("missing", 0..10);
    assert_eq!(m.tensor_data("big").unwrap(), &data[..]);
    let f = ferrite_gguf::GgufFile::from_bytes(std::fs::read(&p).unwrap()).unwrap();
    let t = f.tensor_info("big").unwrap().clone();
    f.release_pages_of(&t, 0..usize::MAX);
    assert_eq!(f.data_of(&t), &data[..]);
}
