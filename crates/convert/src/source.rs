//! The weights: `model.safetensors` or `model-0000N-of-0000M.safetensors` shards (with
//! `model.safetensors.index.json`), memory-mapped and read through the `safetensors` crate's
//! header parser. Nothing is copied until a tensor is converted.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors};

use crate::arch::{PlannedTensor, TensorSource};
use crate::error::{ConvertError, Result};
use crate::hf::read_json_opt;

/// Where one tensor lives.
#[derive(Debug, Clone)]
pub(crate) struct SrcTensor {
    pub name: String,
    pub shard: usize,
    pub dtype: Dtype,
    /// Torch order (row-major, last dimension contiguous).
    pub shape: Vec<usize>,
    /// Absolute byte range in the shard file.
    pub start: usize,
    pub end: usize,
}

impl SrcTensor {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

pub(crate) struct Weights {
    pub shards: Vec<(PathBuf, Mmap)>,
    /// In llama.cpp's visiting order: shards sorted by file name, tensors by data offset
    /// within a shard (the header's order as safetensors writes it).
    pub tensors: Vec<SrcTensor>,
    index: HashMap<String, usize>,
}

impl Weights {
    pub fn open(dir: &Path) -> Result<Weights> {
        let mut parts: Vec<String> = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| ConvertError::io(dir, e))?;
        for e in entries {
            let e = e.map_err(|e| ConvertError::io(dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("model") && name.ends_with(".safetensors") {
                parts.push(name);
            }
        }
        parts.sort();

        let index_path = dir.join("model.safetensors.index.json");
        let mut from_index: Option<BTreeSet<String>> = None;
        if let Some(index) = read_json_opt(&index_path)? {
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ConvertError::BadConfig {
                    path: index_path.clone(),
                    key: "weight_map".into(),
                    what: "missing or not an object".into(),
                })?;
            let mut files = BTreeSet::new();
            for (k, v) in map {
                let f = v.as_str().ok_or_else(|| ConvertError::BadConfig {
                    path: index_path.clone(),
                    key: format!("weight_map.{k}"),
                    what: "expected a file name".into(),
                })?;
                files.insert(f.to_owned());
            }
            parts = files.into_iter().collect();
            from_index = Some(map.keys().cloned().collect());
        }
        if parts.is_empty() {
            return Err(ConvertError::NoWeights {
                dir: dir.to_owned(),
            });
        }

        let mut shards = Vec::new();
        let mut tensors = Vec::new();
        let mut index = HashMap::new();
        for part in &parts {
            let path = dir.join(part);
            let file = File::open(&path).map_err(|e| ConvertError::io(&path, e))?;
            // SAFETY: the file is opened read-only and only read through this map; a checkpoint
            // changed by another process while converting is outside what we promise.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| ConvertError::io(&path, e))?;
            let (n, meta) =
                SafeTensors::read_metadata(&map).map_err(|e| ConvertError::Safetensors {
                    path: path.clone(),
                    what: format!("invalid safetensors file: {e}"),
                })?;
            let base = 8 + n;
            let shard = shards.len();
            for name in meta.offset_keys() {
                let info = meta.info(&name).expect("key from the same header");
                let t = SrcTensor {
                    name: name.clone(),
                    shard,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: base + info.data_offsets.0,
                    end: base + info.data_offsets.1,
                };
                if index.insert(name.clone(), tensors.len()).is_some() {
                    return Err(ConvertError::Safetensors {
                        path: path.clone(),
                        what: format!("tensor `{name}` appears in two shards"),
                    });
                }
                tensors.push(t);
            }
            shards.push((path, map));
        }

        if let Some(names) = from_index {
            let have: BTreeSet<String> = index.keys().cloned().collect();
            let missing: Vec<_> = names.difference(&have).cloned().collect();
            let extra: Vec<_> = have.difference(&names).cloned().collect();
            if let Some(m) = missing.first() {
                return Err(ConvertError::MissingTensor {
                    path: index_path,
                    name: m.clone(),
                });
            }
            if !extra.is_empty() {
                return Err(ConvertError::Safetensors {
                    path: index_path,
                    what: format!(
                        "shards hold tensors the weight map does not list: {}",
                        extra.join(", ")
                    ),
                });
            }
        }
        Ok(Weights {
            shards,
            tensors,
            index,
        })
    }

    pub fn get(&self, name: &str) -> Option<&SrcTensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn bytes(&self, t: &SrcTensor) -> &[u8] {
        &self.shards[t.shard].1[t.start..t.end]
    }

    /// Drop the mapped pages of a planned tensor's sources from this process (they stay in the
    /// page cache; a later read maps them again). Only whole 64 KiB-aligned pages inside the
    /// tensors' ranges, so neighbours are untouched and any page size up to 64 KiB fits.
    pub fn release(&self, p: &PlannedTensor) {
        const ALIGN: usize = 1 << 16;
        let names: &[String] = match &p.source {
            TensorSource::Tensor { name, .. } => std::slice::from_ref(name),
            TensorSource::Stack(names) => names,
            TensorSource::Values(_) => &[],
        };
        for t in names.iter().filter_map(|n| self.get(n)) {
            let (start, end) = (t.start.next_multiple_of(ALIGN), t.end / ALIGN * ALIGN);
            if end > start {
                // SAFETY: the map is read-only and file-backed, so MADV_DONTNEED only unmaps
                // pages: later reads fault them in again from the (unchanged) file. A failure
                // only means the pages stay resident.
                let _ = unsafe {
                    self.shards[t.shard].1.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }

    pub fn path_of(&self, t: &SrcTensor) -> &Path {
        &self.shards[t.shard].0
    }

    /// The dtype of the first 2-D (or larger) tensor: llama.cpp's `--outtype auto` heuristic.
    pub fn first_matrix_dtype(&self) -> Option<Dtype> {
        self.tensors
            .iter()
            .find(|t| t.shape.len() >= 2)
            .map(|t| t.dtype)
    }
}

/// Bytes per element of the float dtypes we convert, `None` for the rest.
pub(crate) fn float_size(d: Dtype) -> Option<usize> {
    match d {
        Dtype::F32 => Some(4),
        Dtype::F16 | Dtype::BF16 => Some(2),
        Dtype::F64 => Some(8),
        _ => None,
    }
}

/// Convert little-endian source elements to f32 (exact for F16/BF16; F64 rounds to nearest).
pub(crate) fn to_f32(d: Dtype, src: &[u8], dst: &mut [f32]) {
    match d {
        Dtype::F32 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::F16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        Dtype::BF16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        Dtype::F64 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(8)) {
                *o = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
            }
        }
        other => unreachable!("to_f32 called with {other:?}; callers check float_size first"),
    }
}
