"""`/v1/embeddings` of `ferrite serve` on an encoder (bert) GGUF, driven by the official `openai`
client (and raw HTTP for bad requests).

Environment: FERRITE_BIN, FERRITE_EMBED_MODEL (all-MiniLM-L6-v2 converted to GGUF by the
calling test), FERRITE_EMBED_EXPECTED (refdata/hf-tiny/minilm-l6-v2/expected).

Oracles: `embeddings.npy` (transformers BertModel, mean pooling over the attention mask, L2
norm) for the five sentences of `expected.json`: max |diff| <= 1e-4 and cosine > 0.9999 each;
`expected.json`'s unpadded `input_ids` for token inputs and `usage`; the float and base64
encodings of the same request must agree exactly; OpenAI's error shapes.
"""

import base64
import json
import os

import numpy as np

from harness import BIN, Server, run_tests

try:
    import openai
except ImportError:
    raise SystemExit("the `openai` package is missing: python3 -m pip install openai")

MODEL = os.environ["FERRITE_EMBED_MODEL"]
EXPECTED = os.environ["FERRITE_EMBED_EXPECTED"]
ALIAS = "minilm"
TOL_ABS, TOL_COS = 1e-4, 0.9999

srv = None
client = None
with open(os.path.join(EXPECTED, "expected.json")) as f:
    SENTS = json.load(f)["sentences"]
TEXTS = [s["text"] for s in SENTS]
IDS = [s["input_ids"] for s in SENTS]
REF = np.load(os.path.join(EXPECTED, "embeddings.npy"))


def check_close(got, ref, what):
    got = np.asarray(got, dtype=np.float32).astype(np.float64)
    ref = ref.astype(np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    d = float(np.abs(got - ref).max())
    cos = float(np.dot(got, ref) / (np.linalg.norm(got) * np.linalg.norm(ref)))
    print(f"     {what}: max |diff| {d:.3e}, cosine {cos:.9f}")
    assert d <= TOL_ABS and cos > TOL_COS, (what, d, cos)


def raw(body):
    """POST /v1/embeddings; (status, json)."""
    return srv.json("POST", "/v1/embeddings", body)


def test_five_sentences_match_transformers():
    # The client asks for base64 unless told otherwise and decodes it itself.
    r = client.embeddings.create(model=ALIAS, input=TEXTS)
    assert r.object == "list" and r.model == ALIAS
    assert [d.index for d in r.data] == list(range(5))
    for i, d in enumerate(r.data):
        assert d.object == "embedding"
        check_close(d.embedding, REF[i], f"sentence {i}")
    n = sum(len(x) for x in IDS)
    assert r.usage.prompt_tokens == n and r.usage.total_tokens == n, (r.usage, n)


def test_float_and_base64_agree_and_single_inputs():
    st, jf = raw({"input": TEXTS, "encoding_format": "float"})
    assert st == 200, jf
    st, jb = raw({"input": TEXTS, "encoding_format": "base64"})
    assert st == 200, jb
    for f, b in zip(jf["data"], jb["data"]):
        vf = np.asarray(f["embedding"], dtype=np.float32)
        vb = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert np.array_equal(vf, vb), "float and base64 encodings differ"
    # One string; one token list; a list of token lists: the same vectors as the batch.
    batch = np.asarray([d["embedding"] for d in jf["data"]], dtype=np.float32)
    one = client.embeddings.create(model=ALIAS, input=TEXTS[2], encoding_format="float")
    assert len(one.data) == 1 and one.usage.prompt_tokens == len(IDS[2])
    assert np.abs(np.asarray(one.data[0].embedding, dtype=np.float32) - batch[2]).max() <= 1e-6
    toks = client.embeddings.create(model=ALIAS, input=IDS[0])
    assert np.abs(np.asarray(toks.data[0].embedding, dtype=np.float32) - batch[0]).max() <= 1e-6
    lists = client.embeddings.create(model=ALIAS, input=IDS)
    assert lists.usage.prompt_tokens == sum(len(x) for x in IDS)
    for i, d in enumerate(lists.data):
        check_close(d.embedding, REF[i], f"token list {i}")


def expect_400(body, param, contains=()):
    st, j = raw(body)
    assert st == 400, (body, st, j)
    err = j["error"]
    assert err["type"] == "invalid_request_error", err
    assert err["param"] == param, (body, err)
    for c in contains:
        assert c in err["message"], (c, err["message"])
    return err["message"]


def test_bad_input_names_the_parameter():
    expect_400({}, "input")
    expect_400({"input": 5}, "input")
    expect_400({"input": []}, "input")
    expect_400({"input": [[]]}, "input")
    expect_400({"input": [-1]}, "input")
    expect_400({"input": ["a", 3]}, "input")
    expect_400({"input": [999999]}, "input", ["999999", "30522"])
    expect_400({"input": "a", "encoding_format": "hex"}, "encoding_format")
    expect_400({"input": "a", "dimensions": 10}, "dimensions", ["384"])
    st, _ = raw({"input": "a", "dimensions": 384})
    assert st == 200
    st, j = srv.json("POST", "/v1/embeddings", {"input": "a", "model": "nope"})
    assert st == 404 and j["error"]["param"] == "model", j


def test_input_over_context_names_both_numbers():
    text = "word " * 600
    st, j = srv.json("POST", "/tokenize", {"content": text, "add_special": True})
    assert st == 200, j
    n = len(j["tokens"])
    msg = expect_400({"input": ["short", text]}, "input")
    assert str(n) in msg and "512" in msg, msg
    try:
        client.embeddings.create(model=ALIAS, input=text)
        raise AssertionError("over-long input accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400


def test_generation_on_embedding_model_is_400():
    for path, body in [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 1}),
    ]:
        st, j = srv.json("POST", path, body)
        assert st == 400, (path, st, j)
        assert "embedding model" in j["error"]["message"], j
    assert srv.request("GET", "/health")[0] == 200


def test_graceful_shutdown():
    srv.stop()


def main():
    global srv, client
    srv = Server("--alias", ALIAS, "-t", "2", model=MODEL)
    client = openai.OpenAI(base_url=srv.base + "/v1", api_key="none", max_retries=0, timeout=300)
    try:
        run_tests([
            test_five_sentences_match_transformers,
            test_float_and_base64_agree_and_single_inputs,
            test_bad_input_names_the_parameter,
            test_input_over_context_names_both_numbers,
            test_generation_on_embedding_model_is_400,
            test_graceful_shutdown,
        ])
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


if __name__ == "__main__":
    main()
