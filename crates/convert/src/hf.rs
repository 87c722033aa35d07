//! The JSON side of a checkpoint folder: `config.json` (transformers 4 and 5 spellings) and the
//! small optional JSON files next to it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use crate::error::{ConvertError, Result};

/// Read and parse a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Json>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ConvertError::Json {
                    path: path.to_owned(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConvertError::io(path, e)),
    }
}

pub(crate) fn read_text_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConvertError::io(path, e)),
    }
}

/// `config.json`, flattened the way llama.cpp's `TextModel` sees it (`text_config` moved to the
/// root) plus the normalized rope parameters.
#[derive(Debug, Clone)]
pub(crate) struct HfConfig {
    pub path: PathBuf,
    pub map: Map<String, Json>,
    /// `rope_parameters` (transformers 5) or `rope_scaling` (transformers 4), with `rope_theta`,
    /// `rope_type` and a local theta (`sliding_attention`) mirrored in as llama.cpp does.
    pub rope: Map<String, Json>,
}

impl HfConfig {
    pub fn load(dir: &Path) -> Result<HfConfig> {
        let path = dir.join("config.json");
        let json = match read_json_opt(&path)? {
            Some(j) => j,
            None => return Err(ConvertError::MissingConfig { path }),
        };
        let Json::Object(mut map) = json else {
            return Err(ConvertError::BadConfig {
                path,
                key: "(root)".into(),
                what: "expected a JSON object".into(),
            });
        };
        if let Some(Json::Object(text)) = map.get("text_config").cloned() {
            for (k, v) in text {
                map.insert(k, v);
            }
        }
        let mut cfg = HfConfig {
            path,
            map,
            rope: Map::new(),
        };
        cfg.rope = cfg.normalized_rope();
        Ok(cfg)
    }

    fn normalized_rope(&self) -> Map<String, Json> {
        let mut rope = match self
            .map
            .get("rope_parameters")
            .or_else(|| self.map.get("rope_scaling"))
        {
            Some(Json::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let theta = self.find(&[
            "global_rope_theta",
            "rope_global_theta",
            "rope_theta_global",
            "rope_theta",
            "rotary_emb_base",
        ]);
        let local = self.find(&[
            "local_rope_theta",
            "rope_local_theta",
            "rope_theta_local",
            "swa_rope_theta",
            "rope_local_base_freq",
        ]);
        if !rope.contains_key("full_attention") && !rope.contains_key("sliding_attention") {
            if let Some(l) = local.filter(|v| !v.is_null()) {
                let mut m = Map::new();
                m.insert("rope_theta".into(), l.clone());
                rope.insert("sliding_attention".into(), Json::Object(m));
            }
            if !rope.contains_key("rope_theta") {
                if let Some(t) = theta.filter(|v| !v.is_null()) {
                    rope.insert("rope_theta".into(), t.clone());
                }
            }
            if !rope.contains_key("rope_type") {
                if let Some(t) = rope.get("type").filter(|v| !v.is_null()).cloned() {
                    rope.insert("rope_type".into(), t);
                }
            }
        }
        rope
    }

    /// The rope parameters of the global (full-attention) layers.
    pub fn rope_full(&self) -> &Map<String, Json> {
        match self.rope.get("full_attention") {
            Some(Json::Object(m)) => m,
            _ => &self.rope,
        }
    }

    pub fn rope_local_theta(&self) -> Option<f64> {
        self.rope
            .get("sliding_attention")?
            .get("rope_theta")?
            .as_f64()
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.map.get(key)
    }

    /// llama.cpp's `find_hparam`: the value of the first key present (possibly `null`).
    pub fn find(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter().find_map(|k| self.map.get(*k))
    }

    pub fn find_u64(&self, keys: &[&str]) -> Result<Option<u64>> {
        match keys.iter().find_map(|k| self.map.get(*k).map(|v| (*k, v))) {
            None | Some((_, Json::Null)) => Ok(None),
            Some((k, v)) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(k, format!("expected a non-negative integer, got {v}"))),
        }
    }

    pub fn find_f64(&self, keys: &[&str]) -> Result<Option<f64>> {
        match keys.iter().find_map(|k| self.map.get(*k).map(|v| (*k, v))) {
            None | Some((_, Json::Null)) => Ok(None),
            Some((k, v)) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(k, format!("expected a number, got {v}"))),
        }
    }

    pub fn req_u64(&self, keys: &[&str]) -> Result<u64> {
        self.find_u64(keys)?
            .ok_or_else(|| self.bad(keys[0], "missing".into()))
    }

    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64> {
        Ok(self.find_u64(&[key])?.unwrap_or(default))
    }

    pub fn bool_opt(&self, key: &str) -> Option<bool> {
        self.map.get(key).and_then(Json::as_bool)
    }

    pub fn bad(&self, key: &str, what: String) -> ConvertError {
        ConvertError::BadConfig {
            path: self.path.clone(),
            key: key.into(),
            what,
        }
    }

    /// `architectures[0]`.
    pub fn architecture(&self) -> Result<String> {
        match self.map.get("architectures") {
            Some(Json::Array(a)) if !a.is_empty() => a[0]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.bad("architectures", "expected strings".into())),
            _ => Err(self.bad("architectures", "missing or empty".into())),
        }
    }
}
