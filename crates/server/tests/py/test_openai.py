"""`ferrite serve` driven by the official `openai` Python client (and raw HTTP for bad requests).

Oracles: `ferrite run` (greedy text), the server's own /tokenize and /apply-template (token
counts), the non-streaming answer (for the streamed one), the unconstrained greedy answer (for
stop strings), OpenAI's documented error shapes and status codes.
"""

import json
import os
import subprocess
import threading
import time

from harness import BIN, GEMMA, MODEL, Server, run_tests, sse_events, sse_stream

try:
    import openai
except ImportError:
    raise SystemExit("the `openai` package is missing: python3 -m pip install openai")

ALIAS = "smol"
srv = None
client = None
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def greedy_run(prompt, n):
    """`ferrite run` greedy output without the echoed prompt."""
    out = subprocess.run(
        [BIN, "run", MODEL, "-p", prompt, "-n", str(n), "--temp", "0", "-t", "2"],
        capture_output=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode()
    assert text.startswith(prompt)
    return text[len(prompt):].removesuffix("\n")


def n_tokens(text, add_special=True):
    status, j = srv.json("POST", "/tokenize", {"content": text, "add_special": add_special})
    assert status == 200, j
    return len(j["tokens"])


def test_models_list():
    ids = [m.id for m in client.models.list().data]
    assert ids == [ALIAS], ids


def test_chat_non_streaming_matches_ferrite_run_and_counts():
    r = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=12, temperature=0)
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert c.finish_reason in ("stop", "length")
    # Oracle 1: the same prompt through `ferrite run` (the template rendered by /apply-template).
    status, t = srv.json("POST", "/apply-template", {"messages": CHAT})
    assert status == 200, t
    want = greedy_run(t["prompt"], 12)
    assert c.message.content == want.split("<|im_end|>")[0], (c.message.content, want)
    # Oracle 2: /tokenize of the rendered prompt.
    assert r.usage.prompt_tokens == n_tokens(t["prompt"]), r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert 1 <= r.usage.completion_tokens <= 12


def test_chat_streaming_equals_non_streaming():
    kw = dict(model=ALIAS, messages=[{"role": "user", "content": [{"type": "text", "text": "Name three colors."}]}],
              max_tokens=10, temperature=0)
    full = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == full.choices[0].message.content, (text, full.choices[0].message.content)
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason], finals
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    # The second identical prompt reused the cached prefix (all but the last token).
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == full.usage.prompt_tokens - 1


def test_completions_match_ferrite_run():
    prompt = "The capital of France is"
    r = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=10, temperature=0)
    assert r.choices[0].text == greedy_run(prompt, 10), r.choices[0].text
    assert r.usage.prompt_tokens == n_tokens(prompt)
    # echo + a token-list prompt give the same continuation.
    status, toks = srv.json("POST", "/tokenize", {"content": prompt, "add_special": True})
    e = client.completions.create(model=ALIAS, prompt=toks["tokens"], max_tokens=10, temperature=0, echo=True)
    assert e.choices[0].text.endswith(r.choices[0].text) and prompt in e.choices[0].text, e.choices[0].text
    # Streaming gives the same text.
    s = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=10, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in s) == r.choices[0].text


def test_seed_reproducibility():
    kw = dict(model=ALIAS, prompt="Once upon a time", max_tokens=12, temperature=1.0, top_p=1.0,
              extra_body={"top_k": 0, "min_p": 0})
    a = client.completions.create(seed=42, **kw).choices[0].text
    b = client.completions.create(seed=42, **kw).choices[0].text
    assert a == b, (a, b)
    others = {client.completions.create(seed=s, **kw).choices[0].text for s in (1, 2, 3)}
    assert others != {a}, "different seeds all gave the same sample"


def test_stop_strings():
    prompt = "The capital of France is"
    full = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=12, temperature=0).choices[0].text
    # Oracle: the unconstrained greedy text cut before the stop string's first occurrence.
    stop = full[len(full) // 2: len(full) // 2 + 3]
    assert stop.strip(), full
    r = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=12, temperature=0, stop=[stop, "\u2603never"])
    assert r.choices[0].text == full[: full.find(stop)], (r.choices[0].text, full, stop)
    assert r.choices[0].finish_reason == "stop"
    # Streaming holds back a partial match: no chunk ever shows text past the cut.
    s = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=12, temperature=0, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in s) == full[: full.find(stop)]


def test_max_tokens_length_and_logprobs():
    r = client.chat.completions.create(model=ALIAS, messages=CHAT, max_completion_tokens=3, temperature=0,
                                       logprobs=True, top_logprobs=3)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    lp = r.choices[0].logprobs.content
    assert len(lp) == 3
    assert "".join(t.token for t in lp) == r.choices[0].message.content
    for t in lp:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert t.top_logprobs[0].token == t.token and abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6


def test_ignore_eos():
    # SmolLM2 answers this briefly: greedy ends at <|im_end|> well before 48 tokens.
    prompt = "<|im_start|>user\nSay only the word yes.<|im_end|>\n<|im_start|>assistant\n"
    r = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=48, temperature=0)
    assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens < 48, (r.choices[0].text, r.usage)
    r2 = client.completions.create(model=ALIAS, prompt=prompt, max_tokens=48, temperature=0,
                                   extra_body={"ignore_eos": True})
    assert r2.choices[0].finish_reason == "length", r2.choices[0]
    assert r2.usage.completion_tokens == 48, r2.usage
    # Masking end tokens changes nothing before the point where the plain run ended.
    assert r2.choices[0].text.startswith(r.choices[0].text), (r.choices[0].text, r2.choices[0].text)


def expect_status(method, path, body, status, param=None, headers=None, contains=None):
    st, h, data = srv.request(method, path, body, headers)
    assert st == status, (path, body if len(str(body)) < 200 else "...", st, data[:300])
    if status >= 400:
        e = json.loads(data)["error"]
        assert isinstance(e["message"], str) and e["type"], e
        if param:
            assert e["param"] == param, e
        if contains:
            for c in contains:
                assert c in e["message"], e["message"]
    # The server keeps answering after every bad request.
    assert srv.request("GET", "/health")[0] == 200
    return h


def test_bad_requests():
    chat = "/v1/chat/completions"
    expect_status("POST", chat, b"{not json", 400)
    expect_status("POST", chat, b"[1, 2]", 400)
    expect_status("POST", chat, {"messages": "hi"}, 400, param="messages")
    expect_status("POST", chat, {"messages": []}, 400, param="messages")
    expect_status("POST", chat, {"messages": [{"role": 1, "content": "x"}]}, 400, param="messages[0].role")
    expect_status("POST", chat, {"messages": CHAT, "max_tokens": -5}, 400, param="max_tokens")
    expect_status("POST", chat, {"messages": CHAT, "temperature": "hot"}, 400, param="temperature")
    expect_status("POST", chat, {"messages": CHAT, "n": 2}, 400, param="n")
    expect_status("POST", chat, {"messages": CHAT, "stop": 5}, 400, param="stop")
    expect_status("POST", chat, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
                  400, param="messages[0].content[0]")
    expect_status("POST", chat, {"model": "gpt-4", "messages": CHAT}, 404, param="model")
    expect_status("POST", "/v1/completions", {"prompt": 5}, 400, param="prompt")
    expect_status("POST", "/v1/completions", {"prompt": [999999999]}, 400, param="prompt")
    expect_status("POST", "/v1/embeddings", {"input": "x"}, 400, contains=["does not support embeddings"])
    # Unknown fields are ignored, as OpenAI does; the file name is accepted as the model name.
    expect_status("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1, "frobnicate": {"a": 1},
                                              "model": os.path.basename(MODEL)}, 200)
    # A 1 MB prompt: 400 naming both the prompt's tokens and the context size.
    big = "hello " * ((1 << 20) // 6)
    st, _, data = srv.request("POST", "/v1/completions", {"prompt": big, "max_tokens": 1})
    assert st == 400, (st, data[:200])
    msg = json.loads(data)["error"]["message"]
    n_ctx_slot = client.models.list().data[0].model_extra["meta"]["n_ctx_slot"]
    assert str(n_ctx_slot) in msg and "tokens" in msg, msg
    assert srv.request("GET", "/health")[0] == 200
    # The openai client maps them to its exception types.
    try:
        client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=-1)
        raise AssertionError("negative max_tokens accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400
    try:
        client.chat.completions.create(model="nope", messages=CHAT, max_tokens=1)
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as e:
        assert e.status_code == 404


def test_tokenize_detokenize_metrics_slots():
    st, j = srv.json("POST", "/tokenize", {"content": "Hello world", "with_pieces": True})
    assert st == 200 and "".join(p["piece"] for p in j["tokens"]) == "Hello world", j
    st, d = srv.json("POST", "/detokenize", {"tokens": [p["id"] for p in j["tokens"]]})
    assert st == 200 and d["content"] == "Hello world", d
    st, _, m = srv.request("GET", "/metrics")
    text = m.decode()
    assert st == 200
    for name in ("ferrite_prompt_tokens_total", "ferrite_tokens_predicted_total", "ferrite_prompt_seconds_total",
                 "ferrite_requests_processing", "ferrite_requests_deferred", "ferrite_kv_cache_usage_ratio"):
        assert f"\n{name} " in "\n" + text, name
    predicted = float([l for l in text.splitlines() if l.startswith("ferrite_tokens_predicted_total ")][0].split()[1])
    assert predicted > 0
    st, slots = srv.json("GET", "/slots")
    assert st == 200 and len(slots) == 4 and all(s["state"] == "idle" for s in slots), slots


def test_api_key():
    s = Server("--api-key", "sekret", "--parallel", "1", "-c", "512")
    try:
        assert s.request("GET", "/health")[0] == 200
        st, _, data = s.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1})
        assert st == 401 and json.loads(data)["error"]["type"] == "authentication_error", data
        assert s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401
        c = openai.OpenAI(base_url=s.base + "/v1", api_key="sekret")
        assert c.completions.create(model=os.path.basename(MODEL), prompt="Hi", max_tokens=1).usage.completion_tokens == 1
        try:
            openai.OpenAI(base_url=s.base + "/v1", api_key="bad").models.list()
            raise AssertionError("wrong key accepted")
        except openai.AuthenticationError:
            pass
    finally:
        s.stop()


def test_model_without_chat_template():
    if not GEMMA:
        raise AssertionError("FERRITE_GEMMA not set (scripts/fetch-models.sh gemma3)")
    s = Server("--parallel", "1", "-c", "512", model=GEMMA)
    try:
        st, _, data = s.request("POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 2})
        assert st == 400 and b"chat template" in data, data
        st, _, data = s.request("POST", "/v1/completions", {"prompt": "The sky is", "max_tokens": 2, "temperature": 0})
        assert st == 200 and json.loads(data)["usage"]["completion_tokens"] >= 1, data
    finally:
        s.stop()
    # With --chat-template it works.
    s = Server("--parallel", "1", "-c", "512", "--chat-template", "gemma", model=GEMMA)
    try:
        st, _, data = s.request("POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 2})
        assert st == 200, data
    finally:
        s.stop()


def test_queue_full_and_shutdown_cancels_streams():
    s = Server("--parallel", "1", "--queue-size", "1", "-c", "512")
    try:
        body = {"prompt": "Count: 1, 2, 3,", "max_tokens": 400, "stream": True, "temperature": 0}
        a_sock, a, st = sse_stream(s.port, "/v1/completions", body)
        assert st == 200
        ev = sse_events(a)
        next(ev), next(ev)  # A is generating in the only slot
        b_sock, b, st = sse_stream(s.port, "/v1/completions", body)  # B waits in the queue
        assert st == 200
        deadline = time.time() + 10
        while time.time() < deadline and json.loads(s.request("GET", "/slots")[2])[0]["state"] == "idle":
            time.sleep(0.05)
        time.sleep(0.3)
        st, h, data = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1})
        assert st == 503 and "retry-after" in h, (st, h, data)
        assert json.loads(data)["error"]["code"] == "queue_full"
        # SIGTERM: running and queued streams end, the process exits 0.
        t0 = time.time()
        s.stop(timeout=15)
        rest = list(ev)
        assert any("error" in r or r == "[DONE]" for r in rest), rest[-3:]
        assert time.time() - t0 < 15
        a_sock.close()
        b_sock.close()
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def test_graceful_shutdown():
    srv.stop()


def main():
    global srv, client
    srv = Server("--parallel", "4", "-c", "2048", "--alias", ALIAS)
    client = openai.OpenAI(base_url=srv.base + "/v1", api_key="none", max_retries=0, timeout=300)
    tests = [
        test_models_list,
        test_chat_non_streaming_matches_ferrite_run_and_counts,
        test_chat_streaming_equals_non_streaming,
        test_completions_match_ferrite_run,
        test_seed_reproducibility,
        test_stop_strings,
        test_max_tokens_length_and_logprobs,
        test_ignore_eos,
        test_bad_requests,
        test_tokenize_detokenize_metrics_slots,
        test_api_key,
        test_model_without_chat_template,
        test_queue_full_and_shutdown_cancels_streams,
    ]
    try:
        run_tests(tests + [test_graceful_shutdown])
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


if __name__ == "__main__":
    main()
