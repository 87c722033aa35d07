//! Model quantization as llama.cpp's `llama-quantize` does it: a file-type preset
//! ([`FileType`]) gives each tensor a type by llama.cpp's rules ([`rules`]); tensors are
//! converted one at a time (dequantize → ggml-exact quantizer of `ferrite-quants`, rows spread
//! over threads) and streamed into a temp file renamed on success. Importance matrices in
//! llama.cpp's GGUF format are read and written by [`imatrix`].

pub mod ftype;
pub mod imatrix;
pub mod imatrix_collect;
pub mod rules;

use std::collections::BTreeMap;
use std::path::Path;

use ferrite_gguf::{keys, GgmlType, GgufError, GgufFile, GgufModel, GgufWriter, Value, ValueRef};
use ferrite_quants::QuantError;

pub use ftype::{is_quantized, FileType};
pub use imatrix::Imatrix;
pub use imatrix_collect::Collector as ImatrixCollector;
pub use rules::{Category, ModelFacts, TypeOptions};

/// `GGML_QNT_VERSION`, written as `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{tensor}: {source}")]
    Quant { tensor: String, source: QuantError },
    #[error("no tensor type fallback is defined for type {0}")]
    NoFallback(GgmlType),
    #[error("cannot determine the layer of tensor {0}")]
    BadLayer(String),
    #[error("tensor {tensor} is already quantized ({ty}); requantizing needs --allow-requantize")]
    Requantize { tensor: String, ty: GgmlType },
    #[error("imatrix: {0}")]
    Imatrix(String),
    #[error("imatrix size {got} is different from tensor size {expected} for {tensor}")]
    ImatrixSize {
        tensor: String,
        got: usize,
        expected: usize,
    },
    #[error("model metadata: {0}")]
    Metadata(String),
}

pub type Result<T, E = QuantizeError> = std::result::Result<T, E>;

/// What to do.
#[derive(Debug, Clone)]
pub struct Params {
    pub ftype: FileType,
    pub n_threads: usize,
    pub allow_requantize: bool,
    pub output_tensor_type: Option<GgmlType>,
    pub token_embedding_type: Option<GgmlType>,
    pub pure: bool,
    /// An importance matrix and the file name recorded in `quantize.imatrix.file`.
    pub imatrix: Option<(String, Imatrix)>,
}

impl Params {
    pub fn new(ftype: FileType) -> Params {
        Params {
            ftype,
            n_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            allow_requantize: false,
            output_tensor_type: None,
            token_embedding_type: None,
            pure: false,
            imatrix: None,
        }
    }
}

/// One tensor of the output, in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    pub name: String,
    pub dims: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
}

impl TensorPlan {
    pub fn out_bytes(&self) -> u64 {
        let n: u64 = self.dims.iter().product();
        self.to.row_size(n).unwrap_or(0)
    }
    pub fn in_bytes(&self) -> u64 {
        let n: u64 = self.dims.iter().product();
        self.from.row_size(n).unwrap_or(0)
    }
}

/// Progress of [`quantize_file`].
#[derive(Debug)]
pub enum Event<'a> {
    /// The plan is made; tensors follow.
    Start {
        plan: &'a [TensorPlan],
        n_fallback: usize,
    },
    /// Tensor `index` (0-based) has been written.
    Tensor {
        index: usize,
        plan: &'a TensorPlan,
        imatrix_used: bool,
    },
}

/// Totals of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub n_tensors: usize,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub n_elements: u64,
    pub n_fallback: usize,
    pub type_counts: BTreeMap<GgmlType, usize>,
}

fn count(meta: &GgufFile, key: &str) -> Result<Option<u64>> {
    Ok(match meta.value(key) {
        None => None,
        Some(v) => {
            if let Some(x) = v.as_i128() {
                Some(x.max(0) as u64)
            } else if let Some(a) = v.as_array() {
                // per-layer arrays: layer 0, as llama.cpp's n_gqa() looks at
                a.iter()
                    .next()
                    .and_then(|x: ValueRef<'_>| x.as_i128())
                    .map(|x| x.max(0) as u64)
            } else {
                return Err(QuantizeError::Metadata(format!(
                    "{key} is {}, expected an integer",
                    v.type_name()
                )));
            }
        }
    })
}

/// The facts the type rules need, from the metadata.
pub fn model_facts(meta: &GgufFile) -> Result<ModelFacts> {
    let arch: String = meta
        .get_opt::<String>(keys::general::ARCHITECTURE)?
        .ok_or_else(|| {
            QuantizeError::Metadata(format!("{} is missing", keys::general::ARCHITECTURE))
        })?;
    let k = |s| keys::arch::key(&arch, s);
    let n_layer = count(meta, &k(keys::arch::BLOCK_COUNT))?.unwrap_or(0) as usize;
    let n_head = count(meta, &k(keys::arch::ATTENTION_HEAD_COUNT))?.unwrap_or(0);
    let n_head_kv = count(meta, &k(keys::arch::ATTENTION_HEAD_COUNT_KV))?.unwrap_or(n_head);
    let n_expert = count(meta, &k(keys::arch::EXPERT_COUNT))?.unwrap_or(0) as usize;
    Ok(ModelFacts {
        arch,
        n_layer,
        n_gqa: n_head.checked_div(n_head_kv).unwrap_or(0) as usize,
        n_expert,
    })
}

/// The output's tensors, in llama.cpp's order, with their target types; and the number of
/// fallbacks taken. Fails before anything is written: requantizing without permission, an
/// imatrix of the wrong size.
pub fn plan(model: &GgufModel, p: &Params) -> Result<(Vec<TensorPlan>, usize)> {
    let facts = model_facts(model.meta())?;
    let opts = TypeOptions {
        output_tensor_type: p.output_tensor_type,
        token_embedding_type: p.token_embedding_type,
        pure: p.pure,
        has_imatrix: p.imatrix.is_some(),
    };
    let mut tensors: Vec<_> = model.tensors().collect();
    tensors.sort_by(|a, b| rules::sort_key(&a.name).cmp(&rules::sort_key(&b.name)));
    let mut chooser = rules::Chooser::new(
        p.ftype,
        &facts,
        &opts,
        tensors.iter().map(|t| t.name.as_str()),
    );
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let to = chooser.choose(&t.name, &t.dims, t.ty)?;
        if to != t.ty && is_quantized(t.ty) && !p.allow_requantize {
            return Err(QuantizeError::Requantize {
                tensor: t.name.clone(),
                ty: t.ty,
            });
        }
        out.push(TensorPlan {
            name: t.name.clone(),
            dims: t.dims.clone(),
            from: t.ty,
            to,
        });
    }
    Ok((out, chooser.n_fallback))
}

/// Convert one tensor's data: rows of `n_per_row` elements of type `from` to type `to`.
/// `imatrix` holds `n_per_row` weights per matrix of `rows_per_matrix` rows (experts).
/// The rows are spread over `n_threads` threads; the result does not depend on their number.
pub fn convert_tensor(
    name: &str,
    from: GgmlType,
    to: GgmlType,
    src: &[u8],
    (n_per_row, rows_per_matrix): (usize, usize),
    imatrix: Option<&[f32]>,
    n_threads: usize,
) -> Result<Vec<u8>> {
    let qerr = |source| QuantizeError::Quant {
        tensor: name.to_owned(),
        source,
    };
    let rb_in = ferrite_quants::row_bytes(from, n_per_row).map_err(qerr)?;
    let rb_out = ferrite_quants::row_bytes(to, n_per_row).map_err(qerr)?;
    if rb_in == 0 || !src.len().is_multiple_of(rb_in) {
        return Err(qerr(QuantError::BadLength {
            ty: from,
            what: "tensor",
            got: src.len(),
            expected: rb_in,
        }));
    }
    let n_rows = src.len() / rb_in;
    let mut dst = vec![0u8; n_rows * rb_out];
    // Enough rows per job to amortise, small enough to balance (llama.cpp: 16384 elements).
    let rows_per_job = (16384 / n_per_row.max(1)).max(1);
    let n_jobs = n_rows.div_ceil(rows_per_job);
    let n_threads = n_threads.clamp(1, n_jobs.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let work = || -> Result<()> {
        let mut row = vec![0f32; n_per_row];
        loop {
            let job = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if job >= n_jobs {
                return Ok(());
            }
            let r0 = job * rows_per_job;
            let r1 = (r0 + rows_per_job).min(n_rows);
            for r in r0..r1 {
                ferrite_quants::dequantize_row(from, &src[r * rb_in..(r + 1) * rb_in], &mut row)
                    .map_err(qerr)?;
                // SAFETY: each row index is handed to exactly one job, so the slices are disjoint.
                let out = unsafe {
                    std::slice::from_raw_parts_mut(dst_ptr.get().add(r * rb_out), rb_out)
                };
                let w = imatrix.map(|m| {
                    let mat = r / rows_per_matrix.max(1);
                    &m[mat * n_per_row..(mat + 1) * n_per_row]
                });
                ferrite_quants::quantize_row_imatrix(to, &row, out, w).map_err(qerr)?;
            }
        }
    };
    if n_threads == 1 {
        work()?;
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n_threads).map(|_| s.spawn(work)).collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("quantize worker panicked"))
        })?;
    }
    Ok(dst)
}

struct SendPtr(*mut u8);
// SAFETY: used only to hand disjoint row ranges to scoped threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(&self) -> *mut u8 {
        self.0
    }
}

/// Quantize `input` (one file or the first of its shards) into `output`.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    p: &Params,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Report> {
    let model = GgufModel::open(input)?;
    let (plan, n_fallback) = plan(&model, p)?;
    let weights = match &p.imatrix {
        Some((_, im)) => Some(im.weights()?),
        None => None,
    };
    // imatrix sizes are checked up front so that a bad one leaves no output behind
    if let Some(w) = &weights {
        for t in &plan {
            if t.to == t.from {
                continue;
            }
            if let Some(v) = w.get(&t.name) {
                let expected = (t.dims[0] * t.dims.get(2).copied().unwrap_or(1)) as usize;
                if v.len() != expected && Category::of(&t.name) != Category::TokenEmbd {
                    return Err(QuantizeError::ImatrixSize {
                        tensor: t.name.clone(),
                        got: v.len(),
                        expected,
                    });
                }
            }
        }
    }
    on_event(Event::Start {
        plan: &plan,
        n_fallback,
    });

    let meta = model.meta();
    let mut w = GgufWriter::new(output);
    for (k, v) in meta.metadata() {
        if k == keys::split::NO || k == keys::split::COUNT || k == keys::split::TENSORS_COUNT {
            continue;
        }
        w.add_kv(k, v.to_owned_raw());
    }
    // llama.cpp sets these by removing and re-adding them: they end up last.
    let set_last = |w: &mut GgufWriter, k: &str, v: Value| {
        w.remove_kv(k);
        w.add_kv(k, v);
    };
    set_last(
        &mut w,
        keys::general::QUANTIZATION_VERSION,
        Value::U32(QUANTIZATION_VERSION),
    );
    set_last(&mut w, keys::general::FILE_TYPE, Value::U32(p.ftype.id()));
    if let (Some((file, im)), Some(wts)) = (&p.imatrix, &weights) {
        let trunc = |s: &str| s.chars().take(127).collect::<String>();
        set_last(&mut w, "quantize.imatrix.file", Value::String(trunc(file)));
        if let Some(d) = im.datasets.first() {
            set_last(&mut w, "quantize.imatrix.dataset", Value::String(trunc(d)));
        }
        set_last(
            &mut w,
            "quantize.imatrix.entries_count",
            Value::U32(wts.len() as u32),
        );
        if im.chunk_count > 0 {
            set_last(
                &mut w,
                "quantize.imatrix.chunks_count",
                Value::U32(im.chunk_count),
            );
        }
    }
    for t in &plan {
        w.add_tensor(t.name.clone(), t.to, &t.dims)?;
    }
    let mut data = w.begin_data()?;
    let mut report = Report {
        n_tensors: plan.len(),
        in_bytes: 0,
        out_bytes: 0,
        n_elements: 0,
        n_fallback,
        type_counts: BTreeMap::new(),
    };
    for (index, t) in plan.iter().enumerate() {
        let src = model.tensor_data(&t.name)?;
        let mut imatrix_used = false;
        if t.to == t.from {
            data.write_tensor(&t.name, src)?;
        } else {
            let n_per_row = t.dims[0] as usize;
            let rows_per_matrix = t.dims.get(1).copied().unwrap_or(1) as usize;
            let im = weights
                .as_ref()
                .and_then(|w| w.get(&t.name))
                .filter(|v| v.len() == n_per_row * t.dims.get(2).copied().unwrap_or(1) as usize);
            imatrix_used = im.is_some();
            let out = convert_tensor(
                &t.name,
                t.from,
                t.to,
                src,
                (n_per_row, rows_per_matrix),
                im.map(|v| v.as_slice()),
                p.n_threads,
            )?;
            data.write_tensor(&t.name, &out)?;
        }
        report.in_bytes += src.len() as u64;
        report.out_bytes += t.out_bytes();
        report.n_elements += t.dims.iter().product::<u64>();
        *report.type_counts.entry(t.to).or_default() += 1;
        on_event(Event::Tensor {
            index,
            plan: t,
            imatrix_used,
        });
    }
    data.finish()?;
    Ok(report)
}
