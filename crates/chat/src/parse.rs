//! Parsing of model output for the server: the reasoning block (`<think>...</think>`) and
//! tool calls.

use serde_json::Value as Json;

use crate::error::{ChatError, Result};
use crate::message::{FunctionCall, ToolCall};

/// Output split into reasoning and the visible answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasoningSplit {
    /// The text inside the reasoning block, trimmed; `None` when there is none or it is empty.
    pub reasoning: Option<String>,
    /// Everything else; leading whitespace after the closing tag is dropped.
    pub content: String,
}

/// [`split_reasoning_with`] for `<think>` / `</think>` (DeepSeek-R1, Qwen3, SmolLM3, ...).
pub fn split_reasoning(text: &str) -> ReasoningSplit {
    split_reasoning_with(text, "<think>", "</think>")
}

/// Splits a reasoning block off the start of `text`:
/// - `open ... close rest` (after optional leading whitespace): reasoning and `rest`;
/// - `... close rest` with no `open`: the template opened the block in the prompt (Qwen3 and
///   DeepSeek-R1 prefill `<think>`), so everything before `close` is reasoning;
/// - `open ...` never closed (generation stopped while thinking): all of it is reasoning;
/// - otherwise no reasoning, and `content` is `text` unchanged.
pub fn split_reasoning_with(text: &str, open: &str, close: &str) -> ReasoningSplit {
    let trimmed = text.trim_start();
    let nonempty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    if let Some(after_open) = trimmed.strip_prefix(open) {
        return match after_open.find(close) {
            Some(i) => ReasoningSplit {
                reasoning: nonempty(&after_open[..i]),
                content: after_open[i + close.len()..].trim_start().to_owned(),
            },
            None => ReasoningSplit {
                reasoning: nonempty(after_open),
                content: String::new(),
            },
        };
    }
    if let Some(i) = text.find(close) {
        if !text[..i].contains(open) {
            return ReasoningSplit {
                reasoning: nonempty(&text[..i]),
                content: text[i + close.len()..].trim_start().to_owned(),
            };
        }
    }
    ReasoningSplit {
        reasoning: None,
        content: text.to_owned(),
    }
}

/// The tool-call syntaxes [`parse_tool_calls`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolCallFormat {
    /// Hermes / Qwen2.5 / Qwen3: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
    /// one block per call.
    Hermes,
    /// Mistral (v0.3, Nemo): `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`.
    Mistral,
}

impl ToolCallFormat {
    pub fn name(self) -> &'static str {
        match self {
            ToolCallFormat::Hermes => "hermes",
            ToolCallFormat::Mistral => "mistral",
        }
    }

    /// The format a chat template teaches the model, judged from the markers in its source.
    pub fn detect(template_source: &str) -> Option<ToolCallFormat> {
        if template_source.contains("<tool_call>") {
            Some(ToolCallFormat::Hermes)
        } else if template_source.contains("[TOOL_CALLS]") {
            Some(ToolCallFormat::Mistral)
        } else {
            None
        }
    }
}

/// Model output with its tool calls taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedToolCalls {
    /// The text outside the tool-call blocks, trimmed.
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
}

/// Extracts tool calls. Text without any call marker gives no calls and the text unchanged; a
/// marker followed by anything but a well-formed call is an error (never dropped silently).
pub fn parse_tool_calls(text: &str, format: ToolCallFormat) -> Result<ParsedToolCalls> {
    match format {
        ToolCallFormat::Hermes => parse_hermes(text),
        ToolCallFormat::Mistral => parse_mistral(text),
    }
}

fn parse_error(format: ToolCallFormat, message: impl Into<String>, text: &str) -> ChatError {
    ChatError::ToolCallParse {
        format: format.name(),
        message: message.into(),
        text: text.to_owned(),
    }
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";

fn parse_hermes(text: &str) -> Result<ParsedToolCalls> {
    let f = ToolCallFormat::Hermes;
    if !text.contains(HERMES_OPEN) {
        return Ok(ParsedToolCalls {
            content: text.to_owned(),
            tool_calls: Vec::new(),
        });
    }
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(HERMES_OPEN) {
        content.push_str(&rest[..i]);
        let after = &rest[i + HERMES_OPEN.len()..];
        let end = after
            .find(HERMES_CLOSE)
            .ok_or_else(|| parse_error(f, "unterminated <tool_call>", text))?;
        let body = after[..end].trim();
        let json: Json = serde_json::from_str(body)
            .map_err(|e| parse_error(f, format!("invalid JSON in <tool_call>: {e}"), text))?;
        tool_calls.push(call_from_json(f, &json, text)?);
        rest = &after[end + HERMES_CLOSE.len()..];
    }
    content.push_str(rest);
    Ok(ParsedToolCalls {
        content: content.trim().to_owned(),
        tool_calls,
    })
}

const MISTRAL_MARKER: &str = "[TOOL_CALLS]";

fn parse_mistral(text: &str) -> Result<ParsedToolCalls> {
    let f = ToolCallFormat::Mistral;
    let Some(i) = text.find(MISTRAL_MARKER) else {
        return Ok(ParsedToolCalls {
            content: text.to_owned(),
            tool_calls: Vec::new(),
        });
    };
    let body = text[i + MISTRAL_MARKER.len()..].trim();
    let json: Json = serde_json::from_str(body)
        .map_err(|e| parse_error(f, format!("invalid JSON after [TOOL_CALLS]: {e}"), text))?;
    let calls = match &json {
        Json::Array(items) => items
            .iter()
            .map(|item| call_from_json(f, item, text))
            .collect::<Result<Vec<_>>>()?,
        Json::Object(_) => vec![call_from_json(f, &json, text)?],
        _ => {
            return Err(parse_error(
                f,
                "[TOOL_CALLS] is not followed by a list",
                text,
            ))
        }
    };
    Ok(ParsedToolCalls {
        content: text[..i].trim().to_owned(),
        tool_calls: calls,
    })
}

/// `{"name": ..., "arguments"|"parameters": ..., "id"?: ...}`; string arguments holding JSON
/// are decoded.
fn call_from_json(f: ToolCallFormat, json: &Json, text: &str) -> Result<ToolCall> {
    let obj = json
        .as_object()
        .ok_or_else(|| parse_error(f, "a tool call is not a JSON object", text))?;
    let name = obj
        .get("name")
        .and_then(Json::as_str)
        .ok_or_else(|| parse_error(f, "a tool call has no string \"name\"", text))?;
    let arguments = obj
        .get("arguments")
        .or_else(|| obj.get("parameters"))
        .cloned()
        .unwrap_or_else(|| Json::Object(Default::default()));
    Ok(ToolCall {
        id: obj.get("id").and_then(Json::as_str).map(str::to_owned),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: name.to_owned(),
            arguments: FunctionCall::arguments_from_openai(arguments),
        },
    })
}
