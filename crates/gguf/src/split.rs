//! Sharded models: `name-00001-of-00003.gguf` files, each with `split.no` / `split.count`,
//! read as one model. Metadata comes from the first shard; tensors from all of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::reader::{GgufFile, TensorInfo};
use crate::{keys, GgufError, Result};

/// A model made of one or more GGUF files.
pub struct GgufModel {
    shards: Vec<GgufFile>,
    /// tensor name → (shard, index in that shard's tensor list)
    index: HashMap<String, (usize, usize)>,
}

/// If `path` names a shard (`…-00001-of-00003.gguf`), its prefix, number and count.
pub fn parse_split_path(path: &Path) -> Option<(String, u32, u32)> {
    let s = path.to_str()?;
    let stem = s.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    if no.len() != 5 || count.len() != 5 {
        return None;
    }
    Some((prefix.to_owned(), no.parse().ok()?, count.parse().ok()?))
}

/// The path of shard `no` (1-based) of `count`, as llama.cpp names them.
pub fn split_path(prefix: &str, no: u32, count: u32) -> PathBuf {
    PathBuf::from(format!("{prefix}-{no:05}-of-{count:05}.gguf"))
}

impl GgufModel {
    /// Open a single file, or every shard when `path` is any shard of a split model.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufModel> {
        let path = path.as_ref();
        let first = GgufFile::open(path)?;
        let count: u32 = match first.get_opt::<u32>(keys::split::COUNT) {
            Ok(c) => c.unwrap_or(1),
            Err(e) => return Err(e.in_file(path)),
        };
        if count <= 1 {
            return Self::from_shards(vec![first]);
        }
        let (prefix, _, name_count) = parse_split_path(path).ok_or_else(|| {
            GgufError::Split(format!(
                "{} has split.count = {count} but its name is not of the form NAME-0000N-of-0000M.gguf",
                path.display()
            ))
        })?;
        if name_count != count {
            return Err(GgufError::Split(format!(
                "{}: file name says {name_count} shards, split.count says {count}",
                path.display()
            )));
        }
        let mut shards = Vec::with_capacity(count as usize);
        for no in 1..=count {
            let p = split_path(&prefix, no, count);
            shards.push(GgufFile::open(&p)?);
        }
        drop(first);
        Self::from_shards(shards)
    }

    /// Assemble already-open shards (in order). Each must carry `split.no` = its index when
    /// there is more than one.
    pub fn from_shards(shards: Vec<GgufFile>) -> Result<GgufModel> {
        if shards.is_empty() {
            return Err(GgufError::Split("no files".into()));
        }
        let n = shards.len();
        let mut index = HashMap::new();
        for (si, f) in shards.iter().enumerate() {
            let name = f
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("shard {si}"));
            if n > 1 {
                let no: u32 = f
                    .get(keys::split::NO)
                    .map_err(|e| GgufError::Split(format!("{name}: {e}")))?;
                let count: u32 = f
                    .get(keys::split::COUNT)
                    .map_err(|e| GgufError::Split(format!("{name}: {e}")))?;
                // split.no is 0-based in llama.cpp's gguf-split.
                if no as usize != si || count as usize != n {
                    return Err(GgufError::Split(format!(
                        "{name}: split.no = {no}, split.count = {count}, but it is shard {si} of {n}"
                    )));
                }
            }
            for (ti, t) in f.tensors().iter().enumerate() {
                if index.insert(t.name.clone(), (si, ti)).is_some() {
                    return Err(GgufError::Split(format!(
                        "tensor '{}' appears in more than one shard",
                        t.name
                    )));
                }
            }
        }
        Ok(GgufModel { shards, index })
    }

    /// The first shard, which holds the model's metadata.
    pub fn meta(&self) -> &GgufFile {
        &self.shards[0]
    }

    pub fn shards(&self) -> &[GgufFile] {
        &self.shards
    }

    /// All tensors across shards, in shard order.
    pub fn tensors(&self) -> impl Iterator<Item = &TensorInfo> + '_ {
        self.shards.iter().flat_map(|f| f.tensors().iter())
    }

    pub fn n_tensors(&self) -> usize {
        self.index.len()
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index
            .get(name)
            .map(|&(s, t)| &self.shards[s].tensors()[t])
    }

    /// [`GgufFile::release_pages_of`] for bytes `range` of the tensor `name` (no-op if there
    /// is none).
    pub fn release_tensor_pages(&self, name: &str, range: std::ops::Range<usize>) {
        if let Some(&(s, t)) = self.index.get(name) {
            let f = &self.shards[s];
            f.release_pages_of(&f.tensors()[t], range);
        }
    }

    /// A tensor's data in place, from whichever shard holds it.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let &(s, t) = self
            .index
            .get(name)
            .ok_or_else(|| GgufError::TensorNotFound(name.to_owned()))?;
        let f = &self.shards[s];
        Ok(f.data_of(&f.tensors()[t]))
    }
}
