//! Typed errors: bad syntax, raise_exception, render failures, missing and unknown templates.

mod common;

use std::path::PathBuf;

use common::read_json;
use ferrite_chat::{ChatError, ChatTemplate, Message, RenderOptions};
use ferrite_gguf::{GgufFile, GgufWriter, Value as GgufValue};
use ferrite_testdata::Model;

fn conv() -> Vec<Message> {
    vec![Message::system("sys"), Message::user("hi")]
}

/// Oracle: `syntax_errors` in tests/fixtures/jinja2_renders.json, sources jinja2 3.1.6 refuses
/// to compile, with the line it reports. We refuse them too, at construction, naming the
/// template and the same line.
#[test]
fn syntax_errors_are_typed_with_template_name_and_line() {
    let fixture = read_json(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jinja2_renders.json"),
    );
    let cases = fixture["syntax_errors"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let source = case["source"].as_str().unwrap();
        let want_line = case["lineno"].as_u64().unwrap() as usize;
        let err = ChatTemplate::named("my-template.jinja", source, None, None)
            .expect_err(&format!("jinja2 rejects {source:?} but we compiled it"));
        match &err {
            ChatError::Syntax { template, line, .. } => {
                assert_eq!(template, "my-template.jinja");
                assert_eq!(*line, Some(want_line), "line of the error in {source:?}");
            }
            other => panic!("{source:?}: want a syntax error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("my-template.jinja") && text.contains(&format!("line {want_line}")),
            "{text}"
        );
    }
}

/// Oracle: transformers' raise_exception raises TemplateError(message); the hf-tiny Mistral
/// record has that message. We return ChatError::Raised with the message and line.
#[test]
fn raise_exception_is_a_typed_error_with_its_message() {
    let src = "{{ bos_token }}\n{% if messages[0]['role'] == 'system' %}\n{{ raise_exception('System role not supported') }}\n{% endif %}";
    let t = ChatTemplate::named("tmpl-x", src, Some("<s>"), None).unwrap();
    let err = t.render(&conv(), &RenderOptions::default()).unwrap_err();
    match &err {
        ChatError::Raised {
            template,
            line,
            message,
        } => {
            assert_eq!(template, "tmpl-x");
            assert_eq!(message, "System role not supported");
            assert_eq!(*line, Some(3));
        }
        other => panic!("want Raised, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "chat template tmpl-x raised an exception at line 3: System role not supported"
    );
    // Without the system message the same template renders (jinja2 3.1.6 gives "<s>\n": the
    // newline after `}}` stays, trim_blocks only eats the one after `%}`).
    assert_eq!(
        t.render(&[Message::user("hi")], &RenderOptions::default())
            .unwrap(),
        "<s>\n"
    );
}

/// A runtime failure that is not raise_exception (jinja2: UndefinedError) is a Render error
/// naming the template and line.
#[test]
fn render_failures_are_typed() {
    let t = ChatTemplate::named("t2", "ok\n{{ messages[0].missing.deeper }}", None, None).unwrap();
    let err = t.render(&conv(), &RenderOptions::default()).unwrap_err();
    assert!(
        matches!(err, ChatError::Render { line: Some(2), .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("chat template t2: render error at line 2"),
        "{err}"
    );
    let err = ChatTemplate::new("{{ strftime_now(1, 2) }}", None, None)
        .unwrap()
        .render(&conv(), &RenderOptions::default())
        .unwrap_err();
    assert!(matches!(err, ChatError::Render { .. }), "{err:?}");
}

/// Gemma 3 270M (base) has no tokenizer.chat_template (refdata/llamacpp/gemma3-270m-Q4_K_M
/// model_info.json: chat_template_present false).
#[test]
fn missing_template_is_none_or_a_typed_error() {
    let info = read_json(&Model::Gemma3.refdata().join("model_info.json"));
    assert_eq!(
        info["chat_template_present"], false,
        "oracle says Gemma 3 270M has a template"
    );
    let gguf = GgufFile::open(Model::Gemma3.path()).unwrap();
    assert!(ChatTemplate::from_gguf(&gguf).unwrap().is_none());
    let err = ChatTemplate::for_model(&gguf, None).unwrap_err();
    match &err {
        ChatError::Missing { model } => assert_eq!(model, "Gemma 3 270m"),
        other => panic!("want Missing, got {other:?}"),
    }
    assert!(err.to_string().contains("--chat-template"), "{err}");
    // A built-in name supplies one, with the model's own special tokens.
    let t = ChatTemplate::for_model(&gguf, Some("gemma")).unwrap();
    assert_eq!(
        (t.bos_token(), t.eos_token()),
        (Some("<bos>"), Some("<eos>"))
    );
    assert_eq!(
        t.render(
            &[Message::user("Hi")],
            &RenderOptions::generation_prompt(true)
        )
        .unwrap(),
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn unknown_names_and_unreadable_files_are_typed() {
    let err = ChatTemplate::from_spec("no-such-template", None, None).unwrap_err();
    assert!(matches!(err, ChatError::UnknownTemplate { .. }), "{err:?}");
    assert!(
        err.to_string().contains("chatml"),
        "lists the built-in names: {err}"
    );
    let err = ChatTemplate::builtin("vicuna", None, None).unwrap_err();
    assert!(matches!(err, ChatError::UnknownTemplate { .. }), "{err:?}");
    let err = ChatTemplate::from_file("/nonexistent/dir/t.jinja", None, None).unwrap_err();
    assert!(matches!(err, ChatError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/dir/t.jinja"));
}

#[test]
fn template_files_load_and_name_their_path_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jinja");
    std::fs::write(&good, "{% for m in messages %}[{{ m.role }}]{% endfor %}\n").unwrap();
    let t = ChatTemplate::from_spec(good.to_str().unwrap(), None, None).unwrap();
    assert_eq!(
        t.render(&conv(), &RenderOptions::default()).unwrap(),
        "[system][user]"
    );
    let bad = dir.path().join("bad.jinja");
    std::fs::write(&bad, "{% if %}").unwrap();
    let err = ChatTemplate::from_file(&bad, None, None).unwrap_err();
    assert!(matches!(err, ChatError::Syntax { .. }), "{err:?}");
    assert!(err.to_string().contains(bad.to_str().unwrap()), "{err}");
}

/// A GGUF whose template does not compile: from_gguf fails (no fallback), naming the model.
#[test]
fn broken_gguf_template_is_an_error_naming_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    let mut w = GgufWriter::new(&path);
    w.add_kv("general.architecture", "llama");
    w.add_kv("general.name", "Broken Model 1B");
    w.add_kv(
        "tokenizer.ggml.tokens",
        GgufValue::strings(["<s>", "</s>", "a"]),
    );
    w.add_kv("tokenizer.ggml.bos_token_id", 0u32);
    w.add_kv("tokenizer.ggml.eos_token_id", 7u32);
    w.add_kv(
        "tokenizer.chat_template",
        "{% for m in messages %}\n{{ m.role }",
    );
    w.begin_data().unwrap().finish().unwrap();
    let gguf = GgufFile::open(&path).unwrap();
    let err = ChatTemplate::from_gguf(&gguf).unwrap_err();
    // eos id 7 is out of range: reported before compiling.
    assert!(matches!(err, ChatError::Metadata { .. }), "{err:?}");
    assert!(err.to_string().contains("Broken Model 1B"), "{err}");

    let path = dir.path().join("broken2.gguf");
    let mut w = GgufWriter::new(&path);
    w.add_kv("general.architecture", "llama");
    w.add_kv("general.name", "Broken Model 1B");
    w.add_kv(
        "tokenizer.ggml.tokens",
        GgufValue::strings(["<s>", "</s>", "a"]),
    );
    w.add_kv("tokenizer.ggml.bos_token_id", 0u32);
    w.add_kv("tokenizer.ggml.eos_token_id", 1u32);
    w.add_kv(
        "tokenizer.chat_template",
        "{% for m in messages %}\n{{ m.role }",
    );
    w.begin_data().unwrap().finish().unwrap();
    let gguf = GgufFile::open(&path).unwrap();
    let err = ChatTemplate::from_gguf(&gguf).unwrap_err();
    match &err {
        ChatError::Syntax { template, line, .. } => {
            assert_eq!(template, "Broken Model 1B (tokenizer.chat_template)");
            assert_eq!(*line, Some(2));
        }
        other => panic!("want Syntax, got {other:?}"),
    }
}

/// Oracle: the system `date` command (Python's `datetime.now()` is local time as well).
#[test]
fn strftime_now_formats_local_time_like_python() {
    let t =
        ChatTemplate::new("{{ strftime_now('%Y-%m-%d|%d %B %Y|%b %-d') }}", None, None).unwrap();
    let before = std::process::Command::new("date")
        .arg("+%Y-%m-%d|%d %B %Y|%b %-d")
        .output()
        .expect("run date");
    let got = t.render(&[], &RenderOptions::default()).unwrap();
    let after = std::process::Command::new("date")
        .arg("+%Y-%m-%d|%d %B %Y|%b %-d")
        .output()
        .expect("run date");
    let before = String::from_utf8(before.stdout).unwrap();
    let after = String::from_utf8(after.stdout).unwrap();
    assert!(
        got == before.trim_end() || got == after.trim_end(),
        "strftime_now gave {got:?}, date gave {before:?}"
    );
}
