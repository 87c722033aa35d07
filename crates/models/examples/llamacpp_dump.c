// llama.cpp side of examples/layer_diff.rs: runs one prompt batch (1 thread, F16 KV cache,
// flash attention auto, default repack) with a cb_eval that writes every F32/F16 graph tensor as
// `name|op|type` (128 bytes), ne[4] (i64), f32 data; the last record is the final logits.
// Build against the .llamacpp build (no cmake target needed):
//   V=.llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp B=.llamacpp/build/bin
//   gcc -O1 -o /tmp/lcdump crates/models/examples/llamacpp_dump.c -I$V/include -I$V/ggml/include \
//       -L$B -lllama -lggml -lggml-base -Wl,-rpath,$B
// Run: /tmp/lcdump MODEL.gguf OUT.bin 1000 TOKEN_ID...   (1000 = dump layers below 1000)
// Then: cargo run --release -p ferrite-models --example layer_diff -- MODEL.gguf OUT.bin TOKEN_ID...
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *out;
static int max_layer = 1000;
static int dumping = 1;

static int layer_of(const char *name) {
    const char *d = strrchr(name, '-');
    if (!d) return -1;
    char *e; long v = strtol(d + 1, &e, 10);
    if (*e) return -1;
    return (int)v;
}

static bool cb(struct ggml_tensor *t, bool ask, void *ud) {
    (void)ud;
    int l = layer_of(t->name);
    if (ask) return dumping && l < max_layer;
    if (!dumping) return true;
    if (l >= max_layer) return true;
    if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16) return true;
    size_t nb = ggml_nbytes(t);
    char *buf = malloc(nb);
    ggml_backend_tensor_get(t, buf, 0, nb);
    int64_t n = ggml_nelements(t);
    float *f = malloc(n * sizeof(float));
    int64_t i = 0;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
    for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
    for (int64_t i1 = 0; i1 < t->ne[1]; i1++)
    for (int64_t i0 = 0; i0 < t->ne[0]; i0++) {
        size_t off = i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
        f[i++] = t->type == GGML_TYPE_F32 ? *(float *)(buf + off) : ggml_fp16_to_fp32(*(ggml_fp16_t *)(buf + off));
    }
    char name[128] = {0};
    snprintf(name, sizeof name, "%s|%s|%s", t->name, ggml_op_desc(t), ggml_type_name(t->type));
    fwrite(name, 1, 128, out);
    fwrite(t->ne, sizeof(int64_t), 4, out);
    fwrite(f, sizeof(float), n, out);
    free(buf); free(f);
    return true;
}

int main(int argc, char **argv) {
    // dump MODEL OUT.bin max_layer tok tok tok ...
    if (argc < 5) return 1;
    out = fopen(argv[2], "wb");
    max_layer = atoi(argv[3]);
    int n = argc - 4;
    llama_token *toks = malloc(n * sizeof(llama_token));
    for (int i = 0; i < n; i++) toks[i] = atoi(argv[4 + i]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512;
    // DUMP_THREADS=N: N threads (default 1). DUMP_PREFIX=1: decode all tokens but the last
    // without dumping, then the last one alone (a decode step over a filled cache).
    const char *th = getenv("DUMP_THREADS");
    cp.n_threads = th ? atoi(th) : 1; cp.n_threads_batch = cp.n_threads;
    cp.cb_eval = cb; cp.cb_eval_user_data = NULL;
    cp.type_k = GGML_TYPE_F16; cp.type_v = GGML_TYPE_F16;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (getenv("DUMP_PREFIX") && n > 1) {
        dumping = 0;
        if (llama_decode(ctx, llama_batch_get_one(toks, n - 1))) { fprintf(stderr, "decode failed\n"); return 1; }
        dumping = 1;
        if (llama_decode(ctx, llama_batch_get_one(toks + n - 1, 1))) { fprintf(stderr, "decode failed\n"); return 1; }
    } else {
        struct llama_batch b = llama_batch_get_one(toks, n);
        if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
    }
    float *lg = llama_get_logits_ith(ctx, -1);
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    char name[128] = {0}; snprintf(name, sizeof name, "LOGITS|final|f32");
    int64_t ne[4] = {nv, 1, 1, 1};
    fwrite(name, 1, 128, out); fwrite(ne, 8, 4, out); fwrite(lg, 4, nv, out);
    fclose(out);
    llama_free(ctx); llama_model_free(model);
    return 0;
}
