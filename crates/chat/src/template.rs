//! [`ChatTemplate`]: a compiled chat template and its rendering, set up like transformers'
//! `apply_chat_template` (`transformers/utils/chat_template_utils.py`):
//!
//! - jinja2 `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
//!   extensions=[AssistantTracker, jinja2.ext.loopcontrols])`, default `keep_trailing_newline`
//!   (False) and no autoescaping;
//! - globals `raise_exception(message)` (raises `TemplateError(message)`) and
//!   `strftime_now(format)` (`datetime.now().strftime(format)`, local time);
//! - the `tojson` filter replaced by `json.dumps(x, ensure_ascii=False, indent=None,
//!   separators=None, sort_keys=False)`, arguments in that order;
//! - render variables `messages`, `tools` (None unless given), `documents` (None unless
//!   given), `add_generation_prompt`, then the tokenizer's special tokens (`bos_token`,
//!   `eos_token`) and any extra keyword arguments.
//!
//! minijinja differs from jinja2 in places that matter for byte-identical prompts; this module
//! closes those gaps: Python string/dict/list methods come from `minijinja_contrib::pycompat`,
//! `{{ value }}` prints None/True/False/floats/lists/dicts as Python's `str` does, and the
//! `{% generation %}` block of the AssistantTracker extension renders its body.

use std::path::Path;

use ferrite_gguf::{keys, ArrayRef, GgufFile};
use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, Output, State};
use serde_json::{Map, Value as Json};

use crate::builtin;
use crate::error::{ChatError, Result};
use crate::message::Message;
use crate::pyfmt::{self, DumpOptions};

/// Options of one render (the keyword arguments of `apply_chat_template`).
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Append the header that opens the assistant's turn.
    pub add_generation_prompt: bool,
    /// Tool definitions (a JSON list of `{"type": "function", "function": {...}}`); the
    /// template sees `tools = None` when absent, as with transformers.
    pub tools: Option<Json>,
    /// RAG documents; `documents = None` when absent.
    pub documents: Option<Json>,
    /// Further template variables (e.g. `enable_thinking`). They override `bos_token` /
    /// `eos_token` (as kwargs override special tokens in transformers), not the four above.
    pub extra: Map<String, Json>,
}

impl RenderOptions {
    /// Options with only `add_generation_prompt` set.
    pub fn generation_prompt(add_generation_prompt: bool) -> RenderOptions {
        RenderOptions {
            add_generation_prompt,
            ..RenderOptions::default()
        }
    }
}

/// A compiled chat template with the special tokens it is rendered with.
#[derive(Clone)]
pub struct ChatTemplate {
    name: String,
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("source_len", &self.source.len())
            .finish()
    }
}

/// The error source that marks a `raise_exception` call.
#[derive(Debug)]
struct RaisedException(String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for RaisedException {}

impl ChatTemplate {
    /// Compiles `source`; errors (named "chat template") carry the line of a syntax error.
    /// `bos`/`eos` are the token texts; `None` leaves the variable undefined (transformers
    /// omits special tokens the tokenizer does not have).
    pub fn new(source: &str, bos: Option<&str>, eos: Option<&str>) -> Result<ChatTemplate> {
        ChatTemplate::named("chat template", source, bos, eos)
    }

    /// Like [`new`](Self::new), with the name errors use (model name, file path, ...).
    pub fn named(
        name: impl Into<String>,
        source: &str,
        bos: Option<&str>,
        eos: Option<&str>,
    ) -> Result<ChatTemplate> {
        let name = name.into();
        let env = environment(&name, source)?;
        Ok(ChatTemplate {
            name,
            source: source.to_owned(),
            bos_token: bos.map(str::to_owned),
            eos_token: eos.map(str::to_owned),
            env,
        })
    }

    /// The model's own template (`tokenizer.chat_template`), rendered with the texts of its
    /// `tokenizer.ggml.bos_token_id` / `eos_token_id`. `Ok(None)` when the GGUF has no
    /// template; an error when it has one that does not compile.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Option<ChatTemplate>> {
        let model = model_label(gguf);
        let Some(source) = gguf.get_opt::<&str>(keys::tokenizer::CHAT_TEMPLATE)? else {
            return Ok(None);
        };
        let (bos, eos) = special_tokens(gguf)?;
        ChatTemplate::named(
            format!("{model} ({})", keys::tokenizer::CHAT_TEMPLATE),
            source,
            bos.as_deref(),
            eos.as_deref(),
        )
        .map(Some)
    }

    /// A built-in template by name (see [`crate::BUILTIN_NAMES`]).
    pub fn builtin(name: &str, bos: Option<&str>, eos: Option<&str>) -> Result<ChatTemplate> {
        let source = builtin::builtin_source(name).ok_or_else(|| ChatError::UnknownTemplate {
            spec: name.to_owned(),
        })?;
        ChatTemplate::named(format!("builtin:{name}"), source, bos, eos)
    }

    /// A template read from a file (a `.jinja` file, as transformers saves them).
    pub fn from_file(
        path: impl AsRef<Path>,
        bos: Option<&str>,
        eos: Option<&str>,
    ) -> Result<ChatTemplate> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|source| ChatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ChatTemplate::named(path.display().to_string(), &source, bos, eos)
    }

    /// `--chat-template SPEC`: a built-in name, else a file path.
    pub fn from_spec(spec: &str, bos: Option<&str>, eos: Option<&str>) -> Result<ChatTemplate> {
        if builtin::builtin_source(spec).is_some() {
            return ChatTemplate::builtin(spec, bos, eos);
        }
        if Path::new(spec).is_file() {
            return ChatTemplate::from_file(spec, bos, eos);
        }
        Err(ChatError::UnknownTemplate {
            spec: spec.to_owned(),
        })
    }

    /// The template to use for a model: `spec` when given (with the model's special tokens),
    /// else the model's own; [`ChatError::Missing`] when it has none.
    pub fn for_model(gguf: &GgufFile, spec: Option<&str>) -> Result<ChatTemplate> {
        match spec {
            Some(spec) => {
                let (bos, eos) = special_tokens(gguf)?;
                ChatTemplate::from_spec(spec, bos.as_deref(), eos.as_deref())
            }
            None => ChatTemplate::from_gguf(gguf)?.ok_or_else(|| ChatError::Missing {
                model: model_label(gguf),
            }),
        }
    }

    /// The name errors use.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The Jinja source as given.
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// Renders a conversation to the prompt text (what `apply_chat_template(...,
    /// tokenize=False)` returns).
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        let messages = serde_json::to_value(messages).map_err(|e| ChatError::Render {
            template: self.name.clone(),
            line: None,
            message: format!("messages do not serialize: {e}"),
        })?;
        self.render_json(messages, opts)
    }

    /// Renders messages given as JSON (a list of message objects), passed through as they are.
    pub fn render_json(&self, messages: Json, opts: &RenderOptions) -> Result<String> {
        let mut ctx = Map::new();
        if let Some(bos) = &self.bos_token {
            ctx.insert("bos_token".into(), Json::from(bos.as_str()));
        }
        if let Some(eos) = &self.eos_token {
            ctx.insert("eos_token".into(), Json::from(eos.as_str()));
        }
        for (k, v) in &opts.extra {
            ctx.insert(k.clone(), v.clone());
        }
        ctx.insert("messages".into(), messages);
        ctx.insert("tools".into(), opts.tools.clone().unwrap_or(Json::Null));
        ctx.insert(
            "documents".into(),
            opts.documents.clone().unwrap_or(Json::Null),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            Json::Bool(opts.add_generation_prompt),
        );
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|e| self.render_error(e))?;
        template
            .render(Value::from_serialize(&ctx))
            .map_err(|e| self.render_error(e))
    }

    fn render_error(&self, e: minijinja::Error) -> ChatError {
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if let Some(raised) = s.downcast_ref::<RaisedException>() {
                return ChatError::Raised {
                    template: self.name.clone(),
                    line: e.line(),
                    message: raised.0.clone(),
                };
            }
            source = s.source();
        }
        ChatError::Render {
            template: self.name.clone(),
            line: e.line(),
            message: describe(&e),
        }
    }
}

/// "kind: detail: source" of a minijinja error, without its "(in name:line)" suffix.
fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(src) = std::error::Error::source(e) {
        msg.push_str(": ");
        msg.push_str(&src.to_string());
    }
    msg
}

fn model_label(gguf: &GgufFile) -> String {
    if let Ok(Some(name)) = gguf.get_opt::<&str>(keys::general::NAME) {
        return name.to_owned();
    }
    match gguf.path().and_then(|p| p.file_name()) {
        Some(f) => f.to_string_lossy().into_owned(),
        None => "GGUF model".to_owned(),
    }
}

/// The texts of the BOS and EOS tokens, when the GGUF names them.
fn special_tokens(gguf: &GgufFile) -> Result<(Option<String>, Option<String>)> {
    Ok((
        token_text(gguf, keys::tokenizer::BOS_ID)?,
        token_text(gguf, keys::tokenizer::EOS_ID)?,
    ))
}

fn token_text(gguf: &GgufFile, key: &str) -> Result<Option<String>> {
    let Some(id) = gguf.get_opt::<u32>(key)? else {
        return Ok(None);
    };
    let bad = |message: String| ChatError::Metadata {
        model: model_label(gguf),
        message,
    };
    let tokens: ArrayRef<'_> = gguf.get_opt(keys::tokenizer::TOKENS)?.ok_or_else(|| {
        bad(format!(
            "{key} = {id} but there is no {}",
            keys::tokenizer::TOKENS
        ))
    })?;
    let mut strings = tokens
        .strings()
        .ok_or_else(|| bad(format!("{} is not a string array", keys::tokenizer::TOKENS)))?;
    let bytes = strings.nth(id as usize).ok_or_else(|| {
        bad(format!(
            "{key} = {id} is out of range ({} tokens)",
            tokens.len()
        ))
    })?;
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| bad(format!("token {id} ({key}) is not UTF-8")))
}

/// The jinja2 environment of transformers, in minijinja.
fn environment(name: &str, source: &str) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(python_methods);
    env.set_formatter(python_formatter);
    env.add_filter("tojson", tojson);
    env.add_filter("trim", trim);
    env.add_filter("string", string);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_template_owned(name.to_owned(), strip_generation_tags(source))
        .map_err(|e| ChatError::Syntax {
            template: name.to_owned(),
            line: e.line(),
            message: describe(&e),
        })?;
    Ok(env)
}

/// `{{ value }}` as jinja2 prints it (Python's `str`).
fn python_formatter(
    out: &mut Output,
    state: &State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    match pyfmt::python_str(value) {
        Some(s) => out.write_str(&s).map_err(minijinja::Error::from),
        None => minijinja::escape_formatter(out, state, value),
    }
}

/// Python's `str(value)`.
fn python_string(value: &Value) -> String {
    match value.as_str() {
        Some(s) => s.to_owned(),
        None => pyfmt::python_str(value).unwrap_or_else(|| value.to_string()),
    }
}

/// jinja2's `trim(value, chars=None)`: `str(value).strip(chars)`.
fn trim(value: &Value, chars: Option<String>) -> String {
    let s = python_string(value);
    match chars {
        Some(chars) => s.trim_matches(|c| chars.contains(c)).to_owned(),
        None => s.trim().to_owned(),
    }
}

/// jinja2's `string(value)`: `str(value)`.
fn string(value: &Value) -> Value {
    if value.as_str().is_some() {
        value.clone()
    } else {
        Value::from(python_string(value))
    }
}

/// Python methods on values (`pycompat`), with `str.find`/`rfind`/`index`/`rindex` returning
/// character indices as Python does (pycompat's `find` returns byte offsets and it has no
/// `index`).
fn python_methods(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, minijinja::Error> {
    if let (Some(s), "find" | "rfind" | "index" | "rindex") = (value.as_str(), method) {
        let (needle,): (&str,) = minijinja::value::from_args(args)?;
        let byte = if method.starts_with('r') {
            s.rfind(needle)
        } else {
            s.find(needle)
        };
        return match byte {
            Some(b) => Ok(Value::from(s[..b].chars().count() as i64)),
            None if method.ends_with("find") => Ok(Value::from(-1)),
            None => Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "ValueError: substring not found",
            )),
        };
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)` = `json.dumps` with those arguments.
fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    const NAMES: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    let invalid = |msg: String| minijinja::Error::new(ErrorKind::InvalidOperation, msg);
    if args.len() > NAMES.len() {
        return Err(invalid(format!(
            "tojson() takes at most {} arguments after the value ({} given)",
            NAMES.len(),
            args.len()
        )));
    }
    let mut slots: [Option<Value>; 4] = Default::default();
    for (slot, arg) in slots.iter_mut().zip(args.iter()) {
        *slot = Some(arg.clone());
    }
    for (slot, name) in slots.iter_mut().zip(NAMES) {
        if kwargs.has(name) {
            if slot.is_some() {
                return Err(invalid(format!(
                    "tojson() got multiple values for '{name}'"
                )));
            }
            *slot = Some(kwargs.get::<Value>(name)?);
        }
    }
    kwargs.assert_all_used()?;
    let [ensure_ascii, indent, separators, sort_keys] = slots;
    let is_set = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_none());
    let mut o = DumpOptions {
        ensure_ascii: ensure_ascii.is_some_and(|v| v.is_true()),
        sort_keys: sort_keys.is_some_and(|v| v.is_true()),
        ..DumpOptions::default()
    };
    if is_set(&indent) {
        let indent = indent.unwrap();
        o.indent = Some(if let Some(n) = indent.as_i64() {
            " ".repeat(n.max(0) as usize)
        } else if let Some(s) = indent.as_str() {
            s.to_owned()
        } else {
            return Err(invalid(format!("tojson(): bad indent {indent}")));
        });
        o.item_sep = ",".to_owned();
    }
    if is_set(&separators) {
        let seps: Vec<Value> = separators.unwrap().try_iter()?.collect();
        match seps.as_slice() {
            [item, key] if item.as_str().is_some() && key.as_str().is_some() => {
                o.item_sep = item.as_str().unwrap().to_owned();
                o.key_sep = key.as_str().unwrap().to_owned();
            }
            _ => {
                return Err(invalid(
                    "tojson(): separators must be two strings".to_owned(),
                ))
            }
        }
    }
    pyfmt::json_dumps(value, &o).map(Value::from)
}

fn raise_exception(message: Value) -> Result<Value, minijinja::Error> {
    let text = match message.as_str() {
        Some(s) => s.to_owned(),
        None => pyfmt::python_str(&message).unwrap_or_else(|| message.to_string()),
    };
    Err(
        minijinja::Error::new(ErrorKind::InvalidOperation, text.clone())
            .with_source(RaisedException(text)),
    )
}

/// `datetime.now().strftime(format)` (local time).
fn strftime_now(format: String) -> Result<Value, minijinja::Error> {
    use chrono::format::{Item, StrftimeItems};
    use std::fmt::Write;
    let items: Vec<Item<'_>> = StrftimeItems::new(&format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: unsupported format {format:?}"),
        ));
    }
    let mut out = String::new();
    write!(
        out,
        "{}",
        chrono::Local::now().format_with_items(items.into_iter())
    )
    .map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: cannot format {format:?}"),
        )
    })?;
    Ok(Value::from(out))
}

/// Rewrites the AssistantTracker tags `{% generation %}` / `{% endgeneration %}` (with any
/// whitespace control) to `{% if true %}` / `{% endif %}`: without
/// `return_assistant_tokens_mask` transformers renders the body unchanged, and keeping the tag
/// delimiters keeps trim_blocks/lstrip_blocks behaving the same.
pub(crate) fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(i) = rest.find("{%") {
        out.push_str(&rest[..i]);
        let tag = &rest[i..];
        match rewrite_generation_tag(tag) {
            Some((replacement, consumed)) => {
                out.push_str(&replacement);
                rest = &tag[consumed..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// For `tag` starting with `{%`: the rewritten tag and the bytes it replaces, when it is a
/// generation tag.
fn rewrite_generation_tag(tag: &str) -> Option<(String, usize)> {
    let body = &tag[2..];
    let (open_ws, body) = match body.chars().next() {
        Some(c @ ('-' | '+')) => (c.to_string(), &body[1..]),
        _ => (String::new(), body),
    };
    let trimmed = body.trim_start();
    let (word, after) = if let Some(a) = trimmed.strip_prefix("endgeneration") {
        ("endif", a)
    } else if let Some(a) = trimmed.strip_prefix("generation") {
        ("if true", a)
    } else {
        return None;
    };
    let after_ws = after.trim_start();
    if after.len() == after_ws.len() && !after_ws.starts_with(['-', '+', '%']) {
        return None; // a longer identifier such as `generation_prompt`
    }
    let (close_ws, after_ws) = match after_ws.chars().next() {
        Some(c @ ('-' | '+')) => (c.to_string(), &after_ws[1..]),
        _ => (String::new(), after_ws),
    };
    let after_close = after_ws.strip_prefix("%}")?;
    let consumed = tag.len() - after_close.len();
    Some((format!("{{%{open_ws} {word} {close_ws}%}}"), consumed))
}

#[cfg(test)]
mod tests {
    use super::strip_generation_tags;

    #[test]
    fn generation_tags_become_if_blocks() {
        assert_eq!(
            strip_generation_tags("a{% generation %}b{%- endgeneration -%}c{% if x %}"),
            "a{% if true %}b{%- endif -%}c{% if x %}"
        );
        assert_eq!(
            strip_generation_tags("{% set generation_prompt = 1 %}"),
            "{% set generation_prompt = 1 %}"
        );
        assert_eq!(strip_generation_tags("{%generation%}"), "{% if true %}");
    }
}
