//! Hugging Face transformers checkpoint → GGUF, writing what llama.cpp's
//! `convert_hf_to_gguf.py` writes: the same tensor names, types, shapes and data, and the same
//! metadata keys and values, plus a few settings its converter drops (see [`arch`]'s notes):
//!
//! - `llama.attention.sliding_window` for Mistral checkpoints with a sliding window;
//! - `{gemma2,gemma3}.attention.query_pre_attn_scalar`;
//! - `{gemma2,gemma3}.attention.sliding_window_pattern` as one BOOL per layer (true = local).
//!
//! Reads `config.json` (transformers 4 and 5 spellings), `model.safetensors` or its shards,
//! `tokenizer.json` / `tokenizer.model` / `tokenizer_config.json` / `special_tokens_map.json`,
//! `chat_template.{jinja,json}`, sentence-transformers pooling files, and
//! `generation_config.json` (compared with the written special ids, reported in the notes).
//! Tensors are converted and written one at a time, rows spread over threads.

mod arch;
mod error;
mod hf;
mod meta;
mod source;
mod tensors;
mod vocab;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ferrite_gguf::keys::{general as gk, tokenizer as tk};
use ferrite_gguf::{GgmlType, GgufWriter, Value};
use safetensors::tensor::Dtype;

pub use arch::Architecture;
pub use error::{ConvertError, Result};

/// `--outtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutType {
    F32,
    F16,
    BF16,
    Q8_0,
    /// As llama.cpp: BF16 when the first matrix of the checkpoint is BF16, else F16.
    #[default]
    Auto,
}

impl OutType {
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
            OutType::Q8_0 => "q8_0",
            OutType::Auto => "auto",
        }
    }

    /// The ggml type matrices are stored as (`None` for `Auto`).
    pub fn ggml_type(self) -> Option<GgmlType> {
        match self {
            OutType::F32 => Some(GgmlType::F32),
            OutType::F16 => Some(GgmlType::F16),
            OutType::BF16 => Some(GgmlType::BF16),
            OutType::Q8_0 => Some(GgmlType::Q8_0),
            OutType::Auto => None,
        }
    }

    /// `general.file_type` (llama.cpp's `LlamaFileType`).
    fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q8_0 => 7,
            OutType::BF16 => 32,
            OutType::Auto => unreachable!("resolved before use"),
        }
    }
}

impl std::str::FromStr for OutType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(OutType::F32),
            "f16" => Ok(OutType::F16),
            "bf16" => Ok(OutType::BF16),
            "q8_0" => Ok(OutType::Q8_0),
            "auto" => Ok(OutType::Auto),
            _ => Err(format!(
                "unknown outtype {s:?} (expected f32, f16, bf16, q8_0 or auto)"
            )),
        }
    }
}

impl std::fmt::Display for OutType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// The checkpoint folder (config.json, safetensors, tokenizer files).
    pub input_dir: PathBuf,
    /// Default: `<input_dir>/<folder name>-<outtype>.gguf`.
    pub output: Option<PathBuf>,
    pub outtype: OutType,
    /// Worker threads for the per-tensor work; 0 = all cores.
    pub threads: usize,
    /// Show a progress bar (tensors and bytes) on stderr.
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub output: PathBuf,
    pub architecture: Architecture,
    /// `general.architecture`.
    pub gguf_architecture: &'static str,
    /// The resolved output type (never `Auto`).
    pub outtype: OutType,
    pub n_tensors: usize,
    pub n_params: u64,
    /// Bytes of the written file.
    pub file_bytes: u64,
    pub n_vocab: usize,
    pub tokenizer_model: &'static str,
    pub tokenizer_pre: Option<String>,
    /// Things worth telling the user (pre-tokenizer fallback, generation_config differences).
    pub notes: Vec<String>,
    pub seconds: f64,
}

fn resolve_outtype(t: OutType, first_matrix: Option<Dtype>) -> OutType {
    match (t, first_matrix) {
        (OutType::Auto, Some(Dtype::BF16)) => OutType::BF16,
        (OutType::Auto, _) => OutType::F16,
        (t, _) => t,
    }
}

/// Convert a checkpoint folder to one GGUF file (written to a temp file, renamed at the end).
pub fn convert(opts: &ConvertOptions) -> Result<ConvertReport> {
    let started = Instant::now();
    let dir = opts.input_dir.as_path();
    let cfg = hf::HfConfig::load(dir)?;
    let hf_arch = cfg.architecture()?;
    let arch =
        Architecture::from_hf_class(&hf_arch).ok_or_else(|| ConvertError::UnknownArchitecture {
            path: cfg.path.clone(),
            arch: hf_arch.clone(),
            supported: Architecture::ALL.iter().map(|a| a.hf_class()).collect(),
        })?;
    let weights = source::Weights::open(dir)?;
    let outtype = resolve_outtype(opts.outtype, weights.first_matrix_dtype());
    let out_ty = outtype.ggml_type().expect("resolved");
    let threads = match opts.threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };

    let folder = std::fs::canonicalize(dir).map_err(|e| ConvertError::io(dir, e))?;
    let folder_name = folder
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let output = opts
        .output
        .clone()
        .unwrap_or_else(|| dir.join(format!("{folder_name}-{}.gguf", outtype.name())));

    // The vocabulary first: Gemma 3 cuts its embedding to the vocabulary size.
    let mut vocab_kv = meta::Kv::default();
    let vocab = arch::set_vocab(arch, dir, &cfg, &mut vocab_kv)?;
    let plan = arch::plan_tensors(arch, &cfg, &weights, vocab.n_tokens)?;

    let (mut total, mut shared, mut expert, mut expert_sum, mut n_expert_tensors) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for t in &plan.tensors {
        let n = t.n_elements() as u64;
        total += n;
        if t.name.contains("_exps.") && t.shape.len() >= 3 {
            let e = t.shape[t.shape.len() - 3] as u64;
            expert += n / e;
            expert_sum += e;
            n_expert_tensors += 1;
        } else {
            shared += n;
        }
    }
    let expert_count = expert_sum.checked_div(n_expert_tensors).unwrap_or(0);

    let mut kv = meta::Kv::default();
    kv.add(gk::ARCHITECTURE, arch.gguf_name());
    kv.add(gk::TYPE, "model");
    kv.add(gk::NAME, meta::id_to_title(&folder_name));
    kv.add(
        gk::SIZE_LABEL,
        meta::size_label(total, shared, expert, expert_count),
    );
    arch::set_params(arch, &cfg, &mut kv, outtype.file_type())?;
    kv.u32(gk::QUANTIZATION_VERSION, 2);
    for (k, v) in vocab_kv.entries {
        kv.add(k, v);
    }

    let mut notes = vocab.notes.clone();
    notes.extend(generation_config_notes(dir, &kv)?);

    let mut w = GgufWriter::new(&output);
    for (k, v) in kv.entries {
        w.add_kv(k, v);
    }
    let mut types = Vec::with_capacity(plan.tensors.len());
    let mut total_bytes = 0u64;
    for t in &plan.tensors {
        let ty = tensors::storage_type(&t.name, &t.shape, out_ty);
        let dims: Vec<u64> = t.shape.iter().rev().map(|&d| d as u64).collect();
        w.add_tensor(t.name.clone(), ty, &dims)?;
        total_bytes += ty.row_size(t.n_elements() as u64).unwrap_or(0);
        types.push(ty);
    }

    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}",
            )
            .expect("valid template"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let data = w.begin_data()?;
    write_tensors(data, &weights, &plan.tensors, &types, threads, &bar)?;
    bar.finish_and_clear();

    let file_bytes = std::fs::metadata(&output)
        .map_err(|e| ConvertError::io(&output, e))?
        .len();
    Ok(ConvertReport {
        output,
        architecture: arch,
        gguf_architecture: arch.gguf_name(),
        outtype,
        n_tensors: plan.tensors.len(),
        n_params: total,
        file_bytes,
        n_vocab: vocab.n_tokens,
        tokenizer_model: vocab.model,
        tokenizer_pre: vocab.pre,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Encode the tensors one at a time while a second thread writes the previous one (two
/// buffers, reused: memory stays about two tensors), then finish the file. Each source tensor's
/// pages are dropped from the mapping once encoded, so the checkpoint does not accumulate in
/// the resident set (it stays in the page cache).
fn write_tensors(
    mut data: ferrite_gguf::GgufDataWriter,
    weights: &source::Weights,
    plan: &[arch::PlannedTensor],
    types: &[GgmlType],
    threads: usize,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let n = plan.len();
    std::thread::scope(|s| {
        let (to_writer, jobs) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>, usize)>(1);
        let (give_back, free) = std::sync::mpsc::channel::<Vec<u8>>();
        let writer = s.spawn(move || -> Result<ferrite_gguf::GgufDataWriter> {
            for (i, buf, len) in jobs {
                data.write_tensor(&plan[i].name, &buf[..len])?;
                bar.inc(len as u64);
                let _ = give_back.send(buf);
            }
            Ok(data)
        });
        let mut made = 0;
        let mut produced = Ok(());
        for (i, (t, ty)) in plan.iter().zip(types).enumerate() {
            bar.set_message(format!("tensor {}/{n} {}", i + 1, t.name));
            let mut buf = if made < 2 {
                made += 1;
                Vec::new()
            } else {
                match free.recv() {
                    Ok(b) => b,
                    Err(_) => break, // the writer stopped: its error is reported below
                }
            };
            let row_len = t.shape.last().copied().unwrap_or(1).max(1);
            let len = match ferrite_quants::row_bytes(*ty, row_len) {
                Ok(rb) => rb * (t.n_elements() / row_len),
                Err(e) => {
                    produced = Err(ConvertError::Quantize {
                        name: t.name.clone(),
                        ty: ty.to_string(),
                        what: e.to_string(),
                    });
                    break;
                }
            };
            if buf.len() < len {
                buf.resize(len, 0); // every byte up to len is overwritten below
            }
            if let Err(e) = tensors::encode_into(weights, t, *ty, threads, &mut buf[..len]) {
                produced = Err(e);
                break;
            }
            weights.release(t);
            if to_writer.send((i, buf, len)).is_err() {
                break;
            }
        }
        drop(to_writer);
        let data = writer.join().expect("writer thread panicked")?;
        produced?;
        data.finish()?;
        Ok(())
    })
}

/// llama.cpp does not read generation_config.json; we compare its ids with the ones written
/// and report differences instead of changing the output.
fn generation_config_notes(dir: &Path, kv: &meta::Kv) -> Result<Vec<String>> {
    let path = dir.join("generation_config.json");
    let Some(gc) = hf::read_json_opt(&path)? else {
        return Ok(vec![]);
    };
    let mut notes = Vec::new();
    for (field, key) in [
        ("bos_token_id", tk::BOS_ID),
        ("eos_token_id", tk::EOS_ID),
        ("pad_token_id", tk::PAD_ID),
    ] {
        let Some(want) = gc.get(field).and_then(|v| v.as_u64()) else {
            continue;
        };
        match kv.get(key) {
            Some(Value::U32(have)) if u64::from(*have) == want => {}
            Some(Value::U32(have)) => notes.push(format!(
                "generation_config.json {field} = {want}, GGUF has {key} = {have}"
            )),
            _ => notes.push(format!(
                "generation_config.json {field} = {want}, GGUF has no {key}"
            )),
        }
    }
    Ok(notes)
}
