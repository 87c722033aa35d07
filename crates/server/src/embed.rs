//! `/v1/embeddings` for encoder models (bert): a worker thread owns the [`Embedder`] and runs
//! requests one after another; the handler validates the input (strings, token lists),
//! tokenizes, and answers in OpenAI's shape (`float` or `base64` vectors, `usage`).

use std::sync::mpsc;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_models::{EmbedParams, Embedder, Model};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::params::{self, get as field, Obj};
use crate::{AppState, Ready};

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, String>>;

struct Job {
    seqs: Vec<Vec<u32>>,
    reply: Reply,
}

/// The thread that embeds; dropping the worker ends it.
pub struct EmbedWorker {
    tx: mpsc::Sender<Job>,
    /// Most tokens per input (the model's positions, or less when `-c` says so).
    pub n_ctx: usize,
    pub n_embd: usize,
}

impl EmbedWorker {
    /// Start the thread; returns once the embedder is allocated (or why it cannot be).
    pub fn start(
        model: Arc<Model>,
        n_threads: usize,
        n_batch: usize,
        n_ctx: Option<usize>,
    ) -> Result<EmbedWorker, String> {
        let n_ctx_train = model.hp.n_ctx_train;
        let n_embd = model.hp.n_embd;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("ferrite-embed".into())
            .spawn(move || {
                let params = EmbedParams {
                    n_threads: n_threads.max(1),
                    n_batch: n_batch.max(1),
                    ..Default::default()
                };
                let mut e = match Embedder::new(&model, params) {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(()));
                        e
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.to_string()));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    let seqs: Vec<&[u32]> = job.seqs.iter().map(|s| s.as_slice()).collect();
                    let _ = job
                        .reply
                        .send(e.embed(&seqs).map_err(|err| err.to_string()));
                }
            })
            .map_err(|e| format!("starting the embedding thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(EmbedWorker {
                tx,
                n_ctx: n_ctx.map_or(n_ctx_train, |c| c.clamp(1, n_ctx_train)),
                n_embd,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the embedding thread ended while starting".into()),
        }
    }

    async fn embed(&self, seqs: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { seqs, reply })
            .map_err(|_| ApiError::unavailable("the embedding thread has stopped", 5))?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ApiError::internal(format!("embedding failed: {e}"))),
            Err(_) => Err(ApiError::internal("the embedding thread ended")),
        }
    }
}

/// One `input` item before tokenization.
enum Input {
    Text(String),
    Tokens(Vec<u32>),
}

fn token_list(a: &[Value], at: &str) -> Result<Vec<u32>, ApiError> {
    if a.is_empty() {
        return Err(ApiError::param(
            "input",
            format!("{at} is an empty token list"),
        ));
    }
    a.iter()
        .map(|v| {
            v.as_u64()
                .filter(|&t| t <= u32::MAX as u64)
                .map(|t| t as u32)
        })
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| {
            ApiError::param(
                "input",
                format!("{at}: token lists must hold non-negative integers"),
            )
        })
}

/// `input`: a string, a list of strings, a list of token ids, or a list of token-id lists.
fn inputs(o: &Obj) -> Result<Vec<Input>, ApiError> {
    let shape = "'input' must be a string, a list of strings, a list of token ids or a list of \
                 token-id lists";
    match field(o, "input") {
        None => Err(ApiError::param("input", "'input' is required")),
        Some(Value::String(s)) => Ok(vec![Input::Text(s.clone())]),
        Some(Value::Array(a)) if a.is_empty() => {
            Err(ApiError::param("input", "'input' must not be empty"))
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => {
            Ok(vec![Input::Tokens(token_list(a, "input")?)])
        }
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(Input::Text(s.clone())),
                Value::Array(t) => token_list(t, &format!("input[{i}]")).map(Input::Tokens),
                other => Err(ApiError::param(
                    "input",
                    format!("input[{i}] is {other}; {shape}"),
                )),
            })
            .collect(),
        Some(v) => Err(ApiError::param("input", format!("{shape}, got {v}"))),
    }
}

/// Standard base64 (RFC 4648, padded).
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// The `/v1/embeddings` answer for an encoder model.
pub(crate) async fn embeddings(
    st: &AppState,
    r: &Arc<Ready>,
    w: &EmbedWorker,
    o: &Obj,
) -> Result<Response, ApiError> {
    let items = inputs(o)?;
    let b64 = match params::string(o, "encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::param(
                "encoding_format",
                format!("'encoding_format' must be float or base64, got {other:?}"),
            ))
        }
    };
    if let Some(d) = params::integer(o, "dimensions", 1, i64::MAX)? {
        if d as usize != w.n_embd {
            return Err(ApiError::param(
                "dimensions",
                format!(
                    "this model makes {}-dimensional embeddings, not {d}",
                    w.n_embd
                ),
            ));
        }
    }
    let n_vocab = r.model.n_vocab;
    for (i, it) in items.iter().enumerate() {
        if let Input::Tokens(t) = it {
            if let Some(&id) = t.iter().find(|&&id| id as usize >= n_vocab) {
                return Err(ApiError::param(
                    "input",
                    format!("input[{i}]: token id {id} out of range (n_vocab = {n_vocab})"),
                ));
            }
        }
    }
    // Tokenize on a blocking thread (long texts take a while).
    let tok = r.tok.clone();
    let seqs: Vec<Vec<u32>> = tokio::task::spawn_blocking(move || {
        items
            .into_iter()
            .map(|it| match it {
                Input::Text(s) => tok.tokenize(&s, true, true),
                Input::Tokens(t) => t,
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing: {e}")))?;
    for (i, s) in seqs.iter().enumerate() {
        if s.len() > w.n_ctx {
            return Err(ApiError::param(
                "input",
                format!(
                    "input[{i}] has {} tokens, more than the model's context of {} tokens",
                    s.len(),
                    w.n_ctx
                ),
            )
            .with_code("context_length_exceeded"));
        }
    }
    let n_tokens: usize = seqs.iter().map(Vec::len).sum();
    let vecs = w.embed(seqs).await?;
    let data: Vec<Value> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if b64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": st.model_id,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracle: RFC 4648 section 10 test vectors.
    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    fn obj(v: Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn input_shapes_and_errors_name_the_parameter() {
        let n = |v: Value| inputs(&obj(json!({ "input": v }))).map(|x| x.len());
        assert_eq!(n(json!("a")).unwrap(), 1);
        assert_eq!(n(json!(["a", "b"])).unwrap(), 2);
        assert_eq!(n(json!([1, 2, 3])).unwrap(), 1);
        assert_eq!(n(json!([[1, 2], [3]])).unwrap(), 2);
        for bad in [
            json!(5),
            json!([]),
            json!([[]]),
            json!([-1]),
            json!([1.5]),
            json!(["a", 3]),
            json!({"a": 1}),
        ] {
            let e = n(bad.clone())
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.param.as_deref(), Some("input"), "{bad}");
        }
        let e = inputs(&obj(json!({}))).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("input"));
    }
}
