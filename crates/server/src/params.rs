//! Request bodies: parsed by hand from JSON so every error names its parameter; unknown fields
//! are ignored (as OpenAI does).

use ferrite_engine::GenParams;
use ferrite_sampling::SamplerParams;
use serde_json::{Map, Value};

use crate::error::ApiError;

pub type Obj = Map<String, Value>;

/// The body as a JSON object.
pub fn parse_body(bytes: &[u8]) -> Result<Obj, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// A present, non-null field.
pub fn get<'a>(o: &'a Obj, k: &str) -> Option<&'a Value> {
    o.get(k).filter(|v| !v.is_null())
}

pub fn number(o: &Obj, k: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match get(o, k) {
        None => Ok(None),
        Some(v) => {
            let x = v
                .as_f64()
                .ok_or_else(|| ApiError::param(k, format!("'{k}' must be a number, got {v}")))?;
            if !(lo..=hi).contains(&x) {
                return Err(ApiError::param(
                    k,
                    format!("'{k}' must be between {lo} and {hi}, got {x}"),
                ));
            }
            Ok(Some(x))
        }
    }
}

pub fn integer(o: &Obj, k: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
    match get(o, k) {
        None => Ok(None),
        Some(v) => {
            let x = match (v.as_i64(), v.as_u64(), v.as_f64()) {
                (Some(i), _, _) => i,
                (None, Some(_), _) => i64::MAX,
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => f as i64,
                _ => {
                    return Err(ApiError::param(
                        k,
                        format!("'{k}' must be an integer, got {v}"),
                    ))
                }
            };
            if !(lo..=hi).contains(&x) {
                return Err(ApiError::param(
                    k,
                    format!("'{k}' must be between {lo} and {hi}, got {x}"),
                ));
            }
            Ok(Some(x))
        }
    }
}

pub fn boolean(o: &Obj, k: &str) -> Result<Option<bool>, ApiError> {
    match get(o, k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ApiError::param(
            k,
            format!("'{k}' must be a boolean, got {v}"),
        )),
    }
}

pub fn string<'a>(o: &'a Obj, k: &str) -> Result<Option<&'a str>, ApiError> {
    match get(o, k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(ApiError::param(
            k,
            format!("'{k}' must be a string, got {v}"),
        )),
    }
}

pub fn object<'a>(o: &'a Obj, k: &str) -> Result<Option<&'a Obj>, ApiError> {
    match get(o, k) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(v) => Err(ApiError::param(
            k,
            format!("'{k}' must be an object, got {v}"),
        )),
    }
}

/// Options shared by `/v1/chat/completions` and `/v1/completions`.
pub struct Common {
    pub gen: GenParams,
    pub stream: bool,
    pub include_usage: bool,
}

/// Sampling, budget, stop and streaming options. `chat` selects the chat flavour of
/// `logprobs` (a boolean plus `top_logprobs`) and of the token budget (`max_completion_tokens`
/// too, no default); completions default to 16 tokens as OpenAI's do.
pub fn common(o: &Obj, chat: bool, seed_fallback: u64) -> Result<Common, ApiError> {
    if let Some(n) = integer(o, "n", 1, i64::MAX)? {
        if n != 1 {
            return Err(ApiError::param(
                "n",
                format!("only n=1 is supported, got {n}"),
            ));
        }
    }
    let mut max_tokens = integer(o, "max_tokens", 1, i64::MAX)?;
    if chat {
        if let Some(m) = integer(o, "max_completion_tokens", 1, i64::MAX)? {
            max_tokens = Some(m);
        }
    }
    let max_tokens = match max_tokens {
        Some(m) => Some(m as usize),
        None if chat => None,
        None => Some(16),
    };
    let d = SamplerParams::default();
    let f = |k: &str, lo: f64, hi: f64, dflt: f32| -> Result<f32, ApiError> {
        Ok(number(o, k, lo, hi)?.map_or(dflt, |x| x as f32))
    };
    let mut repeat = f("repeat_penalty", 0.0, 10.0, d.repeat_penalty)?;
    if get(o, "repetition_penalty").is_some() {
        repeat = f("repetition_penalty", 0.0, 10.0, d.repeat_penalty)?;
    }
    if repeat <= 0.0 {
        return Err(ApiError::param(
            "repetition_penalty",
            "'repetition_penalty' must be greater than 0",
        ));
    }
    let seed = match get(o, "seed") {
        None => seed_fallback,
        Some(v) => match (v.as_u64(), v.as_i64()) {
            (Some(u), _) => u,
            (None, Some(i)) => i as u64,
            _ => {
                return Err(ApiError::param(
                    "seed",
                    format!("'seed' must be an integer, got {v}"),
                ))
            }
        },
    };
    let sampler = SamplerParams {
        seed,
        temperature: f("temperature", 0.0, 100.0, d.temperature)?,
        top_k: integer(o, "top_k", 0, i32::MAX as i64)?.map_or(d.top_k, |k| k as i32),
        top_p: f("top_p", 0.0, 1.0, d.top_p)?,
        min_p: f("min_p", 0.0, 1.0, d.min_p)?,
        typical_p: f("typical_p", 0.0, 1.0, d.typical_p)?,
        penalty_last_n: integer(o, "repeat_last_n", -1, i32::MAX as i64)?
            .map_or(d.penalty_last_n, |n| n as i32),
        repeat_penalty: repeat,
        frequency_penalty: f("frequency_penalty", -2.0, 2.0, d.frequency_penalty)?,
        presence_penalty: f("presence_penalty", -2.0, 2.0, d.presence_penalty)?,
        min_keep: 1,
    };
    let stop = match get(o, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > 16 {
                return Err(ApiError::param(
                    "stop",
                    "'stop' may hold at most 16 strings",
                ));
            }
            a.iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ApiError::param(
                        "stop",
                        format!("'stop' must be a string or a list of strings, got {v}"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(v) => {
            return Err(ApiError::param(
                "stop",
                format!("'stop' must be a string or a list of strings, got {v}"),
            ))
        }
    };
    let stop: Vec<String> = stop.into_iter().filter(|s| !s.is_empty()).collect();
    let logprobs = if chat {
        let want = boolean(o, "logprobs")?.unwrap_or(false);
        let top = integer(o, "top_logprobs", 0, 20)?;
        if top.is_some() && !want {
            return Err(ApiError::param(
                "top_logprobs",
                "'top_logprobs' requires 'logprobs': true",
            ));
        }
        want.then(|| top.unwrap_or(0) as usize)
    } else {
        integer(o, "logprobs", 0, 20)?.map(|k| k as usize)
    };
    let stream = boolean(o, "stream")?.unwrap_or(false);
    let include_usage = match object(o, "stream_options")? {
        Some(so) => boolean(so, "include_usage")
            .map_err(|e| ApiError::param("stream_options.include_usage", e.message))?
            .unwrap_or(false),
        None => false,
    };
    Ok(Common {
        gen: GenParams {
            max_tokens,
            sampler,
            stop,
            logprobs,
            ignore_eos: boolean(o, "ignore_eos")?.unwrap_or(false),
        },
        stream,
        include_usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Obj {
        parse_body(s.as_bytes()).unwrap()
    }

    #[test]
    fn errors_name_the_parameter() {
        // Oracle: the OpenAI error's `param` names the offending field.
        for (body, param) in [
            (r#"{"max_tokens": -1}"#, "max_tokens"),
            (r#"{"max_tokens": "ten"}"#, "max_tokens"),
            (r#"{"temperature": "hot"}"#, "temperature"),
            (r#"{"n": 2}"#, "n"),
            (r#"{"stop": 3}"#, "stop"),
            (r#"{"top_p": 1.5}"#, "top_p"),
            (r#"{"seed": "x"}"#, "seed"),
        ] {
            let e = common(&obj(body), true, 0).err().expect(body);
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_defaults_apply() {
        let c = common(&obj(r#"{"frobnicate": true, "stop": "x"}"#), false, 7).unwrap();
        assert_eq!(c.gen.max_tokens, Some(16));
        assert_eq!(c.gen.stop, vec!["x".to_string()]);
        assert_eq!(c.gen.sampler.seed, 7);
        let c = common(&obj(r#"{"max_completion_tokens": 5, "seed": 3}"#), true, 7).unwrap();
        assert_eq!(c.gen.max_tokens, Some(5));
        assert_eq!(c.gen.sampler.seed, 3);
    }

    #[test]
    fn bad_json_is_rejected() {
        assert!(parse_body(b"{").is_err());
        assert!(parse_body(b"[1]").is_err());
    }
}
