//! Built-in templates for `--chat-template NAME`, for models whose GGUF has no template (or a
//! wrong one). Each is a Jinja source in `src/templates/`, rendered by the same engine as a
//! model's own template.
//!
//! | name | format | origin |
//! |---|---|---|
//! | `chatml` | `<\|im_start\|>role\n...<\|im_end\|>\n` | written here; no default system prompt |
//! | `llama2` | `<s>[INST] <<SYS>>...<</SYS>> ... [/INST]` | Llama-2-chat's template (as in the hf-tiny llama models) |
//! | `llama3` | `<\|start_header_id\|>role<\|end_header_id\|>\n\n...<\|eot_id\|>` | Llama-3-Instruct's template |
//! | `gemma` | `<start_of_turn>user\n...<end_of_turn>\n` | Gemma 3's template (system folded into the first user turn) |
//! | `mistral` | `<s>[INST] ... [/INST]...</s>` | Mistral-7B-Instruct-v0.1's template (no system role) |
//! | `phi3` | `<\|user\|>\n...<\|end\|>\n` | Phi-3-mini-instruct's template |

/// The names [`builtin_source`] knows.
pub const BUILTIN_NAMES: &[&str] = &["chatml", "llama2", "llama3", "gemma", "mistral", "phi3"];

/// The Jinja source of a built-in template.
pub fn builtin_source(name: &str) -> Option<&'static str> {
    Some(match name {
        "chatml" => include_str!("templates/chatml.jinja"),
        "llama2" => include_str!("templates/llama2.jinja"),
        "llama3" => include_str!("templates/llama3.jinja"),
        "gemma" => include_str!("templates/gemma.jinja"),
        "mistral" => include_str!("templates/mistral.jinja"),
        "phi3" => include_str!("templates/phi3.jinja"),
        _ => return None,
    })
}
