//! Chat messages, serialized to the shape transformers passes to templates: a list of dicts
//! with `role`, `content` (a string or a list of content parts, passed through unchanged) and
//! the optional `name`, `tool_calls`, `tool_call_id`, `reasoning_content`. Absent optional
//! fields are absent keys (so `message.tool_calls is defined` is false), exactly like a Python
//! dict without the key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    /// `None` is rendered as `content: None` (OpenAI's `"content": null`, e.g. an assistant
    /// turn that only calls tools).
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Any other keys, passed to the template as they are.
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// Message content: a plain string, or a list of typed parts (`{"type": "text", "text": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One content part. `{"type": "text", "text": "..."}` for text; other kinds (images, ...)
/// keep their fields in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// A tool call of an assistant message (OpenAI shape: `{"id", "type": "function",
/// "function": {"name", "arguments"}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_kind() -> String {
    "function".to_owned()
}

/// The called function. `arguments` is what templates see: most (Qwen, Hermes, Llama 3.1)
/// expect a JSON object and apply `tojson` themselves, so pass an object, not the OpenAI
/// string form (see [`FunctionCall::arguments_from_openai`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: Json,
}

impl FunctionCall {
    /// OpenAI sends `arguments` as a JSON-encoded string; templates want the object. A string
    /// that parses as JSON becomes that value, anything else stays as it is.
    pub fn arguments_from_openai(arguments: Json) -> Json {
        match &arguments {
            Json::String(s) => serde_json::from_str(s).unwrap_or(arguments),
            _ => arguments,
        }
    }
}

impl ToolCall {
    pub fn function(name: impl Into<String>, arguments: Json) -> ToolCall {
        ToolCall {
            id: None,
            kind: function_kind(),
            function: FunctionCall {
                name: name.into(),
                arguments,
            },
        }
    }
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> ContentPart {
        ContentPart {
            kind: "text".to_owned(),
            text: Some(text.into()),
            extra: Map::new(),
        }
    }
}

impl Content {
    /// The text of the content: the string, or the text parts concatenated.
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect(),
        }
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Content {
        Content::Text(s.to_owned())
    }
}
impl From<String> for Content {
    fn from(s: String) -> Content {
        Content::Text(s)
    }
}
impl From<Vec<ContentPart>> for Content {
    fn from(p: Vec<ContentPart>) -> Content {
        Content::Parts(p)
    }
}

impl Message {
    /// A message with the given role and content and nothing else.
    pub fn new(role: impl Into<String>, content: impl Into<Content>) -> Message {
        Message {
            role: role.into(),
            content: Some(content.into()),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            reasoning_content: None,
            extra: Map::new(),
        }
    }
    pub fn system(content: impl Into<Content>) -> Message {
        Message::new("system", content)
    }
    pub fn user(content: impl Into<Content>) -> Message {
        Message::new("user", content)
    }
    pub fn assistant(content: impl Into<Content>) -> Message {
        Message::new("assistant", content)
    }
    /// An assistant turn that calls tools (content `None`).
    pub fn assistant_tool_calls(tool_calls: Vec<ToolCall>) -> Message {
        Message {
            content: None,
            tool_calls: Some(tool_calls),
            ..Message::new("assistant", "")
        }
    }
    /// A tool result.
    pub fn tool(content: impl Into<Content>, tool_call_id: Option<String>) -> Message {
        Message {
            tool_call_id,
            ..Message::new("tool", content)
        }
    }
}
