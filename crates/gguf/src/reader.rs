//! GGUF reader. Parsing is a single validating pass over the header, metadata and tensor
//! infos that records spans into the file; nothing is allocated from an unchecked count and
//! tensor data is never touched (it is addressed in place through the memory map).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::value::{ArrayRef, FromValue, ValueRef, ValueType};
use crate::{keys, GgmlType, GgufError, Result};

pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions.
pub const MAX_DIMS: usize = 4;
/// Nested arrays deeper than this are refused (no format producer nests more than 2).
const MAX_ARRAY_DEPTH: u32 = 8;

/// Bounds-checked little-endian reads over a byte slice, reporting file offsets.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// File offset of `data[0]`.
    base: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], base: u64) -> Self {
        Cursor { data, pos: 0, base }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let remaining = (self.data.len() - self.pos) as u64;
        if n > remaining {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.offset(),
                need: n,
                file_len: self.base + self.data.len() as u64,
            });
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let b = self.take(N as u64, what)?;
        Ok(b.try_into().expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        self.take(len, what)
    }

    /// Read one value of type `t`. Arrays are walked (validating every element) but
    /// returned as a span, never copied.
    pub(crate) fn read_value(&mut self, t: ValueType, depth: u32) -> Result<ValueRef<'a>> {
        let w = || format!("{} value", t.name());
        Ok(match t {
            ValueType::U8 => ValueRef::U8(self.array::<1>(&w)?[0]),
            ValueType::I8 => ValueRef::I8(self.array::<1>(&w)?[0] as i8),
            ValueType::U16 => ValueRef::U16(u16::from_le_bytes(self.array(&w)?)),
            ValueType::I16 => ValueRef::I16(i16::from_le_bytes(self.array(&w)?)),
            ValueType::U32 => ValueRef::U32(u32::from_le_bytes(self.array(&w)?)),
            ValueType::I32 => ValueRef::I32(i32::from_le_bytes(self.array(&w)?)),
            ValueType::F32 => ValueRef::F32(f32::from_le_bytes(self.array(&w)?)),
            ValueType::U64 => ValueRef::U64(u64::from_le_bytes(self.array(&w)?)),
            ValueType::I64 => ValueRef::I64(i64::from_le_bytes(self.array(&w)?)),
            ValueType::F64 => ValueRef::F64(f64::from_le_bytes(self.array(&w)?)),
            ValueType::Bool => {
                let at = self.offset();
                match self.array::<1>(&w)?[0] {
                    0 => ValueRef::Bool(false),
                    1 => ValueRef::Bool(true),
                    b => {
                        return Err(GgufError::Malformed {
                            offset: at,
                            what: format!("bool value {b} is neither 0 nor 1"),
                        })
                    }
                }
            }
            ValueType::String => ValueRef::String(self.string(&|| "string value".into())?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::Malformed {
                        offset: self.offset(),
                        what: format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                    });
                }
                let at = self.offset();
                let id = self.u32(&|| "array element type".into())?;
                let elem_type = ValueType::from_id(id).ok_or_else(|| GgufError::Malformed {
                    offset: at,
                    what: format!("unknown array element type {id}"),
                })?;
                let len = self.u64(&|| "array length".into())?;
                let start = self.pos;
                let start_offset = self.offset();
                if let Some(size) = elem_type.scalar_size() {
                    let n = len.checked_mul(size).ok_or_else(|| GgufError::Malformed {
                        offset: at,
                        what: format!("array of {len} {} overflows", elem_type.name()),
                    })?;
                    let bytes = self.take(n, &|| format!("array of {len} {}", elem_type.name()))?;
                    if elem_type == ValueType::Bool {
                        if let Some(i) = bytes.iter().position(|&b| b > 1) {
                            return Err(GgufError::Malformed {
                                offset: start_offset + i as u64,
                                what: format!("bool value {} is neither 0 nor 1", bytes[i]),
                            });
                        }
                    }
                } else {
                    // Each string/array element takes at least 8 bytes, so a count larger than
                    // the remaining bytes / 8 is refused before walking.
                    let remaining = (self.data.len() - self.pos) as u64;
                    if len > remaining / 8 {
                        return Err(GgufError::Truncated {
                            what: format!("array of {len} {}s", elem_type.name()),
                            offset: start_offset,
                            need: len.saturating_mul(8),
                            file_len: self.base + self.data.len() as u64,
                        });
                    }
                    for _ in 0..len {
                        self.read_value(elem_type, depth + 1)?;
                    }
                }
                ValueRef::Array(ArrayRef {
                    elem_type,
                    len,
                    bytes: &self.data[start..self.pos],
                    offset: start_offset,
                })
            }
        })
    }
}

/// One tensor's description from the tensor-info table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in GGUF/ggml order: `dims[0]` is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset relative to the start of the tensor data section.
    pub offset: u64,
    /// Bytes of data, from the type and shape.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

struct KvSpan {
    key: String,
    /// Span of the encoded value (type id excluded) in the file.
    value_start: usize,
    value_end: usize,
    value_type: ValueType,
}

/// Bytes of a file: a read-only memory map or an owned buffer.
enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An open GGUF file: parsed header, metadata and tensor infos; data addressed in place.
pub struct GgufFile {
    storage: Storage,
    path: Option<PathBuf>,
    version: u32,
    alignment: u64,
    kvs: Vec<KvSpan>,
    kv_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    /// Where the tensor infos end (before alignment padding).
    infos_end: u64,
    data_offset: u64,
}

impl GgufFile {
    /// Open and validate a file through a read-only memory map.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // A zero-length map is an error on Linux; such a file is just truncated.
        let storage = if len == 0 {
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only; like every mmap-based reader, we rely on the file
            // not being truncated by another process while it is open.
            Storage::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        let mut f = Self::parse(storage).map_err(|e| e.in_file(path))?;
        f.path = Some(path.to_owned());
        Ok(f)
    }

    /// Parse a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        Self::parse(Storage::Owned(bytes))
    }

    fn parse(storage: Storage) -> Result<GgufFile> {
        let data = storage.bytes();
        let file_len = data.len() as u64;
        let mut c = Cursor::new(data, 0);
        let magic: [u8; 4] = c.array(&|| "magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = c.u32(&|| "version".into())?;
        match version {
            2 | 3 => {}
            1 => return Err(GgufError::VersionOne),
            v if v != 0 && v & 0xffff == 0 && v.swap_bytes() <= 3 => {
                return Err(GgufError::BigEndian(v))
            }
            v => return Err(GgufError::UnsupportedVersion(v)),
        }
        let n_tensors = c.u64(&|| "tensor count".into())?;
        let n_kv = c.u64(&|| "metadata count".into())?;

        // Every kv takes at least 8 (key length) + 4 (type) + 1 bytes; every tensor info at
        // least 8 + 4 + 8 + 4 + 8. Refuse counts the file cannot hold before reserving.
        let rest = file_len - c.offset();
        if n_kv > rest / 13 {
            return Err(GgufError::Malformed {
                offset: 16,
                what: format!("metadata count {n_kv} cannot fit in a {file_len}-byte file"),
            });
        }
        if n_tensors > rest / 32 {
            return Err(GgufError::Malformed {
                offset: 8,
                what: format!("tensor count {n_tensors} cannot fit in a {file_len}-byte file"),
            });
        }

        // Reserve modestly: the counts were bounded by the file size above, and vectors grow only
        // as entries actually parse.
        let mut kvs = Vec::with_capacity(n_kv.min(4096) as usize);
        let mut kv_index = HashMap::with_capacity(n_kv.min(4096) as usize);
        for i in 0..n_kv {
            let key_at = c.offset();
            let key = c.string(&|| format!("key of metadata entry {i}"))?;
            let key = std::str::from_utf8(key)
                .map_err(|_| GgufError::Malformed {
                    offset: key_at,
                    what: format!("key of metadata entry {i} is not UTF-8"),
                })?
                .to_owned();
            let type_at = c.offset();
            let tid = c.u32(&|| format!("type of key '{key}'"))?;
            let value_type = ValueType::from_id(tid).ok_or_else(|| GgufError::Malformed {
                offset: type_at,
                what: format!("key '{key}' has unknown value type {tid}"),
            })?;
            let value_start = c.pos;
            c.read_value(value_type, 0).map_err(|e| GgufError::BadKey {
                key: key.clone(),
                what: e.to_string(),
            })?;
            if kv_index.insert(key.clone(), kvs.len()).is_some() {
                return Err(GgufError::Malformed {
                    offset: key_at,
                    what: format!("duplicate metadata key '{key}'"),
                });
            }
            kvs.push(KvSpan {
                key,
                value_start,
                value_end: c.pos,
                value_type,
            });
        }

        let mut f = GgufFile {
            storage: Storage::Owned(Vec::new()),
            path: None,
            version,
            alignment: DEFAULT_ALIGNMENT,
            kvs,
            kv_index,
            tensors: Vec::new(),
            tensor_index: HashMap::new(),
            infos_end: 0,
            data_offset: 0,
        };
        if let Some(v) = f.value_in(data, keys::general::ALIGNMENT) {
            let a = match v {
                ValueRef::U32(a) => a as u64,
                other => {
                    return Err(GgufError::BadKey {
                        key: keys::general::ALIGNMENT.into(),
                        what: format!("must be a u32, found {}", other.type_name()),
                    })
                }
            };
            if a == 0 || !a.is_power_of_two() {
                return Err(GgufError::BadKey {
                    key: keys::general::ALIGNMENT.into(),
                    what: format!("alignment {a} is not a power of two"),
                });
            }
            f.alignment = a;
        }

        let mut tensors = Vec::with_capacity(n_tensors.min(4096) as usize);
        let mut tensor_index = HashMap::with_capacity(n_tensors.min(4096) as usize);
        for i in 0..n_tensors {
            let at = c.offset();
            let name = c.string(&|| format!("name of tensor {i}"))?;
            let name = std::str::from_utf8(name)
                .map_err(|_| GgufError::Malformed {
                    offset: at,
                    what: format!("name of tensor {i} is not UTF-8"),
                })?
                .to_owned();
            let bad = |what: String| GgufError::BadTensor {
                name: name.clone(),
                what,
            };
            let n_dims = c.u32(&|| format!("dimension count of tensor '{name}'"))?;
            if n_dims == 0 || n_dims as usize > MAX_DIMS {
                return Err(bad(format!(
                    "{n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&|| format!("dimensions of tensor '{name}'"))?);
            }
            let tid = c.u32(&|| format!("type of tensor '{name}'"))?;
            let ty =
                GgmlType::from_id(tid).ok_or_else(|| bad(format!("unknown ggml type id {tid}")))?;
            if !ty.traits().in_gguf {
                return Err(GgufError::RemovedType { name, ty });
            }
            let offset = c.u64(&|| format!("data offset of tensor '{name}'"))?;
            let mut n_elements: u64 = 1;
            for &d in &dims {
                n_elements = n_elements
                    .checked_mul(d)
                    .filter(|&n| n <= i64::MAX as u64)
                    .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
            }
            if dims[0] % ty.block_size() as u64 != 0 {
                return Err(bad(format!(
                    "row length {} is not a multiple of {}'s block size {}",
                    dims[0],
                    ty,
                    ty.block_size()
                )));
            }
            let n_bytes = ty
                .row_size(n_elements)
                .ok_or_else(|| bad(format!("byte size of shape {dims:?} overflows")))?;
            if offset % f.alignment != 0 {
                return Err(bad(format!(
                    "data offset {offset} is not a multiple of the alignment {}",
                    f.alignment
                )));
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(GgufError::Malformed {
                    offset: at,
                    what: format!("duplicate tensor name '{name}'"),
                });
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                n_bytes,
            });
        }
        f.infos_end = c.offset();
        let data_offset =
            align_up(f.infos_end, f.alignment).ok_or_else(|| GgufError::Malformed {
                offset: f.infos_end,
                what: "data offset overflows".into(),
            })?;
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(GgufError::BadTensor {
                        name: t.name.clone(),
                        what: format!(
                        "data [{} + {}, {} bytes] runs past the end of the {file_len}-byte file",
                        data_offset, t.offset, t.n_bytes
                    ),
                    })
                }
            }
        }
        f.data_offset = data_offset;
        f.tensors = tensors;
        f.tensor_index = tensor_index;
        f.storage = storage;
        Ok(f)
    }

    fn value_in<'a>(&self, data: &'a [u8], key: &str) -> Option<ValueRef<'a>> {
        let kv = &self.kvs[*self.kv_index.get(key)?];
        let mut c = Cursor::new(&data[kv.value_start..kv.value_end], kv.value_start as u64);
        Some(
            c.read_value(kv.value_type, 0)
                .expect("value validated at parse"),
        )
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// File offset where tensor data starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    pub fn file_len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }
    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// Metadata entries in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, ValueRef<'_>)> + '_ {
        let data = self.storage.bytes();
        self.kvs.iter().map(move |kv| {
            let mut c = Cursor::new(&data[kv.value_start..kv.value_end], kv.value_start as u64);
            (
                kv.key.as_str(),
                c.read_value(kv.value_type, 0)
                    .expect("value validated at parse"),
            )
        })
    }

    pub fn n_metadata(&self) -> usize {
        self.kvs.len()
    }

    /// A metadata value, if present.
    pub fn value(&self, key: &str) -> Option<ValueRef<'_>> {
        self.value_in(self.storage.bytes(), key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.kv_index.contains_key(key)
    }

    /// Typed access: `file.get::<u32>("llama.block_count")`. Integers convert when the value
    /// fits the requested type; a missing key or a wrong type is an error naming the key.
    pub fn get<'a, T: FromValue<'a>>(&'a self, key: &str) -> Result<T> {
        let v = self
            .value(key)
            .ok_or_else(|| GgufError::KeyNotFound(key.to_owned()))?;
        T::from_value(&v).ok_or_else(|| GgufError::TypeMismatch {
            key: key.to_owned(),
            expected: T::EXPECTED,
            found: describe(&v),
        })
    }

    /// Like [`get`](Self::get), but `Ok(None)` when the key is absent.
    pub fn get_opt<'a, T: FromValue<'a>>(&'a self, key: &str) -> Result<Option<T>> {
        if self.contains_key(key) {
            self.get(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An array value (strings stay in place until iterated).
    pub fn get_array(&self, key: &str) -> Result<ArrayRef<'_>> {
        self.get::<ArrayRef<'_>>(key)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's data, in place (no copy).
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let t = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::TensorNotFound(name.to_owned()))?;
        Ok(self.data_of(t))
    }

    /// Data of a tensor info from this file (bounds were checked at open).
    pub fn data_of(&self, t: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + t.offset) as usize;
        &self.storage.bytes()[start..start + t.n_bytes as usize]
    }

    /// Hint that bytes `range` of `t`'s data won't be read again soon (the model keeps a
    /// converted copy): on a memory map their pages leave the resident set, and are read again
    /// from the file if they are touched. In-memory files are left alone. Only whole pages
    /// inside the range are released; a range past the tensor's end is clipped.
    pub fn release_pages_of(&self, t: &TensorInfo, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Storage::Mmap(m) = &self.storage {
            const PAGE: usize = 4096;
            let base = (self.data_offset + t.offset) as usize;
            let n = t.n_bytes as usize;
            let (start, end) = (base + range.start.min(n), base + range.end.min(n));
            let (a, b) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
            if a < b && b <= m.len() {
                // SAFETY: a read-only, file-backed map: dropped pages are re-read from the
                // file on the next access, so no reference into the map sees other bytes.
                // Failure only means the pages stay resident.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a)
                };
            }
        }
        #[cfg(not(unix))]
        let _ = (t, range);
    }
}

fn describe(v: &ValueRef<'_>) -> String {
    match v {
        ValueRef::String(_) | ValueRef::Array(_) => v.type_name(),
        _ => format!("{} ({v})", v.type_name()),
    }
}

pub(crate) fn align_up(x: u64, a: u64) -> Option<u64> {
    Some(x.checked_add(a - 1)? / a * a)
}
