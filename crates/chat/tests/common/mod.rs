//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ferrite_chat::{ChatError, ChatTemplate, Message, RenderOptions};
use serde_json::Value as Json;

pub fn read_json(path: &Path) -> Json {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("oracle {} is missing or unreadable: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("oracle {} is not JSON: {e}", path.display()))
}

pub fn hf_tiny(model: &str) -> PathBuf {
    let dir = ferrite_testdata::refdata_dir().join("hf-tiny").join(model);
    assert!(
        dir.is_dir(),
        "refdata hf-tiny/{model} not found at {} (shared/refdata must hold the hf-tiny fixtures)",
        dir.display()
    );
    dir
}

/// Renders `messages` (JSON as recorded by the oracle) twice: passed through as JSON, and
/// through `Vec<Message>` when the JSON round-trips through that type. Both must agree.
pub fn render_both(
    t: &ChatTemplate,
    messages: &Json,
    opts: &RenderOptions,
) -> Result<String, ChatError> {
    let direct = t.render_json(messages.clone(), opts);
    if let Ok(typed) = serde_json::from_value::<Vec<Message>>(messages.clone()) {
        if serde_json::to_value(&typed).unwrap() == *messages {
            let via_type = t.render(&typed, opts);
            match (&direct, &via_type) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "JSON and Message renders differ"),
                (Err(_), Err(_)) => {}
                _ => panic!("JSON render {direct:?} but Message render {via_type:?}"),
            }
        }
    }
    direct
}

/// Checks a render against an oracle entry holding either `rendered` or `error`
/// ("ExceptionType: message"). A recorded `TemplateError` (raise_exception) must come back as
/// [`ChatError::Raised`] with the same message; other recorded errors as any render error.
pub fn check_against(id: &str, got: Result<String, ChatError>, expected: &Json) {
    if let Some(want) = expected.get("rendered") {
        let want = want.as_str().expect("rendered is a string");
        match got {
            Ok(text) => {
                if text != want {
                    panic!(
                        "{id}: render differs from the oracle\n--- want ---\n{want:?}\n--- got ---\n{text:?}"
                    );
                }
            }
            Err(e) => panic!("{id}: oracle rendered {want:?} but we failed: {e}"),
        }
    } else {
        let err = expected
            .get("error")
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("{id}: oracle entry has neither rendered nor error"));
        match got {
            Ok(text) => panic!("{id}: oracle raised {err:?} but we rendered {text:?}"),
            Err(e) => {
                if let Some(msg) = err.strip_prefix("TemplateError: ") {
                    match &e {
                        ChatError::Raised { message, .. } => {
                            assert_eq!(message, msg, "{id}: raise_exception message")
                        }
                        other => panic!("{id}: oracle raised TemplateError({msg:?}), we: {other}"),
                    }
                } else {
                    assert!(
                        matches!(e, ChatError::Render { .. }),
                        "{id}: oracle {err:?}, we: {e:?}"
                    );
                }
            }
        }
    }
}
