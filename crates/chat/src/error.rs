//! The crate's error type: every failure names the template (or model) it concerns.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = ChatError> = std::result::Result<T, E>;

/// Everything that can go wrong while loading, rendering or parsing.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The template source does not parse (bad Jinja syntax).
    #[error("chat template {template}: syntax error{}: {message}", at_line(*line))]
    Syntax {
        template: String,
        line: Option<usize>,
        message: String,
    },
    /// The template called `raise_exception(message)` (transformers raises
    /// `jinja2.exceptions.TemplateError(message)` there).
    #[error("chat template {template} raised an exception{}: {message}", at_line(*line))]
    Raised {
        template: String,
        line: Option<usize>,
        message: String,
    },
    /// Any other failure while rendering (undefined attribute access, a type error, a bad
    /// argument to a filter, ...).
    #[error("chat template {template}: render error{}: {message}", at_line(*line))]
    Render {
        template: String,
        line: Option<usize>,
        message: String,
    },
    /// The model carries no `tokenizer.chat_template` and none was given.
    #[error(
        "model {model} has no chat template (no tokenizer.chat_template in its GGUF); pass one \
         with --chat-template NAME|FILE (built-in names: {})",
        crate::builtin::BUILTIN_NAMES.join(", ")
    )]
    Missing { model: String },
    /// `--chat-template X` where X is neither a built-in name nor an existing file.
    #[error(
        "chat template {spec:?} is neither a built-in name ({}) nor a readable file",
        crate::builtin::BUILTIN_NAMES.join(", ")
    )]
    UnknownTemplate { spec: String },
    /// Reading a template file failed.
    #[error("reading chat template file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Reading the GGUF metadata failed (wrong type, out-of-range token id, ...).
    #[error("chat template of {model}: {message}")]
    Metadata { model: String, message: String },
    /// The GGUF reader reported an error.
    #[error(transparent)]
    Gguf(#[from] ferrite_gguf::GgufError),
    /// Model output that announces a tool call but does not hold a valid one.
    #[error("tool call ({format}): {message} in {text:?}")]
    ToolCallParse {
        format: &'static str,
        message: String,
        text: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    match line {
        Some(l) => format!(" at line {l}"),
        None => String::new(),
    }
}

impl ChatError {
    /// The line of the template the error points at, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ChatError::Syntax { line, .. }
            | ChatError::Raised { line, .. }
            | ChatError::Render { line, .. } => *line,
            _ => None,
        }
    }
}
