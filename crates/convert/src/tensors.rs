//! Producing one output tensor at a time, row by row: source bytes → f32 row (with the
//! architecture's rewrites) → stored type, or a plain copy when the source already has the
//! stored type; rows split over threads. Peak memory is the encoded tensor (a buffer reused
//! from tensor to tensor) and one f32 row per thread.

use ferrite_gguf::GgmlType;

use crate::arch::{PlannedTensor, TensorSource, Transform};
use crate::error::{ConvertError, Result};
use safetensors::tensor::Dtype;

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

/// Where one planned tensor's source elements are.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// A source tensor's little-endian bytes (`dtype` checked by [`check_src`]).
    Bytes(Dtype, &'a [u8]),
    F32(&'a [f32]),
}

/// An output tensor's elements, in output order, as segments of source parts: the source
/// tensor (with its rows reordered or cut), the stacked experts, or computed values. Nothing
/// is copied into an intermediate f32 tensor.
struct Layout<'a> {
    parts: Vec<Part<'a>>,
    /// Elements per part (all parts have the same size).
    part_len: usize,
    /// Elements per outermost-dimension slice, the unit `map` reorders.
    unit: usize,
    /// Output unit → source unit (`None`: in order).
    map: Option<Vec<usize>>,
    add_one: bool,
}

impl<'a> Layout<'a> {
    fn new(w: &'a Weights, p: &'a PlannedTensor) -> Result<Layout<'a>> {
        let bytes = |name: &str| -> Result<(Part<'a>, usize)> {
            let t = w.get(name).expect("planned from the index");
            check_src(w, t)?;
            Ok((Part::Bytes(t.dtype, w.bytes(t)), t.n_elements()))
        };
        let layout = match &p.source {
            TensorSource::Values(v) => Layout {
                parts: vec![Part::F32(v)],
                part_len: v.len(),
                unit: 1,
                map: None,
                add_one: false,
            },
            TensorSource::Stack(names) => {
                let mut parts = Vec::with_capacity(names.len());
                let mut part_len = 0;
                for n in names {
                    let (part, len) = bytes(n)?;
                    parts.push(part);
                    part_len = len; // equal shapes: checked when planned
                }
                Layout {
                    parts,
                    part_len,
                    unit: part_len.max(1),
                    map: None,
                    add_one: false,
                }
            }
            TensorSource::Tensor { name, transforms } => {
                let (part, n) = bytes(name)?;
                let t = w.get(name).expect("planned from the index");
                let rows = t.shape.first().copied().unwrap_or(1).max(1);
                let mut map: Option<Vec<usize>> = None;
                let mut add_one = false;
                for tr in transforms {
                    match tr {
                        Transform::AddOne => add_one = true,
                        Transform::KeepRows(r) => {
                            if let Some(m) = &mut map {
                                m.truncate(*r);
                            }
                        }
                        Transform::PermuteRows { n_head } => {
                            let cur = map.take().unwrap_or_else(|| (0..rows).collect());
                            map = Some(permute_map(&cur, *n_head));
                        }
                    }
                }
                Layout {
                    parts: vec![part],
                    part_len: n,
                    unit: (n / rows).max(1),
                    map,
                    add_one,
                }
            }
        };
        let have = match &layout.map {
            Some(m) => m.len() * layout.unit,
            None => layout.parts.len() * layout.part_len,
        };
        if p.n_elements() > have {
            return Err(ConvertError::BadTensor {
                path: w.shards[0].0.clone(),
                name: p.name.clone(),
                what: format!("{have} source elements for shape {:?}", p.shape),
            });
        }
        Ok(layout)
    }

    /// Call `f(part, first source element, offset in the range, count)` for the pieces of the
    /// output elements `start..start + len`.
    fn segments(&self, start: usize, len: usize, mut f: impl FnMut(Part<'a>, usize, usize, usize)) {
        let mut done = 0;
        while done < len {
            let e = start + done;
            let (src, run) = match &self.map {
                Some(m) => {
                    let off = e % self.unit;
                    (m[e / self.unit] * self.unit + off, self.unit - off)
                }
                None => (e, usize::MAX),
            };
            let (pi, po) = (src / self.part_len, src % self.part_len);
            let n = run.min(self.part_len - po).min(len - done);
            f(self.parts[pi], po, done, n);
            done += n;
        }
    }

    /// Output elements `start..start + dst.len()` in f32.
    fn fill(&self, start: usize, dst: &mut [f32]) {
        self.segments(start, dst.len(), |part, so, off, n| match part {
            Part::Bytes(d, b) => {
                let size = float_size(d).expect("checked");
                to_f32(d, &b[so * size..(so + n) * size], &mut dst[off..off + n]);
            }
            Part::F32(v) => dst[off..off + n].copy_from_slice(&v[so..so + n]),
        });
        if self.add_one {
            dst.iter_mut().for_each(|x| *x += 1.0);
        }
    }

    /// When every part is already stored as `ty` and nothing is added, the bytes can be copied
    /// (BF16 with NaNs made quiet, as ggml's f32 → bf16 does): the source dtype's size.
    fn copyable_as(&self, ty: GgmlType) -> Option<usize> {
        if self.add_one {
            return None;
        }
        let want = match ty {
            GgmlType::F32 => Dtype::F32,
            GgmlType::F16 => Dtype::F16,
            GgmlType::BF16 => Dtype::BF16,
            _ => return None,
        };
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Bytes(d, _) if *d == want))
            .then(|| float_size(want).expect("float"))
    }
}

/// llama.cpp's `LlamaModel.permute` on row indices: per head, `[2][hd/2]` → `[hd/2][2]`.
fn permute_map(rows: &[usize], n_head: usize) -> Vec<usize> {
    let hd = rows.len() / n_head.max(1);
    let half = hd / 2;
    let mut out = rows.to_vec();
    for h in 0..n_head {
        for j in 0..half {
            for t in 0..2 {
                out[h * hd + j * 2 + t] = rows[h * hd + t * half + j];
            }
        }
    }
    out
}

/// Encode planned tensor `p` as `ty` into `out` (exactly its size), straight from the source
/// bytes, rows spread over `threads`: per row, source → f32 scratch (with the rewrites) → `ty`,
/// or a plain copy when the source already is `ty`.
pub(crate) fn encode_into(
    w: &Weights,
    p: &PlannedTensor,
    ty: GgmlType,
    threads: usize,
    out: &mut [u8],
) -> Result<()> {
    let layout = Layout::new(w, p)?;
    let row_len = p.shape.last().copied().unwrap_or(1).max(1);
    let n = p.n_elements();
    let rows = n / row_len;
    let qerr = |e: ferrite_quants::QuantError| ConvertError::Quantize {
        name: p.name.clone(),
        ty: ty.to_string(),
        what: e.to_string(),
    };
    let rb = ferrite_quants::row_bytes(ty, row_len).map_err(qerr)?;
    assert_eq!(out.len(), rows * rb, "output buffer sized for {}", p.name);
    if rows == 0 {
        return Ok(());
    }

    if let Some(size) = layout.copyable_as(ty) {
        par_chunks(out, rb, threads, |first_row, chunk| {
            layout.segments(
                first_row * row_len,
                chunk.len() / size,
                |part, so, off, n| {
                    let Part::Bytes(_, b) = part else {
                        unreachable!("copyable parts are bytes")
                    };
                    let dst = &mut chunk[off * size..(off + n) * size];
                    dst.copy_from_slice(&b[so * size..(so + n) * size]);
                    if ty == GgmlType::BF16 {
                        quiet_bf16_nans(dst);
                    }
                },
            );
        });
        return Ok(());
    }

    // Check the type once; the per-row calls below cannot fail after this.
    let mut probe = vec![0f32; row_len];
    layout.fill(0, &mut probe);
    ferrite_quants::quantize_row(ty, &probe, &mut out[..rb]).map_err(qerr)?;
    par_chunks(out, rb, threads, |first_row, chunk| {
        let mut scratch = vec![0f32; row_len];
        let mut halves = if ty == GgmlType::F16 {
            vec![half::f16::ZERO; row_len]
        } else {
            Vec::new()
        };
        for (i, dst) in chunk.chunks_exact_mut(rb).enumerate() {
            layout.fill((first_row + i) * row_len, &mut scratch);
            match ty {
                GgmlType::F16 => {
                    // The slice conversion (F16C when the CPU has it) rounds as f16::from_f32.
                    use half::slice::HalfFloatSliceExt;
                    halves.convert_from_f32_slice(&scratch);
                    for (o, h) in dst.chunks_exact_mut(2).zip(&halves) {
                        o.copy_from_slice(&h.to_bits().to_le_bytes());
                    }
                }
                GgmlType::F32 => {
                    for (o, x) in dst.chunks_exact_mut(4).zip(&scratch) {
                        o.copy_from_slice(&x.to_le_bytes());
                    }
                }
                _ => ferrite_quants::quantize_row(ty, &scratch, dst)
                    .expect("type and sizes checked above"),
            }
        }
    });
    Ok(())
}

/// bf16 → f32 → bf16 through ggml's rounding is the identity except for NaNs, which come back
/// quiet (`| 64`).
fn quiet_bf16_nans(b: &mut [u8]) {
    for c in b.chunks_exact_mut(2) {
        let h = u16::from_le_bytes([c[0], c[1]]);
        if h & 0x7fff > 0x7f80 {
            c.copy_from_slice(&(h | 64).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_matches_llama_cpp_for_two_heads() {
        // 2 heads × head_dim 4: rows [h0: 0 1 2 3][h1: 4 5 6 7] become
        // [0 2 1 3][4 6 5 7] (pairs (j, j + hd/2) interleaved).
        let rows: Vec<usize> = (0..8).collect();
        assert_eq!(permute_map(&rows, 2), vec![0, 2, 1, 3, 4, 6, 5, 7]);
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

    /// A checkpoint folder with one `model.safetensors` holding `tensors`.
    fn checkpoint(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            let dt = match dtype {
                Dtype::F32 => "F32",
                Dtype::F16 => "F16",
                Dtype::BF16 => "BF16",
                _ => unreachable!(),
            };
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dt, "shape": shape,
                    "data_offsets": [data.len(), data.len() + bytes.len()]}),
            );
            data.extend_from_slice(bytes);
        }
        let mut h = serde_json::Value::Object(header).to_string().into_bytes();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut file = (h.len() as u64).to_le_bytes().to_vec();
        file.extend(h);
        file.extend(data);
        std::fs::write(dir.path().join("model.safetensors"), file).unwrap();
        dir
    }

    /// Values with the awkward cases: NaNs (quiet and signalling), infinities, zeros of both
    /// signs, subnormals, halfway cases for f16 rounding, large values.
    fn values(n: usize) -> Vec<f32> {
        let special = [
            f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xff81_0000),
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-40,
            -3e-8,
            1.0 + 1.0 / 2048.0,
            65520.0,
            -1e6,
        ];
        (0..n)
            .map(|i| {
                special
                    .get(i % 97)
                    .copied()
                    .unwrap_or(((i * 7919) % 1000) as f32 / 97.0 - 5.0)
            })
            .collect()
    }

    fn as_dtype(v: &[f32], d: Dtype) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| match d {
                Dtype::F32 => x.to_le_bytes().to_vec(),
                Dtype::F16 => half::f16::from_f32(x).to_bits().to_le_bytes().to_vec(),
                Dtype::BF16 => (x.to_bits() >> 16).to_le_bytes()[..2].to_vec(),
                _ => unreachable!(),
            })
            .collect()
    }

    /// The straightforward reference: the whole tensor in f32, rewritten, then each row
    /// through `ferrite_quants::quantize_row` (what the converter did before streaming rows).
    fn reference(w: &Weights, p: &PlannedTensor, ty: GgmlType) -> Vec<u8> {
        let TensorSource::Tensor { name, transforms } = &p.source else {
            unreachable!()
        };
        let t = w.get(name).unwrap();
        let mut v = vec![0f32; t.n_elements()];
        to_f32(t.dtype, w.bytes(t), &mut v);
        let rows = t.shape[0];
        let unit = v.len() / rows;
        for tr in transforms {
            match tr {
                Transform::AddOne => v.iter_mut().for_each(|x| *x += 1.0),
                Transform::KeepRows(r) => v.truncate(r * unit),
                Transform::PermuteRows { n_head } => {
                    let map = permute_map(&(0..rows).collect::<Vec<_>>(), *n_head);
                    v = map
                        .iter()
                        .flat_map(|&r| v[r * unit..(r + 1) * unit].to_vec())
                        .collect();
                }
            }
        }
        let row_len = *p.shape.last().unwrap();
        let rb = ferrite_quants::row_bytes(ty, row_len).unwrap();
        let mut out = vec![0u8; v.len() / row_len * rb];
        for (src, dst) in v.chunks_exact(row_len).zip(out.chunks_exact_mut(rb)) {
            ferrite_quants::quantize_row(ty, src, dst).unwrap();
        }
        out
    }

    #[test]
    fn streamed_rows_match_the_whole_tensor_reference() {
        let (rows, cols) = (16, 64);
        let v = values(rows * cols);
        let dtypes = [Dtype::F32, Dtype::F16, Dtype::BF16];
        let srcs: Vec<_> = dtypes
            .iter()
            .flat_map(|&d| {
                let b = as_dtype(&v, d);
                [
                    (format!("m{d:?}"), d, vec![rows, cols], b.clone()),
                    (format!("b{d:?}"), d, vec![rows * cols], b),
                ]
            })
            .collect();
        let srcs: Vec<_> = srcs
            .iter()
            .map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone()))
            .collect();
        let dir = checkpoint(&srcs);
        let w = Weights::open(dir.path()).unwrap();
        let cases: Vec<(Vec<Transform>, usize)> = vec![
            (vec![], rows),
            (vec![Transform::PermuteRows { n_head: 2 }], rows),
            (vec![Transform::AddOne], rows),
            (vec![Transform::KeepRows(5)], 5),
            (
                vec![Transform::PermuteRows { n_head: 4 }, Transform::KeepRows(7)],
                7,
            ),
        ];
        for d in dtypes {
            for (transforms, keep) in &cases {
                for (name, shape) in [
                    (format!("m{d:?}"), vec![*keep, cols]),
                    (format!("b{d:?}"), vec![keep * cols]),
                ] {
                    if shape.len() == 1
                        && transforms.iter().any(|t| !matches!(t, Transform::AddOne))
                    {
                        // 1-D: permuting single elements (a q_proj bias).
                        if *keep != rows {
                            continue;
                        }
                    }
                    let p = PlannedTensor {
                        name: "blk.0.attn_q.weight".into(),
                        shape,
                        source: TensorSource::Tensor {
                            name: name.clone(),
                            transforms: transforms.clone(),
                        },
                    };
                    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
                        let want = reference(&w, &p, ty);
                        for threads in [1, 3] {
                            let mut got = vec![0u8; want.len()];
                            encode_into(&w, &p, ty, threads, &mut got).unwrap();
                            assert!(
                                got == want,
                                "{name} {transforms:?} → {ty}, {threads} threads"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stacked_experts_and_values_encode_in_order() {
        let v = values(3 * 8 * 32);
        let parts: Vec<_> = (0..3)
            .map(|e| {
                (
                    format!("e{e}"),
                    as_dtype(&v[e * 256..(e + 1) * 256], Dtype::BF16),
                )
            })
            .collect();
        let srcs: Vec<_> = parts
            .iter()
            .map(|(n, b)| (n.as_str(), Dtype::BF16, vec![8, 32], b.clone()))
            .collect();
        let dir = checkpoint(&srcs);
        let w = Weights::open(dir.path()).unwrap();
        let stacked = PlannedTensor {
            name: "blk.0.ffn_up_exps.weight".into(),
            shape: vec![3, 8, 32],
            source: TensorSource::Stack(parts.iter().map(|(n, _)| n.clone()).collect()),
        };
        let all: Vec<f32> = parts
            .iter()
            .flat_map(|(_, b)| {
                b.chunks_exact(2)
                    .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            })
            .collect();
        let computed = PlannedTensor {
            name: "rope_freqs.weight".into(),
            shape: vec![3, 8, 32],
            source: TensorSource::Values(all),
        };
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
            let rb = ferrite_quants::row_bytes(ty, 32).unwrap();
            let mut a = vec![0u8; 24 * rb];
            let mut b = vec![0u8; 24 * rb];
            encode_into(&w, &stacked, ty, 2, &mut a).unwrap();
            encode_into(&w, &computed, ty, 1, &mut b).unwrap();
            assert!(a == b, "{ty}");
        }
    }
}
