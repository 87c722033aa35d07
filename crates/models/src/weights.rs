//! Weight views into the GGUF mmap (1-D vectors such as norm weights and biases are
//! dequantized to f32 at load, a few KiB per layer). Matrices stay in the mmap, except those
//! this CPU multiplies faster in the 4-row interleaved layout (`ferrite_quants::packed`:
//! Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K on AVX-512): they are packed once at load into an owned buffer of the same
//! size and their mmap pages released, as llama.cpp repacks Q4_0/Q4_K into its CPU_REPACK
//! buffer. `FERRITE_NO_REPACK=1` keeps every matrix in the mmap (comparisons, debugging).

use crate::error::{ModelError, Result};
use ferrite_compute::WeightView;
use ferrite_gguf::{GgmlType, GgufModel};

/// A matrix (or a stack of matrices) in place in the mmap.
#[derive(Debug)]
pub struct Matrix {
    pub name: String,
    pub ty: GgmlType,
    /// Row length (GGUF `dims[0]`).
    pub cols: usize,
    /// Rows per matrix (GGUF `dims[1]`).
    pub rows: usize,
    /// Stacked matrices (GGUF `dims[2]`, experts), 1 for plain matrices.
    pub n_mat: usize,
    ptr: *const u8,
    len: usize,
    /// The packed (x4) copy `ptr` points into (64-byte aligned inside), if any; shared by a
    /// tied output head and the embedding table. Only packed matrices own their bytes.
    owned: Option<std::sync::Arc<Vec<u8>>>,
}

// SAFETY: the pointee is the read-only mmap owned by the `Model` that owns this `Matrix`, or
// the matrix's own never-mutated buffer.
unsafe impl Send for Matrix {}
unsafe impl Sync for Matrix {}

impl Matrix {
    /// Whether the bytes are in the x4 layout (not row-major): only packed copies are owned.
    pub fn packed(&self) -> bool {
        self.owned.is_some()
    }

    /// The tensor's bytes: row-major GGUF data, or the x4 layout where [`Matrix::packed`].
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is tensor data of the `GgufModel` kept alive (and never
        // mutated) by the owning `Model`, or inside `owned`; neither buffer moves when the
        // matrix or the model moves.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The whole (2-D) matrix.
    pub fn view(&self) -> WeightView<'_> {
        WeightView {
            ty: self.ty,
            rows: self.rows * self.n_mat,
            cols: self.cols,
            data: self.bytes(),
            packed: self.packed(),
        }
    }

    /// Another handle on the same bytes (a tied output head as the embedding table).
    pub(crate) fn share(&self) -> Matrix {
        Matrix {
            name: self.name.clone(),
            owned: self.owned.clone(),
            ..*self
        }
    }

    /// Embedding lookup: rows `ids` dequantized into `dst` (`ids.len() × cols`), from either
    /// layout.
    pub fn get_rows(
        &self,
        ids: &[u32],
        dst: &mut [f32],
    ) -> std::result::Result<(), ferrite_compute::ComputeError> {
        ferrite_compute::ops::get_rows_view(&self.view(), ids, dst)
    }

    /// Matrix `i` of a stack (expert `i`).
    pub fn expert(&self, i: usize) -> WeightView<'_> {
        self.view().rows_view(i * self.rows, self.rows)
    }
}

pub(crate) struct Loader<'a> {
    pub gguf: &'a GgufModel,
    /// Pack matrices this CPU has x4 kernels for (see the module doc).
    pub repack: bool,
}

/// Whether models opened now repack (not with `FERRITE_NO_REPACK` set to anything but `0`).
pub(crate) fn repack_enabled() -> bool {
    std::env::var("FERRITE_NO_REPACK").map_or(true, |v| v == "0")
}

impl Loader<'_> {
    pub fn has(&self, name: &str) -> bool {
        self.gguf.tensor_info(name).is_some()
    }

    fn info(&self, name: &str) -> Result<&ferrite_gguf::TensorInfo> {
        self.gguf
            .tensor_info(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_owned(),
            })
    }

    fn check_dims(&self, name: &str, expected: &[usize]) -> Result<&ferrite_gguf::TensorInfo> {
        let t = self.info(name)?;
        let got: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        // Trailing 1s are equivalent (a [n, 1] vector is a [n] vector).
        let trim = |v: &[usize]| {
            let mut v = v.to_vec();
            while v.len() > 1 && v.last() == Some(&1) {
                v.pop();
            }
            v
        };
        if trim(&got) != trim(expected) {
            return Err(ModelError::TensorShape {
                name: name.to_owned(),
                expected: expected.to_vec(),
                got,
            });
        }
        if let Err(source) = ferrite_quants::kernels(t.ty) {
            return Err(ModelError::TensorType {
                name: name.to_owned(),
                ty: t.ty,
                source,
            });
        }
        Ok(t)
    }

    /// A matrix of GGUF shape `[cols, rows]`: `rows` outputs of `cols` inputs, for matrix
    /// products (packed where that is faster).
    pub fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<Matrix> {
        let m = self.stack(name, cols, rows, 1)?;
        if !self.repack
            || !ferrite_quants::packed::has_kernels(m.ty)
            || !rows.is_multiple_of(ferrite_quants::packed::GROUP)
        {
            return Ok(m);
        }
        let mut buf = vec![0u8; m.len + 64];
        let off = buf.as_ptr().align_offset(64);
        // A few MiB at a time, releasing the source pages behind: the file's copy and ours
        // are never both resident (a tied 178 MiB output head would double peak RSS).
        let group = m.len / rows * ferrite_quants::packed::GROUP;
        let chunk = group * (4usize << 20).div_ceil(group);
        let dst = buf[off..off + m.len].chunks_mut(chunk);
        for (i, (s, d)) in m.bytes().chunks(chunk).zip(dst).enumerate() {
            ferrite_quants::packed::pack_rows(m.ty, cols, s, d).map_err(|source| {
                ModelError::TensorType {
                    name: name.to_owned(),
                    ty: m.ty,
                    source,
                }
            })?;
            self.gguf
                .release_tensor_pages(name, i * chunk..(i + 1) * chunk);
        }
        // The pages straddling chunk boundaries.
        self.gguf.release_tensor_pages(name, 0..m.len);
        Ok(Matrix {
            ptr: buf[off..].as_ptr(),
            owned: Some(std::sync::Arc::new(buf)),
            ..m
        })
    }

    /// A lookup table (`get_rows`: token, position embeddings) of GGUF shape `[cols, rows]`:
    /// always row-major, in place in the mmap.
    pub fn table(&self, name: &str, cols: usize, rows: usize) -> Result<Matrix> {
        self.stack(name, cols, rows, 1)
    }

    /// `n_mat` stacked matrices, GGUF shape `[cols, rows, n_mat]`.
    pub fn stack(&self, name: &str, cols: usize, rows: usize, n_mat: usize) -> Result<Matrix> {
        let dims = if n_mat == 1 {
            vec![cols, rows]
        } else {
            vec![cols, rows, n_mat]
        };
        let t = self.check_dims(name, &dims)?;
        let ty = t.ty;
        let data = self.gguf.tensor_data(name)?;
        Ok(Matrix {
            name: name.to_owned(),
            ty,
            cols,
            rows,
            n_mat,
            ptr: data.as_ptr(),
            len: data.len(),
            owned: None,
        })
    }

    pub fn matrix_opt(&self, name: &str, cols: usize, rows: usize) -> Result<Option<Matrix>> {
        if self.has(name) {
            self.matrix(name, cols, rows).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A 1-D tensor of `n` elements, dequantized to f32.
    pub fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let t = self.check_dims(name, &[n])?;
        let mut v = vec![0f32; n];
        ferrite_quants::dequantize_row(t.ty, self.gguf.tensor_data(name)?, &mut v).map_err(
            |source| ModelError::TensorType {
                name: name.to_owned(),
                ty: t.ty,
                source,
            },
        )?;
        Ok(v)
    }

    pub fn vector_opt(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.vector(name, n).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// `blk.{il}.{suffix}`.
pub(crate) fn blk(il: usize, suffix: &str) -> String {
    format!("blk.{il}.{suffix}")
}
