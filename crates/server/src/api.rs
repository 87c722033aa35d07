//! Routes and handlers.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferrite_chat::{Message, RenderOptions};
use ferrite_engine::{
    Event, Finish, GenParams, Request as EngineRequest, SubmitError, TokenLogprobs, Usage,
};
use futures_util::FutureExt as _;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::error::ApiError;
use crate::params::{self, get as field, Obj};
use crate::{AppState, Ready};

const INDEX_HTML: &str = include_str!("../ui/index.html");

type St = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/apply-template", post(apply_template))
        .route("/metrics", get(metrics))
        .route("/slots", get(slots))
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(16 << 20))
        .layer(middleware::from_fn(catch_panic))
        .with_state(state)
}

/// A handler that panics answers 500; the server keeps serving.
async fn catch_panic(req: Request, next: Next) -> Response {
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            ApiError::internal(format!("internal error: {what}")).into_response()
        }
    }
}

async fn auth(State(st): St, req: Request, next: Next) -> Response {
    if let Some(key) = &st.api_key {
        let h = req.headers();
        let given = h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()));
        match given {
            None => {
                return ApiError::unauthorized(
                    "missing API key: send it as `Authorization: Bearer KEY`",
                )
                .into_response()
            }
            Some(g) if !constant_time_eq(g.trim().as_bytes(), key.as_bytes()) => {
                return ApiError::unauthorized("invalid API key").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn ready(st: &AppState) -> Result<Arc<Ready>, ApiError> {
    st.ready()
        .cloned()
        .ok_or_else(|| ApiError::unavailable("the model is loading", 5).with_code("model_loading"))
}

fn check_model(st: &AppState, o: &Obj) -> Result<(), ApiError> {
    if let Some(name) = params::string(o, "model")? {
        let stem = st.file_name.strip_suffix(".gguf").unwrap_or(&st.file_name);
        if !name.is_empty() && name != st.model_id && name != st.file_name && name != stem {
            return Err(ApiError::model_not_found(name, &st.model_id));
        }
    }
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_seed(st: &AppState) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ st.next_id().wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn health(State(st): St) -> Response {
    if st.ready().is_some() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({"status": "loading model"})),
        )
            .into_response()
    }
}

async fn models(State(st): St) -> Response {
    let meta = st.ready().map(|r| {
        json!({
            "n_vocab": r.model.n_vocab,
            "n_ctx_train": r.n_ctx_train,
            "n_ctx": r.engine.n_ctx(),
            "n_ctx_slot": r.engine.n_ctx_slot(),
            "n_parallel": r.engine.n_parallel(),
            "file": st.file_name,
            "chat_template": r.template.is_ok(),
        })
    });
    Json(json!({
        "object": "list",
        "data": [{
            "id": st.model_id,
            "object": "model",
            "created": st.created,
            "owned_by": "ferrite",
            "meta": meta,
        }]
    }))
    .into_response()
}

async fn embeddings(State(st): St, body: Bytes) -> Result<Response, ApiError> {
    let o = params::parse_body(&body)?;
    check_model(&st, &o)?;
    let r = ready(&st)?;
    match &r.embedder {
        Some(w) => crate::embed::embeddings(&st, &r, w, &o).await,
        None => Err(ApiError::bad_request(format!(
            "model {} does not support embeddings: it is a {} (decoder) model; embeddings need \
             an encoder such as bert",
            st.model_id,
            r.model.hp.arch.name()
        ))
        .with_code("model_not_supported")),
    }
}

/// Completions need a decoder; an embedding model answers 400.
fn check_generative(st: &AppState, r: &Ready) -> Result<(), ApiError> {
    if r.embedder.is_some() {
        return Err(ApiError::bad_request(format!(
            "model {} is an embedding model ({}): it cannot generate text; use /v1/embeddings",
            st.model_id,
            r.model.hp.arch.name()
        ))
        .with_code("model_not_supported"));
    }
    Ok(())
}

/// Tokenize on a blocking thread (a megabyte of text takes a while).
async fn tokenize_text(r: &Arc<Ready>, text: String, add_special: bool) -> Vec<u32> {
    let r = r.clone();
    tokio::task::spawn_blocking(move || r.tok.tokenize(&text, add_special, true))
        .await
        .unwrap_or_default()
}

/// The chat messages of a request, content parts joined to text.
fn messages(o: &Obj) -> Result<Vec<Message>, ApiError> {
    let list = match field(o, "messages") {
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::param(
                "messages",
                format!("'messages' must be an array of message objects, got {v}"),
            ))
        }
        None => return Err(ApiError::param("messages", "'messages' is required")),
    };
    if list.is_empty() {
        return Err(ApiError::param("messages", "'messages' must not be empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let p = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(ApiError::param(&p, format!("{p} must be an object")));
        };
        let mut m = m.clone();
        match m.get("role") {
            Some(Value::String(_)) => {}
            _ => {
                return Err(ApiError::param(
                    &format!("{p}.role"),
                    format!("{p}.role must be a string"),
                ))
            }
        }
        let content = match m.get("content") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(parts)) => {
                let mut texts = Vec::new();
                for (j, part) in parts.iter().enumerate() {
                    let pp = format!("{p}.content[{j}]");
                    match part {
                        Value::String(s) => texts.push(s.clone()),
                        Value::Object(po) => match (po.get("type"), po.get("text")) {
                            (Some(Value::String(t)), Some(Value::String(s))) if t == "text" => {
                                texts.push(s.clone())
                            }
                            (Some(Value::String(t)), _) if t != "text" => {
                                return Err(ApiError::param(
                                    &pp,
                                    format!("{pp}: content parts of type '{t}' are not supported (text only)"),
                                ))
                            }
                            _ => {
                                return Err(ApiError::param(
                                    &pp,
                                    format!("{pp} must be {{\"type\": \"text\", \"text\": \"...\"}}"),
                                ))
                            }
                        },
                        _ => {
                            return Err(ApiError::param(
                                &pp,
                                format!("{pp} must be a content part object"),
                            ))
                        }
                    }
                }
                Some(texts.join("\n"))
            }
            Some(v) => {
                return Err(ApiError::param(
                    &format!("{p}.content"),
                    format!(
                        "{p}.content must be a string, an array of content parts or null, got {v}"
                    ),
                ))
            }
        };
        m.insert("content".into(), content.map_or(Value::Null, Value::String));
        let msg: Message = serde_json::from_value(Value::Object(m))
            .map_err(|e| ApiError::param(&p, format!("{p}: {e}")))?;
        out.push(msg);
    }
    Ok(out)
}

fn render(r: &Ready, msgs: &[Message], add_generation_prompt: bool) -> Result<String, ApiError> {
    let t = r
        .template
        .as_ref()
        .map_err(|why| ApiError::bad_request(why.clone()).with_code("no_chat_template"))?;
    t.render(
        msgs,
        &RenderOptions {
            add_generation_prompt,
            ..Default::default()
        },
    )
    .map_err(|e| ApiError::param("messages", e.to_string()))
}

fn submit_error(e: SubmitError, param: &str) -> ApiError {
    match e {
        SubmitError::QueueFull { .. } => {
            ApiError::unavailable(e.to_string(), 1).with_code("queue_full")
        }
        SubmitError::ShuttingDown => ApiError::unavailable(e.to_string(), 5),
        SubmitError::PromptTooLong { .. } => {
            ApiError::param(param, e.to_string()).with_code("context_length_exceeded")
        }
        SubmitError::EmptyPrompt | SubmitError::BadToken { .. } => {
            ApiError::param(param, e.to_string())
        }
    }
}

fn submit(
    r: &Ready,
    prompt: Vec<u32>,
    gen: GenParams,
    param: &str,
) -> Result<UnboundedReceiver<Event>, ApiError> {
    let (tx, rx) = unbounded_channel();
    r.engine
        .submit(EngineRequest {
            prompt,
            params: gen,
            events: tx,
        })
        .map_err(|e| submit_error(e, param))?;
    Ok(rx)
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

fn timings_json(u: &Usage) -> Value {
    let rate = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
    let n_prompt = u.prompt_tokens - u.cached_tokens;
    json!({
        "prompt_n": n_prompt,
        "prompt_ms": u.prompt_ms,
        "prompt_per_second": rate(n_prompt, u.prompt_ms),
        "predicted_n": u.completion_tokens,
        "predicted_ms": u.gen_ms,
        "predicted_per_second": rate(u.completion_tokens, u.gen_ms),
        "cache_n": u.cached_tokens,
    })
}

fn chat_logprobs(lps: &[TokenLogprobs]) -> Vec<Value> {
    let one = |p: &ferrite_engine::TokenProb| json!({"token": p.text(), "logprob": p.logprob, "bytes": p.bytes});
    lps.iter()
        .map(|lp| {
            let mut v = one(&lp.chosen);
            v["top_logprobs"] = Value::Array(lp.top.iter().map(one).collect());
            v
        })
        .collect()
}

/// OpenAI's legacy completions logprobs; `offset` is the text offset of the first token.
fn completion_logprobs(lps: &[TokenLogprobs], mut offset: usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top = Vec::new();
    let mut offsets = Vec::new();
    for lp in lps {
        let t = lp.chosen.text();
        offsets.push(offset);
        offset += t.len();
        tokens.push(Value::String(t));
        token_logprobs.push(json!(lp.chosen.logprob));
        let mut m = serde_json::Map::new();
        for p in &lp.top {
            m.insert(p.text(), json!(p.logprob));
        }
        top.push(Value::Object(m));
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets})
}

/// Everything a request produced.
struct Collected {
    text: String,
    logprobs: Vec<TokenLogprobs>,
    finish: Finish,
    usage: Usage,
}

async fn collect(mut rx: UnboundedReceiver<Event>) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Started { .. } => {}
            Event::Delta {
                text: t,
                logprobs: l,
            } => {
                text.push_str(&t);
                logprobs.extend(l);
            }
            Event::Done { finish, usage } => {
                return Ok(Collected {
                    text,
                    logprobs,
                    finish,
                    usage,
                })
            }
            Event::Error { message } => return Err(ApiError::internal(message)),
        }
    }
    Err(ApiError::internal("the engine dropped the request"))
}

/// Per-kind pieces of a streamed response.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Completion,
}

struct StreamCtx {
    kind: Kind,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    want_logprobs: bool,
    /// Text to send first (completions' `echo`).
    echo: Option<String>,
    offset: usize,
}

impl StreamCtx {
    fn chunk(
        &self,
        delta_text: Option<&str>,
        role: bool,
        lps: &[TokenLogprobs],
        finish: Option<Finish>,
    ) -> Value {
        let finish = finish.map(|f| f.as_str());
        let mut v = match self.kind {
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if role {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = delta_text {
                    delta.insert("content".into(), json!(t));
                }
                let logprobs = if self.want_logprobs && !lps.is_empty() {
                    json!({"content": chat_logprobs(lps), "refusal": null})
                } else {
                    Value::Null
                };
                json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "system_fingerprint": "ferrite",
                    "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
                })
            }
            Kind::Completion => {
                let logprobs = if self.want_logprobs && !lps.is_empty() {
                    completion_logprobs(lps, self.offset)
                } else {
                    Value::Null
                };
                json!({
                    "id": self.id, "object": "text_completion", "created": self.created,
                    "model": self.model, "system_fingerprint": "ferrite",
                    "choices": [{"index": 0, "text": delta_text.unwrap_or(""), "logprobs": logprobs, "finish_reason": finish}],
                })
            }
        };
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }
}

fn sse(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

enum Phase {
    Running,
    Usage(Value),
    Done,
    End,
}

/// The SSE response: chunks as events arrive, a usage chunk when asked, then `[DONE]`.
/// Dropping it (the client went away) drops the receiver, which frees the slot.
fn stream_response(rx: UnboundedReceiver<Event>, sc: StreamCtx) -> Response {
    let s = futures_util::stream::unfold(
        (rx, sc, Phase::Running),
        |(mut rx, mut sc, phase)| async move {
            match phase {
                Phase::End => None,
                Phase::Done => Some((
                    Ok::<_, Infallible>(SseEvent::default().data("[DONE]")),
                    (rx, sc, Phase::End),
                )),
                Phase::Usage(u) => {
                    let mut v = sc.chunk(None, false, &[], None);
                    v["choices"] = json!([]);
                    v["usage"] = u;
                    Some((Ok(sse(&v)), (rx, sc, Phase::Done)))
                }
                Phase::Running => match rx.recv().await {
                    Some(Event::Started { .. }) => {
                        let ev = match sc.kind {
                            Kind::Chat => sc.chunk(Some(""), true, &[], None),
                            Kind::Completion => {
                                let echo = sc.echo.take().unwrap_or_default();
                                sc.offset = echo.len();
                                sc.chunk(Some(&echo), false, &[], None)
                            }
                        };
                        Some((Ok(sse(&ev)), (rx, sc, Phase::Running)))
                    }
                    Some(Event::Delta { text, logprobs }) => {
                        let v = sc.chunk(Some(&text), false, &logprobs, None);
                        sc.offset += text.len();
                        Some((Ok(sse(&v)), (rx, sc, Phase::Running)))
                    }
                    Some(Event::Done { finish, usage }) => {
                        let mut v = sc.chunk(
                            if sc.kind == Kind::Chat {
                                None
                            } else {
                                Some("")
                            },
                            false,
                            &[],
                            Some(finish),
                        );
                        v["timings"] = timings_json(&usage);
                        let next = if sc.include_usage {
                            Phase::Usage(usage_json(&usage))
                        } else {
                            Phase::Done
                        };
                        Some((Ok(sse(&v)), (rx, sc, next)))
                    }
                    Some(Event::Error { message }) => {
                        let v = ApiError::internal(message).body();
                        Some((Ok(sse(&v)), (rx, sc, Phase::Done)))
                    }
                    None => {
                        let v = ApiError::internal("the engine dropped the request").body();
                        Some((Ok(sse(&v)), (rx, sc, Phase::Done)))
                    }
                },
            }
        },
    );
    Sse::new(s).into_response()
}

async fn chat_completions(State(st): St, body: Bytes) -> Result<Response, ApiError> {
    let o = params::parse_body(&body)?;
    check_model(&st, &o)?;
    let r = ready(&st)?;
    check_generative(&st, &r)?;
    let c = params::common(&o, true, random_seed(&st))?;
    let msgs = messages(&o)?;
    let text = render(&r, &msgs, true)?;
    let add_special = r.tok.add_bos();
    let prompt = tokenize_text(&r, text, add_special).await;
    let want_logprobs = c.gen.logprobs.is_some();
    let rx = submit(&r, prompt, c.gen, "messages")?;
    let id = format!("chatcmpl-{:016x}", random_seed(&st));
    let created = now();
    if c.stream {
        return Ok(stream_response(
            rx,
            StreamCtx {
                kind: Kind::Chat,
                id,
                model: st.model_id.clone(),
                created,
                include_usage: c.include_usage,
                want_logprobs,
                echo: None,
                offset: 0,
            },
        ));
    }
    let out = collect(rx).await?;
    let logprobs = if want_logprobs {
        json!({"content": chat_logprobs(&out.logprobs), "refusal": null})
    } else {
        Value::Null
    };
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": st.model_id,
        "system_fingerprint": "ferrite",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": out.text, "refusal": null},
            "logprobs": logprobs,
            "finish_reason": out.finish.as_str(),
        }],
        "usage": usage_json(&out.usage),
        "timings": timings_json(&out.usage),
    }))
    .into_response())
}

/// The prompt of `/v1/completions`: a string, a list of token ids, or a one-element list of
/// either.
enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

fn prompt_param(o: &Obj) -> Result<Prompt, ApiError> {
    fn tokens(a: &[Value]) -> Option<Vec<u32>> {
        a.iter()
            .map(|v| {
                v.as_u64()
                    .filter(|&t| t <= u32::MAX as u64)
                    .map(|t| t as u32)
            })
            .collect()
    }
    match field(o, "prompt") {
        None => Err(ApiError::param("prompt", "'prompt' is required")),
        Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(a)) if a.len() == 1 && (a[0].is_string() || a[0].is_array()) => {
            match &a[0] {
                Value::String(s) => Ok(Prompt::Text(s.clone())),
                Value::Array(t) => tokens(t).map(Prompt::Tokens).ok_or_else(|| {
                    ApiError::param(
                        "prompt",
                        "'prompt' token lists must hold non-negative integers",
                    )
                }),
                _ => unreachable!("checked above"),
            }
        }
        Some(Value::Array(a)) if a.iter().all(|v| v.is_number()) => {
            tokens(a).map(Prompt::Tokens).ok_or_else(|| {
                ApiError::param(
                    "prompt",
                    "'prompt' token lists must hold non-negative integers",
                )
            })
        }
        Some(Value::Array(_)) => Err(ApiError::param(
            "prompt",
            "only one prompt per request is supported (a string or a list of token ids)",
        )),
        Some(v) => Err(ApiError::param(
            "prompt",
            format!("'prompt' must be a string or a list of token ids, got {v}"),
        )),
    }
}

async fn completions(State(st): St, body: Bytes) -> Result<Response, ApiError> {
    let o = params::parse_body(&body)?;
    check_model(&st, &o)?;
    let r = ready(&st)?;
    check_generative(&st, &r)?;
    let c = params::common(&o, false, random_seed(&st))?;
    let echo = params::boolean(&o, "echo")?.unwrap_or(false);
    let (prompt, prompt_text) = match prompt_param(&o)? {
        Prompt::Text(s) => {
            let toks = tokenize_text(&r, s.clone(), true).await;
            (toks, s)
        }
        Prompt::Tokens(t) => {
            if let Some(&bad) = t.iter().find(|&&id| id as usize >= r.model.n_vocab) {
                return Err(ApiError::param(
                    "prompt",
                    format!(
                        "token id {bad} out of range (the vocabulary has {} tokens)",
                        r.model.n_vocab
                    ),
                ));
            }
            let s = if echo {
                r.tok.detokenize_string(&t, false, true)
            } else {
                String::new()
            };
            (t, s)
        }
    };
    let want_logprobs = c.gen.logprobs.is_some();
    let rx = submit(&r, prompt, c.gen, "prompt")?;
    let id = format!("cmpl-{:016x}", random_seed(&st));
    let created = now();
    if c.stream {
        return Ok(stream_response(
            rx,
            StreamCtx {
                kind: Kind::Completion,
                id,
                model: st.model_id.clone(),
                created,
                include_usage: c.include_usage,
                want_logprobs,
                echo: echo.then_some(prompt_text),
                offset: 0,
            },
        ));
    }
    let out = collect(rx).await?;
    let offset = if echo { prompt_text.len() } else { 0 };
    let logprobs = if want_logprobs {
        completion_logprobs(&out.logprobs, offset)
    } else {
        Value::Null
    };
    let text = if echo {
        prompt_text + &out.text
    } else {
        out.text
    };
    Ok(Json(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": st.model_id,
        "system_fingerprint": "ferrite",
        "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": out.finish.as_str()}],
        "usage": usage_json(&out.usage),
        "timings": timings_json(&out.usage),
    }))
    .into_response())
}

async fn tokenize(State(st): St, body: Bytes) -> Result<Response, ApiError> {
    let o = params::parse_body(&body)?;
    let r = ready(&st)?;
    let content = params::string(&o, "content")?
        .ok_or_else(|| ApiError::param("content", "'content' is required"))?
        .to_owned();
    let add_special = params::boolean(&o, "add_special")?.unwrap_or(false);
    let with_pieces = params::boolean(&o, "with_pieces")?.unwrap_or(false);
    let toks = tokenize_text(&r, content, add_special).await;
    let tokens: Vec<Value> = if with_pieces {
        toks.iter()
            .map(|&id| json!({"id": id, "piece": String::from_utf8_lossy(&r.tok.token_to_piece(id, true))}))
            .collect()
    } else {
        toks.iter().map(|&id| json!(id)).collect()
    };
    Ok(Json(json!({"tokens": tokens})).into_response())
}

async fn detokenize(State(st): St, body: Bytes) -> Result<Response, ApiError> {
    let o = params::parse_body(&body)?;
    let r = ready(&st)?;
    let toks: Vec<u32> = match field(&o, "tokens") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_u64()
                    .filter(|&t| (t as usize) < r.model.n_vocab)
                    .map(|t| t as u32)
                    .ok_or_else(|| {
                        ApiError::param(
                            "tokens",
                            format!(
                                "'tokens' must hold token ids below {}, got {v}",
                                r.model.n_vocab
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ApiError::param(
                "tokens",
                format!("'tokens' must be an array of token ids, got {v}"),
            ))
        }
        None => return Err(ApiError::param("tokens", "'tokens' is required")),
    };
    Ok(Json(json!({"content": r.tok.detokenize_string(&toks, false, true)})).into_response())
}

async fn apply_template(State(st): St, body: Bytes) -> Result<Response, ApiError> {
    let o = params::parse_body(&body)?;
    let r = ready(&st)?;
    let msgs = messages(&o)?;
    let add = params::boolean(&o, "add_generation_prompt")?.unwrap_or(true);
    Ok(Json(json!({"prompt": render(&r, &msgs, add)?})).into_response())
}

async fn slots(State(st): St) -> Result<Response, ApiError> {
    let r = ready(&st)?;
    let v: Vec<Value> = r
        .engine
        .slots()
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id, "state": s.state, "is_processing": s.state != "idle",
                "n_cached": s.n_cached, "n_prompt": s.n_prompt, "n_decoded": s.n_decoded,
                "n_ctx": r.engine.n_ctx_slot(),
            })
        })
        .collect();
    Ok(Json(Value::Array(v)).into_response())
}

async fn metrics(State(st): St) -> Result<Response, ApiError> {
    let r = ready(&st)?;
    let m = r.engine.metrics();
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let n_ctx = r.engine.n_ctx() as f64;
    let used = g(&m.kv_cells_used) as f64;
    let rows: [(&str, &str, &str, String); 11] = [
        (
            "prompt_tokens_total",
            "counter",
            "Prompt tokens processed (cache hits excluded).",
            g(&m.prompt_tokens_total).to_string(),
        ),
        (
            "prompt_seconds_total",
            "counter",
            "Prompt processing time.",
            format!("{:.6}", g(&m.prompt_us_total) as f64 / 1e6),
        ),
        (
            "tokens_predicted_total",
            "counter",
            "Generated tokens.",
            g(&m.tokens_predicted_total).to_string(),
        ),
        (
            "tokens_predicted_seconds_total",
            "counter",
            "Generation time (per request, summed).",
            format!("{:.6}", g(&m.predicted_us_total) as f64 / 1e6),
        ),
        (
            "requests_total",
            "counter",
            "Requests started.",
            g(&m.requests_total).to_string(),
        ),
        (
            "requests_cancelled_total",
            "counter",
            "Requests whose client went away.",
            g(&m.cancelled_total).to_string(),
        ),
        (
            "decode_calls_total",
            "counter",
            "Batches decoded.",
            g(&m.decode_calls_total).to_string(),
        ),
        (
            "batch_tokens_total",
            "counter",
            "Tokens decoded in batches.",
            g(&m.batch_tokens_total).to_string(),
        ),
        (
            "requests_processing",
            "gauge",
            "Requests in a slot.",
            g(&m.requests_processing).to_string(),
        ),
        (
            "requests_deferred",
            "gauge",
            "Requests waiting for a slot.",
            r.engine.queued().to_string(),
        ),
        (
            "kv_cache_usage_ratio",
            "gauge",
            "Used fraction of the KV cache.",
            format!("{:.6}", if n_ctx > 0.0 { used / n_ctx } else { 0.0 }),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows.iter() {
        out.push_str(&format!(
            "# HELP ferrite_{name} {help}\n# TYPE ferrite_{name} {kind}\nferrite_{name} {value}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP ferrite_kv_cache_tokens KV cells in use.\n# TYPE ferrite_kv_cache_tokens gauge\nferrite_kv_cache_tokens {}\n",
        g(&m.kv_cells_used)
    ));
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4".parse().expect("static header"),
    );
    Ok((h, out).into_response())
}
