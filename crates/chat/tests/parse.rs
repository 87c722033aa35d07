//! Parsing of model output: reasoning blocks and tool calls.

use ferrite_chat::{
    parse_tool_calls, split_reasoning, split_reasoning_with, ChatError, ChatTemplate, Message,
    ReasoningSplit, RenderOptions, ToolCall, ToolCallFormat,
};
use ferrite_gguf::GgufFile;
use ferrite_testdata::Model;
use serde_json::json;

fn split(reasoning: Option<&str>, content: &str) -> ReasoningSplit {
    ReasoningSplit {
        reasoning: reasoning.map(str::to_owned),
        content: content.to_owned(),
    }
}

/// Expected values follow the output shapes of reasoning models: Qwen3/DeepSeek-R1 emit
/// `<think>\n...\n</think>\n\n` before the answer, or only `...</think>` when the template
/// already opened the block in the prompt.
#[test]
fn reasoning_is_split_from_content() {
    assert_eq!(
        split_reasoning("<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4."),
        split(Some("Let me add 2 and 2."), "The answer is 4.")
    );
    assert_eq!(
        split_reasoning("  <think>a</think>b  "),
        split(Some("a"), "b  ")
    );
    // Opened by the prompt.
    assert_eq!(
        split_reasoning("Thinking here.\n</think>\n\nAnswer."),
        split(Some("Thinking here."), "Answer.")
    );
    // Stopped while thinking.
    assert_eq!(
        split_reasoning("<think>\nstill going"),
        split(Some("still going"), "")
    );
    // Empty think block (Qwen3 with enable_thinking=false).
    assert_eq!(
        split_reasoning("<think>\n\n</think>\n\nHi!"),
        split(None, "Hi!")
    );
    // No reasoning: content unchanged, including a `<think>` that is not at the start.
    assert_eq!(
        split_reasoning(" Plain answer. "),
        split(None, " Plain answer. ")
    );
    assert_eq!(
        split_reasoning("Use <think> tags like <think>x</think>."),
        split(None, "Use <think> tags like <think>x</think>.")
    );
    assert_eq!(
        split_reasoning_with("[THINK]r[/THINK]c", "[THINK]", "[/THINK]"),
        split(Some("r"), "c")
    );
}

/// Oracle: the Qwen2.5-Coder template (rendered byte-identically to jinja2, see
/// jinja2_parity.rs) writes an assistant turn's tool calls in exactly the format the model is
/// taught to emit; parsing that text must give back the calls and content that were rendered.
#[test]
fn hermes_tool_calls_round_trip_through_the_qwen_template() {
    let gguf = GgufFile::open(Model::Qwen25Coder.path()).unwrap();
    let t = ChatTemplate::from_gguf(&gguf).unwrap().unwrap();
    assert_eq!(
        ToolCallFormat::detect(t.source()),
        Some(ToolCallFormat::Hermes)
    );
    let calls = vec![
        ToolCall::function(
            "get_weather",
            json!({"city": "Zürich", "days": 2, "opts": {"unit": "c", "alerts": [true, null, 1.5]}}),
        ),
        ToolCall::function("search", json!({"q": "a \"quoted\" <tag> \\ value"})),
    ];
    for content in ["", "Let me check that."] {
        let mut msg = Message::assistant(content);
        msg.tool_calls = Some(calls.clone());
        let text = t
            .render(&[Message::user("q"), msg], &RenderOptions::default())
            .unwrap();
        let start = text
            .rfind("<|im_start|>assistant\n")
            .expect("assistant turn")
            + "<|im_start|>assistant\n".len();
        let end = text.rfind("<|im_end|>").unwrap();
        let output = &text[start..end];
        assert!(output.contains("<tool_call>"), "{output}");
        let parsed = parse_tool_calls(output, ToolCallFormat::Hermes).unwrap();
        assert_eq!(parsed.tool_calls, calls, "from {output:?}");
        assert_eq!(parsed.content, content);
    }
}

#[test]
fn hermes_edge_cases() {
    // No marker: nothing parsed, text unchanged.
    let p = parse_tool_calls("Just text.", ToolCallFormat::Hermes).unwrap();
    assert!(p.tool_calls.is_empty());
    assert_eq!(p.content, "Just text.");
    // `parameters` instead of `arguments`, and arguments as a JSON string (decoded).
    let p = parse_tool_calls(
        "<tool_call>{\"name\": \"f\", \"parameters\": {\"x\": 1}}</tool_call>\n<tool_call>{\"name\": \"g\", \"arguments\": \"{\\\"y\\\": 2}\"}</tool_call>",
        ToolCallFormat::Hermes,
    )
    .unwrap();
    assert_eq!(
        p.tool_calls,
        vec![
            ToolCall::function("f", json!({"x": 1})),
            ToolCall::function("g", json!({"y": 2}))
        ]
    );
    assert_eq!(p.content, "");
    // Malformed: typed errors, never silently dropped.
    for bad in [
        "<tool_call>{\"name\": \"f\", \"arguments\": {</tool_call>",
        "<tool_call>{\"name\": \"f\"",
        "<tool_call>[1, 2]</tool_call>",
        "<tool_call>{\"arguments\": {}}</tool_call>",
    ] {
        let err = parse_tool_calls(bad, ToolCallFormat::Hermes).unwrap_err();
        assert!(
            matches!(
                err,
                ChatError::ToolCallParse {
                    format: "hermes",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
}

/// Format of Mistral-7B-Instruct-v0.3 / Nemo: `[TOOL_CALLS] [{"name", "arguments", "id"?}]`.
#[test]
fn mistral_tool_calls() {
    let p = parse_tool_calls(
        "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123def\"}, {\"name\": \"noop\", \"arguments\": {}}]",
        ToolCallFormat::Mistral,
    )
    .unwrap();
    let mut first = ToolCall::function("get_weather", json!({"city": "Paris"}));
    first.id = Some("abc123def".to_owned());
    assert_eq!(
        p.tool_calls,
        vec![first, ToolCall::function("noop", json!({}))]
    );
    assert_eq!(p.content, "");
    assert!(matches!(
        parse_tool_calls("[TOOL_CALLS] [{\"name\": ", ToolCallFormat::Mistral),
        Err(ChatError::ToolCallParse {
            format: "mistral",
            ..
        })
    ));
    assert_eq!(
        ToolCallFormat::detect("{{ '[TOOL_CALLS]' }}"),
        Some(ToolCallFormat::Mistral)
    );
    assert_eq!(ToolCallFormat::detect("{{ messages }}"), None);
}
