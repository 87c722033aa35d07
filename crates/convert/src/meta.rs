//! The metadata being assembled (ordered like gguf-py's writer: first insertion wins the
//! position, a later add replaces the value in place) and the `general.*` facts llama.cpp
//! derives from the folder name and the parameter count.

use ferrite_gguf::{Value, ValueType};

#[derive(Debug, Default, Clone)]
pub(crate) struct Kv {
    pub entries: Vec<(String, Value)>,
}

impl Kv {
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn u32(&mut self, key: impl Into<String>, v: u64) {
        self.add(key, Value::U32(v as u32));
    }

    pub fn f32(&mut self, key: impl Into<String>, v: f64) {
        self.add(key, Value::F32(v as f32));
    }

    pub fn strings<S: Into<String>>(&mut self, key: &str, items: impl IntoIterator<Item = S>) {
        self.add(key, Value::strings(items));
    }

    pub fn i32s(&mut self, key: &str, items: impl IntoIterator<Item = i32>) {
        self.add(
            key,
            Value::Array(ValueType::I32, items.into_iter().map(Value::I32).collect()),
        );
    }

    pub fn f32s(&mut self, key: &str, items: impl IntoIterator<Item = f32>) {
        self.add(
            key,
            Value::Array(ValueType::F32, items.into_iter().map(Value::F32).collect()),
        );
    }

    pub fn bools(&mut self, key: &str, items: impl IntoIterator<Item = bool>) {
        self.add(
            key,
            Value::Array(
                ValueType::Bool,
                items.into_iter().map(Value::Bool).collect(),
            ),
        );
    }
}

/// gguf-py's `Metadata.id_to_title`: the folder name as a title (`llama-f32` → `Llama F32`).
pub(crate) fn id_to_title(s: &str) -> String {
    s.replace('-', " ")
        .split_whitespace()
        .map(|w| {
            let is_lower = w.chars().any(char::is_lowercase) && !w.chars().any(char::is_uppercase);
            let versionish = is_version_like(w);
            if is_lower && !versionish {
                py_title(w)
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `^(v\d+(?:\.\d+)*|\d.*)$`
fn is_version_like(w: &str) -> bool {
    if w.starts_with(|c: char| c.is_ascii_digit()) {
        return true;
    }
    let Some(rest) = w.strip_prefix('v') else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Python's `str.title()`: a letter after a non-letter starts upper case, others lower case.
fn py_title(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let mut prev_cased = false;
    for c in w.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = c.is_alphabetic();
    }
    out
}

/// gguf-py's `model_weight_count_rounded_notation`.
fn rounded_notation(count: u64, min_digits: usize) -> String {
    let c = count as f64;
    let (scaled, suffix) = if c > 1e12 {
        (c * 1e-12, "T")
    } else if c > 1e9 {
        (c * 1e-9, "B")
    } else if c > 1e6 {
        (c * 1e-6, "M")
    } else {
        (c * 1e-3, "K")
    };
    let rounded = py_round(scaled);
    let digits = rounded.to_string();
    let digits = digits.trim_start_matches('0');
    let fix = min_digits.saturating_sub(digits.len());
    format!("{scaled:.fix$}{suffix}")
}

/// Python's `round(x)` (half to even) for non-negative values.
fn py_round(x: f64) -> u64 {
    let f = x.floor();
    let diff = x - f;
    let r = if diff > 0.5 || (diff == 0.5 && (f as u64) % 2 == 1) {
        f + 1.0
    } else {
        f
    };
    r as u64
}

/// gguf-py's `size_label`: `330K`, or `4x331K` for mixtures of experts.
pub(crate) fn size_label(total: u64, shared: u64, expert: u64, expert_count: u64) -> String {
    if expert_count > 0 {
        format!("{expert_count}x{}", rounded_notation(shared + expert, 2))
    } else {
        rounded_notation(total, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_like_gguf_py() {
        assert_eq!(id_to_title("llama-f32"), "Llama F32");
        assert_eq!(id_to_title("qwen3-moe"), "Qwen3 Moe");
        assert_eq!(id_to_title("llama-rope-llama3"), "Llama Rope Llama3");
        assert_eq!(id_to_title("Mistral-7B-v0.1"), "Mistral 7B v0.1");
        assert_eq!(id_to_title("all-MiniLM-L6-v2"), "All MiniLM L6 v2");
    }

    #[test]
    fn size_labels_like_gguf_py() {
        // Facts from the hf-tiny dumps: llama-f32 330048 params → 330K, gemma2 226880 → 227K.
        assert_eq!(size_label(330048, 0, 0, 0), "330K");
        assert_eq!(size_label(226880, 0, 0, 0), "227K");
        assert_eq!(size_label(0, 281408, 49152, 4), "4x331K");
        assert_eq!(size_label(22_713_216, 0, 0, 0), "23M");
        assert_eq!(size_label(6_738_415_616, 0, 0, 0), "6.7B");
    }
}
