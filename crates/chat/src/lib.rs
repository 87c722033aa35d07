//! Chat templates for ferrite.
//!
//! - [`ChatTemplate`]: renders a model's `tokenizer.chat_template` (Jinja) byte for byte the
//!   way transformers' `apply_chat_template(..., tokenize=False)` does, with minijinja set up
//!   like transformers' jinja2 environment (see [`template`](ChatTemplate) for the details).
//! - [`Message`]: the conversation, serialized to the dicts templates expect.
//! - Built-in templates for `--chat-template NAME` ([`BUILTIN_NAMES`]) or a template file.
//! - Output parsing for the server: [`split_reasoning`] and [`parse_tool_calls`].
//!
//! Failures are typed ([`ChatError`]) and name the template: a template that does not parse
//! or that fails while rendering is an error, never a silent fallback.

mod builtin;
mod error;
mod message;
mod parse;
mod pyfmt;
mod template;

pub use builtin::{builtin_source, BUILTIN_NAMES};
pub use error::{ChatError, Result};
pub use message::{Content, ContentPart, FunctionCall, Message, ToolCall};
pub use parse::{
    parse_tool_calls, split_reasoning, split_reasoning_with, ParsedToolCalls, ReasoningSplit,
    ToolCallFormat,
};
pub use template::{ChatTemplate, RenderOptions};
