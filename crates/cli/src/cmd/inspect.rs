//! `ferrite inspect FILE.gguf [--full] [--json]`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use ferrite_gguf::{GgufModel, ValueRef};
use serde_json::{json, Value as Json};

#[derive(clap::Args)]
pub struct Args {
    /// GGUF file (any shard of a split model opens all shards).
    pub file: PathBuf,
    /// Print every element of long arrays (default: the first few and the length).
    #[arg(long)]
    pub full: bool,
    /// Emit JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arrays longer than this are summarised unless `--full`.
const ARRAY_PREVIEW: usize = 8;

pub fn run(a: Args) -> Result<()> {
    let model =
        GgufModel::open(&a.file).with_context(|| format!("inspecting {}", a.file.display()))?;
    let report = report(&model, a.full);
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(render_text(&report).as_bytes())?;
    }
    Ok(())
}

fn value_json(v: &ValueRef<'_>, full: bool) -> Json {
    match *v {
        ValueRef::U8(x) => json!(x),
        ValueRef::I8(x) => json!(x),
        ValueRef::U16(x) => json!(x),
        ValueRef::I16(x) => json!(x),
        ValueRef::U32(x) => json!(x),
        ValueRef::I32(x) => json!(x),
        ValueRef::U64(x) => json!(x),
        ValueRef::I64(x) => json!(x),
        // Shortest f32 repr, so 1e-6 prints as 1e-6 rather than its widened f64 digits.
        ValueRef::F32(x) => json!(x.to_string().parse::<f64>().unwrap_or(f64::NAN)),
        ValueRef::F64(x) => json!(x),
        ValueRef::Bool(x) => json!(x),
        ValueRef::String(b) => json!(String::from_utf8_lossy(b)),
        ValueRef::Array(a) => {
            let take = if full { usize::MAX } else { ARRAY_PREVIEW };
            let items: Vec<Json> = a.iter().take(take).map(|e| value_json(&e, full)).collect();
            if full || a.len() as usize <= ARRAY_PREVIEW {
                Json::Array(items)
            } else {
                json!({ "len": a.len(), "first": items })
            }
        }
    }
}

/// The whole report as JSON; the text view renders the same data.
pub fn report(model: &GgufModel, full: bool) -> Json {
    let f = model.meta();
    let metadata: Vec<Json> = f
        .metadata()
        .map(|(k, v)| json!({ "key": k, "type": v.type_name(), "value": value_json(&v, full) }))
        .collect();
    let mut by_type: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut tensors = Vec::new();
    let (mut n_params, mut n_bytes) = (0u64, 0u64);
    for (shard, file) in model.shards().iter().enumerate() {
        for t in file.tensors() {
            let e = by_type.entry(t.ty.name()).or_default();
            e.0 += 1;
            e.1 += t.n_elements();
            e.2 += t.n_bytes;
            n_params += t.n_elements();
            n_bytes += t.n_bytes;
            let mut j = json!({
                "name": t.name, "type": t.ty.name(), "shape": t.dims,
                "n_bytes": t.n_bytes, "offset": t.offset,
            });
            if model.shards().len() > 1 {
                j["shard"] = json!(shard);
            }
            tensors.push(j);
        }
    }
    let totals: serde_json::Map<String, Json> = by_type
        .into_iter()
        .map(|(k, (n, p, b))| {
            (
                k.to_string(),
                json!({ "tensors": n, "params": p, "bytes": b }),
            )
        })
        .collect();
    let files: Vec<Json> = model
        .shards()
        .iter()
        .map(|s| json!({ "path": s.path().map(|p| p.display().to_string()), "size": s.file_len() }))
        .collect();
    json!({
        "files": files,
        "version": f.version(),
        "alignment": f.alignment(),
        "data_offset": f.data_offset(),
        "n_metadata": f.n_metadata(),
        "n_tensors": tensors.len(),
        "metadata": metadata,
        "tensors": tensors,
        "totals": { "by_type": totals, "n_params": n_params, "n_bytes": n_bytes },
    })
}

fn scalar_text(v: &Json) -> String {
    match v {
        Json::Object(o) => {
            let first: Vec<String> = o["first"]
                .as_array()
                .map(|a| a.iter().map(scalar_text).collect())
                .unwrap_or_default();
            format!("[{}, … ({} items)]", first.join(", "), o["len"])
        }
        Json::Array(a) => format!(
            "[{}]",
            a.iter().map(scalar_text).collect::<Vec<_>>().join(", ")
        ),
        Json::String(s) => {
            let s = serde_json::to_string(s).unwrap_or_default();
            if s.chars().count() > 200 {
                format!(
                    "{}…\" ({} bytes)",
                    s.chars().take(200).collect::<String>(),
                    s.len()
                )
            } else {
                s
            }
        }
        other => other.to_string(),
    }
}

fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut i = 0;
    while x >= 1024.0 && i + 1 < U.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{x:.2} {}", U[i])
    }
}

fn render_text(r: &Json) -> String {
    let mut s = String::new();
    for f in r["files"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "file: {} ({})",
            f["path"].as_str().unwrap_or("?"),
            human_bytes(f["size"].as_u64().unwrap_or(0))
        );
    }
    let _ = writeln!(
        s,
        "GGUF version {}, alignment {}, tensor data at byte {}\n",
        r["version"], r["alignment"], r["data_offset"]
    );
    let _ = writeln!(s, "metadata ({} keys):", r["n_metadata"]);
    let md = r["metadata"].as_array().cloned().unwrap_or_default();
    let kw = md
        .iter()
        .map(|m| m["key"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(0);
    let tw = md
        .iter()
        .map(|m| m["type"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(0);
    for m in &md {
        let _ = writeln!(
            s,
            "  {:kw$}  {:tw$}  {}",
            m["key"].as_str().unwrap_or(""),
            m["type"].as_str().unwrap_or(""),
            scalar_text(&m["value"])
        );
    }
    let ts = r["tensors"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(s, "\ntensors ({}):", ts.len());
    let nw = ts
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:nw$}  {:8}  {:24}  {:>12}  {:>12}",
        "name", "type", "shape", "bytes", "offset"
    );
    for t in &ts {
        let shape: Vec<String> = t["shape"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.to_string())
            .collect();
        let _ = writeln!(
            s,
            "  {:nw$}  {:8}  {:24}  {:>12}  {:>12}",
            t["name"].as_str().unwrap_or(""),
            t["type"].as_str().unwrap_or(""),
            format!("[{}]", shape.join(", ")),
            t["n_bytes"],
            t["offset"]
        );
    }
    let _ = writeln!(s, "\ntotals:");
    for (ty, v) in r["totals"]["by_type"].as_object().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  {:8}  {:>4} tensors  {:>14} params  {:>12}",
            ty,
            v["tensors"],
            v["params"],
            human_bytes(v["bytes"].as_u64().unwrap_or(0))
        );
    }
    let np = r["totals"]["n_params"].as_u64().unwrap_or(0);
    let _ = writeln!(
        s,
        "  all       {:>4} tensors  {:>14} params  {:>12}  ({:.2}M params)",
        ts.len(),
        np,
        human_bytes(r["totals"]["n_bytes"].as_u64().unwrap_or(0)),
        np as f64 / 1e6
    );
    s
}
