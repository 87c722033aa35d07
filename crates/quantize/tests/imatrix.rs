//! Importance matrices: llama.cpp's GGUF layout round-trips, and quantize --imatrix feeds
//! `in_sum2 / counts` to ggml's importance-weighted quantizers.
//! Oracles: ferrite-quants' `quantize_row_imatrix` (bit-exact with ggml's `quantize_<type>`)
//! with weights computed here; llama-quantize's `quantize.imatrix.*` metadata keys.

use std::collections::BTreeMap;

use ferrite_gguf::{GgmlType, GgufFile};
use ferrite_quantize::imatrix::Stat;
use ferrite_quantize::{quantize_file, FileType, Imatrix, Params};
use ferrite_testdata::refdata_dir;

#[test]
fn imatrix_round_trip_and_weighted_quantization() {
    let src_path = refdata_dir().join("hf-tiny/llama-f32/llama-f32-f32.gguf");
    let src = GgufFile::open(&src_path).unwrap();
    let mut stats = BTreeMap::new();
    for t in src.tensors() {
        if t.dims.len() == 2 && t.name.starts_with("blk.") {
            let n = t.dims[0] as usize;
            let in_sum2 = (0..n).map(|i| 1.0 + ((i * 13) % 7) as f32 * 3.0).collect();
            stats.insert(
                t.name.clone(),
                Stat {
                    in_sum2,
                    counts: vec![4.0],
                },
            );
        }
    }
    let im = Imatrix {
        stats,
        datasets: vec!["GPL-3".into()],
        chunk_count: 3,
        chunk_size: 512,
    };
    let dir = tempfile::tempdir().unwrap();
    let im_path = dir.path().join("imatrix.gguf");
    im.save(&im_path).unwrap();
    let back = Imatrix::load(&im_path).unwrap();
    assert_eq!(back, im);
    let f = GgufFile::open(&im_path).unwrap();
    assert_eq!(f.get::<&str>("general.type").unwrap(), "imatrix");
    let name = im.stats.keys().next().unwrap();
    assert!(
        f.tensor_info(&format!("{name}.in_sum2")).is_some()
            && f.tensor_info(&format!("{name}.counts")).is_some()
    );

    let out = dir.path().join("q.gguf");
    let mut p = Params::new(FileType::Q5_0);
    p.n_threads = 2;
    p.imatrix = Some(("imatrix.gguf".into(), back));
    quantize_file(&src_path, &out, &p, |_| {}).unwrap();
    let q = GgufFile::open(&out).unwrap();
    assert_eq!(
        q.get::<&str>("quantize.imatrix.file").unwrap(),
        "imatrix.gguf"
    );
    assert_eq!(q.get::<&str>("quantize.imatrix.dataset").unwrap(), "GPL-3");
    assert_eq!(
        q.get::<u32>("quantize.imatrix.entries_count").unwrap(),
        im.stats.len() as u32
    );
    assert_eq!(q.get::<u32>("quantize.imatrix.chunks_count").unwrap(), 3);
    let weights = im.weights().unwrap();
    let mut n_checked = 0;
    for (name, w) in &weights {
        let s = src.tensor_info(name).unwrap();
        let t = q.tensor_info(name).unwrap();
        assert_eq!(t.ty, GgmlType::Q5_0, "{name}");
        let n = s.dims[0] as usize;
        let rb = t.ty.row_size(n as u64).unwrap() as usize;
        let mut row = vec![0f32; n];
        let mut want = vec![0u8; rb];
        let mut plain = vec![0u8; rb];
        let mut differs_from_plain = false;
        for (a, b) in src.data_of(s).chunks(n * 4).zip(q.data_of(t).chunks(rb)) {
            ferrite_quants::dequantize_row(GgmlType::F32, a, &mut row).unwrap();
            ferrite_quants::quantize_row_imatrix(t.ty, &row, &mut want, Some(w)).unwrap();
            assert!(
                want == b,
                "{name}: row differs from the imatrix-weighted reference"
            );
            ferrite_quants::quantize_row(t.ty, &row, &mut plain).unwrap();
            differs_from_plain |= plain != want;
        }
        assert!(
            differs_from_plain,
            "{name}: the weights changed nothing, so the test proves nothing"
        );
        n_checked += 1;
    }
    assert!(n_checked > 0);
}
