//! Producing one output tensor at a time: source bytes → f32 (with the architecture's rewrites)
//! → stored type, with the element and row work split over threads. Peak memory is the f32
//! copy of the tensor plus its encoded bytes.

use ferrite_gguf::GgmlType;

use crate::arch::{PlannedTensor, TensorSource, Transform};
use crate::error::{ConvertError, Result};
use crate::source::{float_size, to_f32, SrcTensor, Weights};

/// llama.cpp's storage rule (`prepare_tensors`): 1-D tensors, norms, MoE routers, position and
/// token-type embeddings and anything not named `.weight` stay F32; the rest takes the output
/// type, and a row that is not a whole number of Q8_0 blocks falls back to F16.
pub(crate) fn storage_type(name: &str, shape: &[usize], out: GgmlType) -> GgmlType {
    let always_f32 = shape.len() <= 1
        || name.ends_with("_norm.weight")
        || !name.ends_with(".weight")
        || name.ends_with(".ffn_gate_inp.weight")
        || name.ends_with(".ffn_gate_inp_shexp.weight")
        || name == "position_embd.weight"
        || name == "token_types.weight";
    if always_f32 {
        return GgmlType::F32;
    }
    let row = shape.last().copied().unwrap_or(0);
    if row % out.block_size() != 0 {
        return GgmlType::F16;
    }
    out
}

/// Run `f(first_index, chunk)` over `data` split into at most `threads` pieces of whole
/// `unit`-sized items.
fn par_chunks<T: Send, F>(data: &mut [T], unit: usize, threads: usize, f: F)
where
    F: Fn(usize, &mut [T]) + Sync,
{
    let items = data.len() / unit.max(1);
    let per = items.div_ceil(threads.max(1)).max(1);
    if threads <= 1 || items <= 1 {
        f(0, data);
        return;
    }
    std::thread::scope(|s| {
        for (i, chunk) in data.chunks_mut(per * unit).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

fn check_src(w: &Weights, t: &SrcTensor) -> Result<usize> {
    let size = float_size(t.dtype).ok_or_else(|| ConvertError::BadDtype {
        path: w.path_of(t).to_owned(),
        name: t.name.clone(),
        dtype: format!("{:?}", t.dtype),
    })?;
    let want = t.n_elements() * size;
    if t.end - t.start != want {
        return Err(ConvertError::BadTensor {
            path: w.path_of(t).to_owned(),
            name: t.name.clone(),
            what: format!(
                "{} data bytes for shape {:?} {:?} (expected {want})",
                t.end - t.start,
                t.shape,
                t.dtype
            ),
        });
    }
    Ok(size)
}

fn load_into(w: &Weights, t: &SrcTensor, dst: &mut [f32], threads: usize) -> Result<()> {
    let size = check_src(w, t)?;
    let src = w.bytes(t);
    let dtype = t.dtype;
    par_chunks(dst, 1, threads, |first, chunk| {
        to_f32(
            dtype,
            &src[first * size..(first + chunk.len()) * size],
            chunk,
        );
    });
    Ok(())
}

/// The tensor's values in f32, after its rewrites.
pub(crate) fn materialize(w: &Weights, p: &PlannedTensor, threads: usize) -> Result<Vec<f32>> {
    match &p.source {
        TensorSource::Values(v) => Ok(v.clone()),
        TensorSource::Stack(names) => {
            let mut out = vec![0f32; p.n_elements()];
            let per = out.len() / names.len().max(1);
            for (n, chunk) in names.iter().zip(out.chunks_mut(per)) {
                let t = w.get(n).expect("planned from the index");
                load_into(w, t, chunk, threads)?;
            }
            Ok(out)
        }
        TensorSource::Tensor { name, transforms } => {
            let t = w.get(name).expect("planned from the index");
            let mut v = vec![0f32; t.n_elements()];
            load_into(w, t, &mut v, threads)?;
            let rows = t.shape.first().copied().unwrap_or(1).max(1);
            let row_len = v.len() / rows;
            for tr in transforms {
                match tr {
                    Transform::AddOne => v.iter_mut().for_each(|x| *x += 1.0),
                    Transform::KeepRows(r) => v.truncate(r * row_len),
                    Transform::PermuteRows { n_head } => {
                        v = permute_rows(&v, rows, row_len, *n_head)
                    }
                }
            }
            Ok(v)
        }
    }
}

/// llama.cpp's `LlamaModel.permute`: `reshape(n_head, 2, rows/n_head/2, …).swapaxes(1, 2)`.
pub(crate) fn permute_rows(v: &[f32], rows: usize, row_len: usize, n_head: usize) -> Vec<f32> {
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0f32; v.len()];
    for h in 0..n_head {
        for j in 0..half {
            for t in 0..2 {
                let dst = h * hd + j * 2 + t;
                let src = h * hd + t * half + j;
                out[dst * row_len..(dst + 1) * row_len]
                    .copy_from_slice(&v[src * row_len..(src + 1) * row_len]);
            }
        }
    }
    out
}

/// Encode f32 rows of `row_len` elements as `ty`.
pub(crate) fn encode(
    name: &str,
    v: &[f32],
    row_len: usize,
    ty: GgmlType,
    threads: usize,
) -> Result<Vec<u8>> {
    let rows = v.len() / row_len.max(1);
    let rb = ferrite_quants::row_bytes(ty, row_len).map_err(|e| ConvertError::Quantize {
        name: name.into(),
        ty: ty.to_string(),
        what: e.to_string(),
    })?;
    let mut out = vec![0u8; rows * rb];
    if ty == GgmlType::F32 {
        par_chunks(&mut out, 4, threads, |first, chunk| {
            for (o, x) in chunk.chunks_exact_mut(4).zip(&v[first..]) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        });
        return Ok(out);
    }
    // Check the type once; the per-row calls below cannot fail after this.
    ferrite_quants::quantize_row(ty, &v[..row_len], &mut out[..rb]).map_err(|e| {
        ConvertError::Quantize {
            name: name.into(),
            ty: ty.to_string(),
            what: e.to_string(),
        }
    })?;
    par_chunks(&mut out, rb, threads, |first_row, chunk| {
        for (i, dst) in chunk.chunks_exact_mut(rb).enumerate() {
            let r = first_row + i;
            ferrite_quants::quantize_row(ty, &v[r * row_len..(r + 1) * row_len], dst)
                .expect("type and sizes checked above");
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_matches_llama_cpp_for_two_heads() {
        // 2 heads × head_dim 4, one column: rows [h0: 0 1 2 3][h1: 4 5 6 7] become
        // [0 2 1 3][4 6 5 7] (pairs (j, j + hd/2) interleaved).
        let v: Vec<f32> = (0..8).map(|x| x as f32).collect();
        assert_eq!(
            permute_rows(&v, 8, 1, 2),
            vec![0., 2., 1., 3., 4., 6., 5., 7.]
        );
    }

    #[test]
    fn storage_types_follow_llama_cpp() {
        use GgmlType::*;
        assert_eq!(storage_type("blk.0.attn_norm.weight", &[64], Q8_0), F32);
        assert_eq!(storage_type("blk.0.attn_q.bias", &[64], BF16), F32);
        assert_eq!(
            storage_type("blk.0.ffn_gate_inp.weight", &[4, 64], BF16),
            F32
        );
        assert_eq!(storage_type("token_types.weight", &[2, 384], F16), F32);
        assert_eq!(storage_type("blk.0.attn_q.weight", &[64, 64], Q8_0), Q8_0);
        assert_eq!(
            storage_type("blk.0.attn_q.weight", &[64, 48], Q8_0),
            F16,
            "48 is not a whole number of 32-blocks"
        );
        assert_eq!(storage_type("token_embd.weight", &[2000, 64], BF16), BF16);
    }

    #[test]
    fn encode_splits_rows_over_threads_identically() {
        let v: Vec<f32> = (0..64 * 37)
            .map(|i| ((i * 7919) % 1000) as f32 / 97.0 - 5.0)
            .collect();
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
            let one = encode("t", &v, 64, ty, 1).unwrap();
            let many = encode("t", &v, 64, ty, 5).unwrap();
            assert_eq!(one, many, "{ty}");
        }
    }
}
