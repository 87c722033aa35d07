"""Continuous batching under load.

- 8 clients streaming at once (greedy) get exactly the text each gets alone (oracle: the solo
  runs); prints aggregate generated tokens/s with 8 streams vs one.
- 64 concurrent clients, half disconnecting mid-stream: the server keeps answering, every slot
  is idle afterwards (/slots), and RSS returns to the warmed-up baseline within a margin.
"""

import json
import sys
import threading
import time

from harness import Server, run_tests, sse_events, sse_stream

try:
    import openai
except ImportError:
    raise SystemExit("the `openai` package is missing: python3 -m pip install openai")

srv = None
client = None
N_TOK = 24
PROMPTS = [
    "The capital of France is",
    "List three fruits:",
    "def fibonacci(n):",
    "The quick brown fox",
    "In 1492, Columbus",
    "Water boils at",
    "My favourite book is",
    "The best way to learn Rust is",
]
# RSS may grow by at most this much over the warmed-up baseline during a second 64-client storm.
RSS_MARGIN_KB = 16 * 1024


def stream_text(prompt):
    s = client.completions.create(model="m", prompt=prompt, max_tokens=N_TOK, temperature=0, stream=True,
                                  stream_options={"include_usage": True})
    text, usage = "", None
    for c in s:
        if c.choices:
            text += c.choices[0].text
        if c.usage:
            usage = c.usage
    return text, usage.completion_tokens


def test_8_streams_match_solo_runs():
    solo, n_solo, t0 = {}, 0, time.time()
    for p in PROMPTS:
        solo[p], n = stream_text(p)
        n_solo += n
    t_solo = time.time() - t0
    # Warm the prompt cache out of the picture: different slots may hold other prompts now.
    results, errors = {}, []

    def worker(p):
        try:
            results[p] = stream_text(p)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(p,)) for p in PROMPTS]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    t_par = time.time() - t0
    assert not errors, errors
    n_par = sum(n for _, n in results.values())
    print(f"    one stream at a time: {n_solo} tokens in {t_solo:.2f} s = {n_solo / t_solo:.1f} tokens/s")
    print(f"    8 concurrent streams: {n_par} tokens in {t_par:.2f} s = {n_par / t_par:.1f} tokens/s "
          f"({(n_par / t_par) / (n_solo / t_solo):.2f}x)")
    for p in PROMPTS:
        assert results[p][0] == solo[p], (p, results[p][0], solo[p])


def storm():
    """64 concurrent streaming clients, the even ones hanging up after the first token."""
    body = {"prompt": "Tell me a story about a dragon.", "max_tokens": 16, "temperature": 0.7, "stream": True}
    done, dropped, errors = [], [], []

    def client_fn(i):
        try:
            b = dict(body, seed=i, prompt=f"{body['prompt']} Number {i}.")
            sock, f, status = sse_stream(srv.port, "/v1/completions", b, timeout=300)
            if status != 200:
                errors.append(f"client {i}: HTTP {status}")
                sock.close()
                return
            ev = sse_events(f)
            if i % 2 == 0:
                next(ev), next(ev)  # first chunk + one token, then hang up mid-stream
                sock.close()
                dropped.append(i)
                return
            events = list(ev)
            sock.close()
            assert events[-1] == "[DONE]", events[-3:]
            assert json.loads(events[-2])["choices"][0]["finish_reason"] in ("stop", "length")
            done.append(i)
        except Exception as e:
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client_fn, args=(i,)) for i in range(64)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:5]
    assert len(done) == 32 and len(dropped) == 32, (len(done), len(dropped))
    # Every slot frees up (bounded wait) and nothing is queued.
    deadline = time.time() + 30
    while time.time() < deadline:
        slots = json.loads(srv.request("GET", "/slots")[2])
        if all(s["state"] == "idle" for s in slots):
            break
        time.sleep(0.1)
    assert all(s["state"] == "idle" for s in slots), slots
    metrics = srv.request("GET", "/metrics")[2].decode()
    assert "\nferrite_requests_deferred 0\n" in metrics and "\nferrite_requests_processing 0\n" in metrics
    return time.time() - t0


def test_64_clients_half_disconnect():
    start = srv.rss_kb()
    # Warm-up storm: allocator pools, thread stacks and the touched KV pages settle; then the
    # baseline. A second identical storm must not grow RSS beyond the margin (no leak per
    # request or per disconnect).
    storm()
    base = srv.rss_kb()
    secs = storm()
    rss = srv.rss_kb()
    metrics = srv.request("GET", "/metrics")[2].decode()
    cancelled = [l for l in metrics.splitlines() if l.startswith("ferrite_requests_cancelled_total ")]
    print(f"    64 clients in {secs:.1f} s; {cancelled[0]}; RSS {start / 1024:.1f} MiB idle, "
          f"{base / 1024:.1f} MiB after a warm-up storm, {rss / 1024:.1f} MiB after the second "
          f"(margin {RSS_MARGIN_KB / 1024:.0f} MiB)")
    assert rss <= base + RSS_MARGIN_KB, (base, rss)
    # Still serving.
    r = client.completions.create(model="m", prompt="Hi", max_tokens=2, temperature=0)
    assert r.usage.completion_tokens >= 1


def test_graceful_shutdown():
    srv.stop()


def main():
    global srv, client
    # F32 KV: with F16 the attention result depends on the order of the KV cells, which
    # interleave differently when streams share the cache (a models-crate issue, reported).
    srv = Server("--parallel", "8", "-c", "4096", "--alias", "m", "--kv-type", "f32")
    client = openai.OpenAI(base_url=srv.base + "/v1", api_key="none", max_retries=0, timeout=300)
    try:
        tests = [test_8_streams_match_solo_runs, test_64_clients_half_disconnect]
        if len(sys.argv) > 1:
            tests = [t for t in tests if t.__name__ in sys.argv[1:]]
        run_tests(tests + [test_graceful_shutdown])
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


if __name__ == "__main__":
    main()
