//! Importance matrices in llama.cpp's GGUF format (`tools/imatrix`): per weight, tensors
//! `<weight>.in_sum2` (F32, `[n_per_row, n_mat]`: sum over tokens of the squared input
//! activations) and `<weight>.counts` (F32, `[1, n_mat]`: tokens seen), metadata
//! `general.type = "imatrix"`, `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`.

use std::collections::BTreeMap;
use std::path::Path;

use ferrite_gguf::{keys, GgmlType, GgufFile, GgufWriter, Value, ValueType};

use crate::QuantizeError;

pub const KEY_DATASETS: &str = keys::imatrix::DATASETS;
pub const KEY_CHUNK_COUNT: &str = keys::imatrix::CHUNK_COUNT;
pub const KEY_CHUNK_SIZE: &str = keys::imatrix::CHUNK_SIZE;

/// Raw statistics of one weight: `n_mat` matrices (experts) of `n_per_row` columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    pub in_sum2: Vec<f32>,
    pub counts: Vec<f32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imatrix {
    pub stats: BTreeMap<String, Stat>,
    pub datasets: Vec<String>,
    pub chunk_count: u32,
    pub chunk_size: u32,
}

impl Imatrix {
    /// Read a GGUF imatrix file.
    pub fn load(path: &Path) -> Result<Imatrix, QuantizeError> {
        let f = GgufFile::open(path)?;
        let mut im = Imatrix {
            chunk_count: f.get_opt::<u32>(KEY_CHUNK_COUNT)?.unwrap_or(0),
            chunk_size: f.get_opt::<u32>(KEY_CHUNK_SIZE)?.unwrap_or(0),
            ..Default::default()
        };
        if f.contains_key(KEY_DATASETS) {
            let a = f.get_array(KEY_DATASETS)?;
            if let Some(s) = a.strings() {
                im.datasets = s.map(|b| String::from_utf8_lossy(b).into_owned()).collect();
            }
        }
        let read_f32 = |name: &str| -> Result<Vec<f32>, QuantizeError> {
            let t = f.tensor_info(name).ok_or_else(|| {
                QuantizeError::Imatrix(format!("{} has no tensor {name}", path.display()))
            })?;
            if t.ty != GgmlType::F32 {
                return Err(QuantizeError::Imatrix(format!(
                    "{name} is {}, expected f32",
                    t.ty
                )));
            }
            let d = f.data_of(t);
            Ok(d.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        for t in f.tensors() {
            let Some(base) = t.name.strip_suffix(".in_sum2") else {
                continue;
            };
            let in_sum2 = read_f32(&t.name)?;
            let counts = read_f32(&format!("{base}.counts"))?;
            if counts.is_empty() || !in_sum2.len().is_multiple_of(counts.len()) {
                return Err(QuantizeError::Imatrix(format!(
                    "{base}: {} sums do not split into {} matrices",
                    in_sum2.len(),
                    counts.len()
                )));
            }
            im.stats.insert(base.to_owned(), Stat { in_sum2, counts });
        }
        if im.stats.is_empty() {
            return Err(QuantizeError::Imatrix(format!(
                "{} holds no *.in_sum2 tensors",
                path.display()
            )));
        }
        Ok(im)
    }

    /// Importance weights per weight name as llama-quantize derives them: `in_sum2 / count`
    /// per matrix (1 where a matrix saw no tokens). Non-finite values are an error.
    pub fn weights(&self) -> Result<BTreeMap<String, Vec<f32>>, QuantizeError> {
        let mut out = BTreeMap::new();
        for (name, s) in &self.stats {
            let n_mat = s.counts.len();
            let ne0 = s.in_sum2.len() / n_mat;
            let mut e = vec![0f32; s.in_sum2.len()];
            for j in 0..n_mat {
                let c = s.counts[j];
                for i in 0..ne0 {
                    e[j * ne0 + i] = if c > 0.0 {
                        s.in_sum2[j * ne0 + i] / c
                    } else {
                        1.0
                    };
                }
            }
            if let Some(x) = e.iter().find(|x| !x.is_finite()) {
                return Err(QuantizeError::Imatrix(format!(
                    "{name}: non-finite value {x}"
                )));
            }
            out.insert(name.clone(), e);
        }
        Ok(out)
    }

    /// Write in llama.cpp's GGUF imatrix layout (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), QuantizeError> {
        let mut w = GgufWriter::new(path);
        w.add_kv(keys::general::TYPE, "imatrix");
        w.add_kv(
            KEY_DATASETS,
            Value::Array(
                ValueType::String,
                self.datasets
                    .iter()
                    .map(|d| Value::String(d.clone()))
                    .collect(),
            ),
        );
        w.add_kv(KEY_CHUNK_COUNT, self.chunk_count);
        w.add_kv(KEY_CHUNK_SIZE, self.chunk_size);
        for (name, s) in &self.stats {
            let n_mat = s.counts.len() as u64;
            w.add_tensor(
                format!("{name}.in_sum2"),
                GgmlType::F32,
                &[s.in_sum2.len() as u64 / n_mat, n_mat],
            )?;
            w.add_tensor(format!("{name}.counts"), GgmlType::F32, &[1, n_mat])?;
        }
        let mut d = w.begin_data()?;
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for (name, s) in &self.stats {
            d.write_tensor(&format!("{name}.in_sum2"), &bytes(&s.in_sum2))?;
            d.write_tensor(&format!("{name}.counts"), &bytes(&s.counts))?;
        }
        d.finish()?;
        Ok(())
    }
}
