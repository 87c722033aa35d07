//! Streaming GGUF writer: metadata and tensor infos first, then tensor data one tensor at a
//! time, into a temporary file beside the target that is renamed over it only on success.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::reader::{align_up, GgufFile, DEFAULT_ALIGNMENT, MAX_DIMS};
use crate::value::{encode_str, Value};
use crate::{keys, GgmlType, GgufError, Result};

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    offset: u64,
    n_bytes: u64,
}

/// Builds the header in memory (metadata + tensor infos are small), then streams tensor data.
///
/// ```no_run
/// # use ferrite_gguf::{GgufWriter, GgmlType};
/// let mut w = GgufWriter::new("out.gguf");
/// w.add_kv("general.architecture", "llama");
/// w.add_tensor("token_embd.weight", GgmlType::F32, &[64, 100])?;
/// let mut data = w.begin_data()?;
/// data.write_tensor("token_embd.weight", &vec![0u8; 64 * 100 * 4])?;
/// data.finish()?;
/// # Ok::<(), ferrite_gguf::GgufError>(())
/// ```
pub struct GgufWriter {
    path: PathBuf,
    version: u32,
    kvs: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    pub fn new(path: impl AsRef<Path>) -> Self {
        GgufWriter {
            path: path.as_ref().to_owned(),
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// GGUF version to write (2 or 3; the layout is the same little-endian one).
    pub fn set_version(&mut self, v: u32) -> Result<()> {
        if v != 2 && v != 3 {
            return Err(GgufError::Writer(format!("cannot write GGUF version {v}")));
        }
        self.version = v;
        Ok(())
    }

    /// Add or replace a metadata entry (order of first insertion is kept).
    pub fn add_kv(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.kvs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key, value)),
        }
    }

    pub fn remove_kv(&mut self, key: &str) {
        self.kvs.retain(|(k, _)| k != key);
    }

    fn alignment(&self) -> Result<u64> {
        match self.kvs.iter().find(|(k, _)| k == keys::general::ALIGNMENT) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, Value::U32(a))) if *a > 0 && a.is_power_of_two() => Ok(*a as u64),
            Some((_, v)) => Err(GgufError::Writer(format!(
                "general.alignment must be a power-of-two u32, got {v:?}"
            ))),
        }
    }

    /// Declare a tensor; data must later be written in declaration order.
    /// `dims` are in GGUF order (`dims[0]` = row length).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[u64],
    ) -> Result<()> {
        let name = name.into();
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(GgufError::BadTensor {
                name,
                what: format!("{} dimensions", dims.len()),
            });
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufError::BadTensor {
                name,
                what: "declared twice".into(),
            });
        }
        let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let n_bytes = match n {
            Some(n) if dims[0].is_multiple_of(ty.block_size() as u64) => ty.row_size(n),
            _ => None,
        }
        .ok_or_else(|| GgufError::BadTensor {
            name: name.clone(),
            what: format!("shape {dims:?} does not fit type {ty}"),
        })?;
        let align = self.alignment()?;
        let offset = match self.tensors.last() {
            Some(t) => align_up(t.offset + t.n_bytes, align).expect("sizes checked"),
            None => 0,
        };
        self.tensors.push(PendingTensor {
            name,
            dims: dims.to_vec(),
            ty,
            offset,
            n_bytes,
        });
        Ok(())
    }

    /// Copy every metadata entry (exact bytes) and tensor declaration of `src`.
    pub fn copy_layout_from(&mut self, src: &GgufFile) -> Result<()> {
        self.set_version(src.version())?;
        for (k, v) in src.metadata() {
            self.add_kv(k, v.to_owned_raw());
        }
        for t in src.tensors() {
            self.add_tensor(t.name.clone(), t.ty, &t.dims)?;
        }
        Ok(())
    }

    /// Write the header into a temporary file and return the data stage.
    pub fn begin_data(self) -> Result<GgufDataWriter> {
        let align = self.alignment()?;
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&self.version.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            encode_str(k.as_bytes(), &mut head);
            head.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            v.encode(&mut head).map_err(|e| GgufError::BadKey {
                key: k.clone(),
                what: e.to_string(),
            })?;
        }
        for t in &self.tensors {
            encode_str(t.name.as_bytes(), &mut head);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.ty.id().to_le_bytes());
            head.extend_from_slice(&t.offset.to_le_bytes());
        }
        // The data section starts aligned; a file without tensors has no data section and
        // ends right after its metadata (as ggml and gguf-py write vocab-only files).
        if !self.tensors.is_empty() {
            let padded = align_up(head.len() as u64, align).expect("small") as usize;
            head.resize(padded, 0);
        }

        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let io = |source| GgufError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = tempfile::Builder::new()
            .prefix(".ferrite-")
            .suffix(".gguf.part")
            .tempfile_in(&dir)
            .map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, tmp.reopen().map_err(io)?);
        out.write_all(&head).map_err(io)?;
        Ok(GgufDataWriter {
            path: self.path,
            tmp,
            out,
            tensors: self.tensors,
            next: 0,
            align,
            pos: 0,
        })
    }
}

/// The data stage: tensors written in declaration order, then `finish` renames into place.
/// Dropping it without `finish` deletes the temporary file.
pub struct GgufDataWriter {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    out: BufWriter<File>,
    tensors: Vec<PendingTensor>,
    next: usize,
    align: u64,
    /// Bytes written into the data section so far.
    pos: u64,
}

impl GgufDataWriter {
    /// Name of the next tensor expected.
    pub fn next_tensor(&self) -> Option<&str> {
        self.tensors.get(self.next).map(|t| t.name.as_str())
    }

    /// Write one tensor's data (must be the next declared tensor, with its exact size).
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let t = self.tensors.get(self.next).ok_or_else(|| {
            GgufError::Writer(format!("tensor '{name}' written but all tensors are done"))
        })?;
        if t.name != name {
            return Err(GgufError::Writer(format!(
                "tensor '{name}' written, but '{}' is next",
                t.name
            )));
        }
        if data.len() as u64 != t.n_bytes {
            return Err(GgufError::BadTensor {
                name: name.into(),
                what: format!(
                    "{} bytes of data given, its type {} and shape {:?} need {}",
                    data.len(),
                    t.ty,
                    t.dims,
                    t.n_bytes
                ),
            });
        }
        let io = |source| GgufError::Io {
            path: self.path.clone(),
            source,
        };
        debug_assert_eq!(self.pos, t.offset);
        self.out.write_all(data).map_err(io)?;
        // Every tensor, the last included, is padded to the alignment (as ggml and gguf-py do).
        let end = t.offset + t.n_bytes;
        let padded = align_up(end, self.align).expect("small");
        const ZEROS: [u8; 64] = [0; 64];
        let mut pad = (padded - end) as usize;
        while pad > 0 {
            let n = pad.min(ZEROS.len());
            self.out.write_all(&ZEROS[..n]).map_err(io)?;
            pad -= n;
        }
        self.pos = padded;
        self.next += 1;
        Ok(())
    }

    /// Flush, sync and rename over the target path.
    pub fn finish(mut self) -> Result<()> {
        if let Some(t) = self.tensors.get(self.next) {
            return Err(GgufError::Writer(format!(
                "tensor '{}' was declared but never written",
                t.name
            )));
        }
        let io = |source| GgufError::Io {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)?;
        drop(self.out);
        self.tmp.persist(&self.path).map_err(|e| GgufError::Io {
            path: self.path.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// Rewrite `src` to `dst` unchanged, one tensor at a time (the round-trip check).
pub fn copy_file(src: &GgufFile, dst: impl AsRef<Path>) -> Result<()> {
    let mut w = GgufWriter::new(dst);
    w.copy_layout_from(src)?;
    let mut d = w.begin_data()?;
    for t in src.tensors() {
        d.write_tensor(&t.name, src.data_of(t))?;
    }
    d.finish()
}
