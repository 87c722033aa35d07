//! Weight views into the GGUF mmap (matrices are never copied; 1-D vectors such as norm
//! weights and biases are dequantized to f32 at load, a few KiB per layer).

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
}

// SAFETY: the pointee is the read-only mmap owned by the `Model` that owns this `Matrix`.
unsafe impl Send for Matrix {}
unsafe impl Sync for Matrix {}

impl Matrix {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is tensor data of the `GgufModel` kept alive (and never
        // mutated) by the owning `Model`; the mmap/heap buffer does not move when it moves.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The whole (2-D) matrix.
    pub fn view(&self) -> WeightView<'_> {
        WeightView {
            ty: self.ty,
            rows: self.rows * self.n_mat,
            cols: self.cols,
            data: self.bytes(),
        }
    }

    /// Matrix `i` of a stack (expert `i`).
    pub fn expert(&self, i: usize) -> WeightView<'_> {
        self.view().rows_view(i * self.rows, self.rows)
    }
}

pub(crate) struct Loader<'a> {
    pub gguf: &'a GgufModel,
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

    /// A matrix of GGUF shape `[cols, rows]`: `rows` outputs of `cols` inputs.
    pub fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<Matrix> {
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
