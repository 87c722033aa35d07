#!/usr/bin/env python3
"""Expected chat-template renders made with the real jinja2, set up exactly like transformers'
`apply_chat_template` (transformers/utils/chat_template_utils.py, `_compile_jinja_template` and
`render_jinja_template`):

    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    filters["tojson"]  = json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    globals["raise_exception"] = raise jinja2.exceptions.TemplateError(message)
    globals["strftime_now"]    = datetime.now().strftime(format)
    template.render(messages=..., tools=tools or None, documents=documents or None,
                    add_generation_prompt=..., **special_tokens, **extra_kwargs)

Run from the repository root (jinja2 3.1.6, the version the hf-tiny refdata used; Python 3.11):

    python3 crates/chat/tests/gen/make_jinja2_renders.py > crates/chat/tests/fixtures/jinja2_renders.json

Templates: the real models' templates (shared/refdata/llamacpp/*/chat_template.jinja, which are
byte-identical to `tokenizer.chat_template` in the GGUFs under models/), this crate's built-in
templates (crates/chat/src/templates/*.jinja) and small inline templates that exercise one
engine feature each (Python methods, tojson options, namespace, loop controls, printing of
None/bools/floats/lists, trim_blocks/lstrip_blocks whitespace). A render that raises is
recorded as `error` ("ExceptionType: message"). `syntax_errors` lists sources jinja2 refuses to
compile, with the line it reports.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))
REFDATA = os.environ.get("FERRITE_REFDATA", os.path.join(ROOT, "../shared/refdata"))


class AssistantTracker(jinja2.ext.Extension):
    """transformers' `{% generation %}` tag; without return_assistant_tokens_mask it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def compile_template(source):
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------- conversations
# Message dicts use the key order of ferrite_chat::Message (role, content, name, tool_calls,
# tool_call_id, reasoning_content) so they round-trip through that type.
SYS_USER_ASSISTANT_USER = [
    {"role": "system", "content": "You are a careful assistant. Réponds en français si besoin."},
    {"role": "user", "content": "  What's 7 × 6?\n"},
    {"role": "assistant", "content": "42 — the answer.  "},
    {"role": "user", "content": "And in 日本語? 🤖\tTabs\tand \"quotes\" \\ backslash"},
]
USER_ONLY = [{"role": "user", "content": "Hello!"}]
USER_ASSISTANT = [
    {"role": "user", "content": "Write a haiku about rust."},
    {"role": "assistant", "content": "Iron wakes to red\nslow oxygen's patient bite\nmetal turns to earth"},
]
CONTENT_PARTS = [
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
    {"role": "user", "content": [{"type": "text", "text": " Part one. "}, {"type": "text", "text": "Part two."}]},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city (°C or °F)",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Zürich"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    },
]
TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Zürich and in Tokyo?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius", "days": 2}}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "東京"}}},
        ],
    },
    {"role": "tool", "content": "{\"temp\": 21.5}", "tool_call_id": "call_1"},
    {"role": "tool", "content": "{\"temp\": 18}", "tool_call_id": "call_2"},
    {"role": "assistant", "content": "Zürich: 21.5 °C, Tokyo: 18 °C."},
    {"role": "user", "content": "Thanks"},
]
TOOL_CALL_WITH_TEXT = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Search for minijinja"},
    {
        "role": "assistant",
        "content": "Let me search.",
        "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": {"q": "minijinja <rust>"}}}],
    },
    {"role": "tool", "content": "minijinja is a Jinja2 engine in Rust", "tool_call_id": "x"},
]

# ---------------------------------------------------------------- feature templates
FEATURES = {
    "py_str_methods": (
        "{% for m in messages %}[{{ m.content.strip() }}|{{ m.content.lstrip() }}|{{ m.content.rstrip() }}"
        "|{{ m.content.strip(' \\n?') }}|{{ m.content.startswith('  W') }}|{{ m.content.endswith('?') }}"
        "|{{ m.content.split(' ')|length }}|{{ m.content.split()|join(',') }}|{{ m.content.replace('a', 'A') }}"
        "|{{ m.content.upper() }}|{{ m.content.lower() }}|{{ m.role.title() }}|{{ m.role.capitalize() }}"
        "|{{ m.content.split('\\n')[0] }}|{{ m.content.split(' ', 1)[-1] }}|{{ m.content.count('a') }}"
        "|{{ m.content.find('t') }}|{{ m.content.rfind('a') }}|{{ m.content.index('e') if 'e' in m.content else '-' }}"
        "|{{ m.content.rindex('a') if 'a' in m.content else '-' }}]\n{% endfor %}"
    ),
    "py_dict_methods": (
        "{% for m in messages %}{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}"
        "|{{ m.keys()|list|join(',') }}|{{ m.get('name', 'anon') }}|{{ m.get('role') }}|{{ m.get('missing') }}\n"
        "{% endfor %}"
    ),
    "namespace_loopcontrols": (
        "{% set ns = namespace(found=false, n=0, last='') %}"
        "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
        "{% set ns.n = ns.n + 1 %}{% set ns.last = m.role %}"
        "{% if m.role == 'assistant' %}{% set ns.found = true %}{% break %}{% endif %}{% endfor %}"
        "{{ ns.found }} {{ ns.n }} {{ ns.last }}"
    ),
    "loop_vars": (
        "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}"
        "/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.previtem.role if loop.previtem is defined else '-' }}"
        "/{{ loop.cycle('odd', 'even') }}\n{% endfor %}"
    ),
    "tojson_options": (
        "{{ tools|tojson }}\n{{ tools[0]|tojson(indent=2) }}\n{{ tools[0].function.parameters|tojson(separators=(',', ':')) }}\n"
        "{{ tools[0].function.parameters|tojson(sort_keys=true) }}\n{{ tools[0].function|tojson(ensure_ascii=true) }}\n"
        "{{ messages|tojson }}\n{{ {'f': 1.0, 'g': 0.1, 'h': 1e20, 'i': -3, 'n': none, 't': true, 'e': [], 'd': {}}|tojson }}\n"
        "{{ 'tab\\tnl\\nq\"bs\\\\ctl\\x01 é'|tojson }}\n{{ [1, [2, {'a': []}]]|tojson(indent=4) }}\n{{ tools|tojson(false, 1) }}"
    ),
    "python_printing": (
        "{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 2.5 }}|{{ 1e20 }}|{{ 3 }}|{{ [1, 'a', none, true, 1.5] }}"
        "|{{ {'k': 'v', 'q': \"it's\"} }}|{{ messages[0].content }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}"
        "|{{ undefined_variable }}|{{ bos_token }}|{{ eos_token }}"
    ),
    "whitespace_trim_lstrip": (
        "Start\n"
        "{% for m in messages %}\n"
        "    {% if m.role == 'user' %}\n"
        "    User: {{ m.content }}\n"
        "    {% else %}\n"
        "  Other: {{ m.role }}\n"
        "    {%- endif %}\n"
        "    {%+ if true %}kept{% endif %}\n"
        "  {# a comment #}\n"
        "{% endfor %}\n"
        "{%- if add_generation_prompt -%}\n"
        "   GEN   \n"
        "{%- endif %}\n"
        "End\n"
    ),
    "slices_tests_filters": (
        "{{ messages[1:]|length }}|{{ messages[-1].role }}|{{ messages[0].content[:5] }}|{{ 'abc'[::-1] }}"
        "|{{ messages|map(attribute='role')|join(',') }}|{{ messages|selectattr('role', 'equalto', 'user')|list|length }}"
        "|{{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='role')|list }}|{{ (messages|first).role }}"
        "|{{ (messages|last).role }}|{{ messages[0].name|default('dflt') }}|{{ messages[0].content is string }}"
        "|{{ messages is sequence }}|{{ messages[0] is mapping }}|{{ tools is none }}|{{ foo is defined }}"
        "|{{ 3 is number }}|{{ messages[0].content|trim|upper }}|{{ ' x '|trim }}|{{ 'a-b-c'|replace('-', '+') }}"
        "|{{ messages|length > 2 }}|{{ 7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 3 }}|{{ 'x' ~ 1 }}|{{ 'ab' in 'cabd' }}"
        "|{{ 'role' in messages[0] }}|{{ [3, 1, 2]|sort|list }}|{{ range(3)|list }}|{{ messages|reverse|map(attribute='role')|first }}"
    ),
    "macro_and_set_block": (
        "{% macro turn(role, text) %}<{{ role }}>{{ text|trim }}</{{ role }}>{% endmacro %}"
        "{% set header %}H:{{ messages|length }}{% endset %}{{ header }}\n"
        "{% for m in messages %}{{ turn(m.role, m.content) }}\n{% endfor %}"
    ),
    "generation_tag": (
        "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}A: {{ m.content }}\n{% endgeneration %}"
        "{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}"
    ),
    "content_parts_passthrough": (
        "{% for m in messages %}{% if m.content is string %}S:{{ m.content }}{% else %}"
        "{% for p in m.content %}{{ p.type }}:{{ p.text }};{% endfor %}|{{ m.content|length }}{% endif %}\n{% endfor %}"
    ),
    "raise_exception": "{% if messages[0].role != 'user' %}{{ raise_exception('First message must be from the user, got ' + messages[0].role) }}{% endif %}ok",
    "undefined_attribute_error": "{{ messages[0].nothing.deeper }}",
    "string_plus_list_error": "{{ 'x' + messages[0].content }}",
}


def cases():
    out = []
    llamacpp = os.path.join(REFDATA, "llamacpp")
    real = [
        ("smollm2", "smollm2-135m-instruct-Q4_1", "<|im_start|>", "<|im_end|>"),
        ("qwen2.5-coder", "qwen2.5-coder-0.5b-instruct-Q4_K_M", "<|endoftext|>", "<|im_end|>"),
    ]
    convs = {
        "sys_user_assistant_user": (SYS_USER_ASSISTANT_USER, None),
        "user_only": (USER_ONLY, None),
        "user_assistant": (USER_ASSISTANT, None),
        "content_parts": (CONTENT_PARTS, None),
    }
    tool_convs = {
        "tools_user_only": (USER_ONLY, TOOLS),
        "tools_conversation": (TOOL_CONVERSATION, TOOLS),
        "tools_system_call_with_text": (TOOL_CALL_WITH_TEXT, TOOLS),
        "no_tools_tool_conversation": (TOOL_CONVERSATION, None),
    }
    for short, folder, bos, eos in real:
        src = {"kind": "model", "model": short, "refdata": f"llamacpp/{folder}/chat_template.jinja"}
        text = read(os.path.join(llamacpp, folder, "chat_template.jinja"))
        all_convs = dict(convs)
        if short == "qwen2.5-coder":
            all_convs.update(tool_convs)
        for name, (msgs, tools) in all_convs.items():
            for agp in (True, False):
                out.append(case(f"{short}/{name}/agp={agp}", src, text, bos, eos, msgs, agp, tools))
    templates_dir = os.path.join(ROOT, "crates/chat/src/templates")
    for name, bos, eos in [
        ("chatml", None, "<|im_end|>"),
        ("llama2", "<s>", "</s>"),
        ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
        ("gemma", "<bos>", "<eos>"),
        ("mistral", "<s>", "</s>"),
        ("phi3", "<s>", "<|endoftext|>"),
    ]:
        src = {"kind": "builtin", "name": name}
        text = read(os.path.join(templates_dir, name + ".jinja"))
        for cname, (msgs, tools) in convs.items():
            for agp in (True, False):
                out.append(case(f"builtin:{name}/{cname}/agp={agp}", src, text, bos, eos, msgs, agp, tools))
    for fname, text in FEATURES.items():
        src = {"kind": "inline", "source": text}
        for cname, msgs, tools in [
            ("sys_user_assistant_user", SYS_USER_ASSISTANT_USER, TOOLS),
            ("content_parts", CONTENT_PARTS, None),
            ("user_assistant", USER_ASSISTANT, None),
        ]:
            for agp in (True, False):
                out.append(case(f"feature:{fname}/{cname}/agp={agp}", src, text, "<s>", "</s>", msgs, agp, tools))
    # Extra keyword arguments: visible to the template, and they override special tokens.
    text = "{{ bos_token }}|{{ eos_token }}|{{ enable_thinking }}|{{ custom.k }}|{{ tools is none }}|{{ tools is defined }}"
    for extra in [{"enable_thinking": False, "custom": {"k": [1, 2]}}, {"bos_token": "<BOS2>", "enable_thinking": True, "custom": {}}]:
        out.append(case(f"feature:extra_kwargs/{sorted(extra)}", {"kind": "inline", "source": text}, text, "<s>", "</s>",
                        USER_ONLY, True, None, extra))
    return out


def case(cid, src, text, bos, eos, messages, agp, tools, extra=None):
    special = {}
    if bos is not None:
        special["bos_token"] = bos
    if eos is not None:
        special["eos_token"] = eos
    kwargs = {**special, **(extra or {})}
    c = {
        "id": cid,
        "template": src,
        "bos_token": bos,
        "eos_token": eos,
        "messages": messages,
        "add_generation_prompt": agp,
        "tools": tools,
        "extra": extra or {},
    }
    try:
        c["rendered"] = compile_template(text).render(
            messages=messages, tools=tools, documents=None, add_generation_prompt=agp, **kwargs
        )
    except Exception as e:  # recorded: our renderer must fail too
        c["error"] = f"{type(e).__name__}: {e}"
    return c


SYNTAX_ERRORS = [
    "{% for m in messages %}\n{{ m.role }\n{% endfor %}",
    "line one\nline two\n{% if add_generation_prompt %}\nno endif here",
    "{{ messages[0]['content' }}",
    "{% for m in messages %}{{ m.content }}{% endif %}",
    "ok\n\n\n{% set = 3 %}",
]


def syntax_errors():
    out = []
    for source in SYNTAX_ERRORS:
        try:
            compile_template(source)
        except jinja2.exceptions.TemplateSyntaxError as e:
            out.append({"source": source, "lineno": e.lineno, "error": f"TemplateSyntaxError: {e.message}"})
        else:
            raise SystemExit(f"expected a syntax error: {source!r}")
    return out


def main():
    doc = {
        "generator": "crates/chat/tests/gen/make_jinja2_renders.py",
        "jinja2_version": jinja2.__version__,
        "python_version": sys.version.split()[0],
        "settings": "transformers apply_chat_template: ImmutableSandboxedEnvironment(trim_blocks=True, "
        "lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols]), tojson=json.dumps(ensure_ascii=False), "
        "raise_exception -> TemplateError, render(messages, tools, documents=None, add_generation_prompt, "
        "bos_token, eos_token)",
        "cases": cases(),
        "syntax_errors": syntax_errors(),
    }
    json.dump(doc, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
