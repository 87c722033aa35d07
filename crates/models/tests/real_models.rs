//! The three real models against llama.cpp (refdata/llamacpp/*/greedy_server_completion.json:
//! llama-server, temperature 0, top_k 1, n_probs 5, F16 KV cache, 2 threads).
//!
//! Why the tolerances below are not tighter: with Q8 activation quantization these models are
//! chaotic at the last-bit level. Our own engine run with the scalar quants kernels instead of
//! the AVX-512 ones (FERRITE_NO_SIMD=1, results equal to ~1e-6 relative per dot product) moves
//! SmolLM2's top-1 log-probabilities by 0.03 nats on average and up to 0.21 (measured with
//! `examples/llamacpp_diff.rs`), because one flipped Q8 rounding cascades through the layers.
//! Matching llama.cpp within 0.05 at *every* step would need ggml's exact float evaluation
//! order in every kernel. So: the mean top-1 difference must be < 0.06, every step < 0.5, and
//! the tokens must equal llama.cpp's wherever llama.cpp's own top-2 gap is ≥ NEAR_TIE.

mod common;
use common::*;
use ferrite_gguf::GgmlType;
use ferrite_models::Model;
use ferrite_testdata::Model as M;

/// Mean |Δ top-1 log-probability| bound (nats) over all steps of a completion (measured:
/// 0.004–0.052, the largest on SmolLM2's 37-token chat prompt).
const LOGPROB_MEAN_TOL: f64 = 0.06;
/// Per-step bound (nats), the measured noise floor (0.21 between our own SIMD/scalar runs,
/// up to 0.45 against llama.cpp) with margin.
const LOGPROB_STEP_TOL: f64 = 0.5;
/// Steps where llama.cpp's top-2 gap is below this (nats) are near-ties: either token is right.
/// Equal to the per-step noise bound: flips were seen at llama.cpp gaps of 0.26 and 0.38.
const NEAR_TIE: f64 = 0.5;

fn records(m: M, file: &str) -> Vec<serde_json::Value> {
    json(m.refdata().join(file)).as_array().unwrap().clone()
}

fn gap(step: &serde_json::Value) -> f64 {
    let top = step["top_logprobs"].as_array().unwrap();
    top[0]["logprob"].as_f64().unwrap() - top[1]["logprob"].as_f64().unwrap()
}

/// Teacher forcing (llama.cpp's tokens fed back): our argmax equals llama.cpp's token at every
/// step that is not a near-tie, and the top-1 log-probabilities agree within the bounds above.
fn teacher_forced(m: M, file: &str) {
    let model = Model::open(m.path()).unwrap();
    let mut ctx = ctx(&model, 512, GgmlType::F16, 2);
    for r in records(m, file) {
        let name = r["name"].as_str().unwrap();
        let prompt = ids(&r["prompt_ids_server_tokenize_add_special"]);
        let want = ids(&r["generated_ids"]);
        ctx.kv_cache_mut().clear();
        let mut logits = run(&mut ctx, &prompt, 0, false);
        let (mut checked, mut sum, mut worst) = (0, 0f64, 0f64);
        let steps = r["steps"].as_array().unwrap();
        for (i, s) in steps.iter().enumerate() {
            let d = (logprob(&logits, want[i] as usize) - s["logprob"].as_f64().unwrap()).abs();
            sum += d;
            worst = worst.max(d);
            assert!(
                d < LOGPROB_STEP_TOL,
                "{m:?} {file}/{name} step {i}: top-1 logprob differs by {d:.3}"
            );
            if gap(s) >= NEAR_TIE {
                assert_eq!(
                    argmax(&logits) as u32,
                    want[i],
                    "{m:?} {file}/{name} step {i} (llama.cpp gap {:.3})",
                    gap(s)
                );
                checked += 1;
            }
            logits = run(&mut ctx, &[want[i]], (prompt.len() + i) as u32, false);
        }
        let mean = sum / steps.len() as f64;
        eprintln!("{m:?} {file}/{name}: argmax equal at all {checked} non-tie steps of {}; top-1 logprob diff mean {mean:.4} max {worst:.4}", steps.len());
        assert!(
            mean < LOGPROB_MEAN_TOL,
            "{m:?} {file}/{name}: mean top-1 logprob diff {mean:.4}"
        );
    }
}

/// Free-running greedy decoding equals llama.cpp's `generated_ids` token for token up to its
/// first near-tie (after which either continuation is legitimate); reports the full agreement.
/// With `all`, every generated token must be equal, near-ties included.
fn free_running(m: M, all: bool) {
    let model = Model::open(m.path()).unwrap();
    let mut ctx = ctx(&model, 512, GgmlType::F16, 2);
    for r in records(m, "greedy_server_completion.json") {
        let name = r["name"].as_str().unwrap();
        let prompt = ids(&r["prompt_ids_server_tokenize_add_special"]);
        let want = ids(&r["generated_ids"]);
        let (got, _) = greedy(&mut ctx, &prompt, want.len());
        let steps = r["steps"].as_array().unwrap();
        let first_tie = steps
            .iter()
            .position(|s| gap(s) < NEAR_TIE)
            .unwrap_or(want.len());
        let equal = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        eprintln!("{m:?}/{name}: {equal}/{} tokens equal to llama.cpp (first near-tie at step {first_tie})", want.len());
        assert!(equal >= first_tie, "{m:?}/{name}: diverged at step {equal} before the first near-tie {first_tie}\n ours {got:?}\n llama.cpp {want:?}");
        if all {
            assert_eq!(
                got,
                want,
                "{m:?}/{name}: {equal}/{} tokens equal",
                want.len()
            );
        }
    }
}

#[test]
fn smollm2_matches_llamacpp() {
    teacher_forced(M::SmolLM2, "greedy_server_completion.json");
    free_running(M::SmolLM2, false);
}

#[test]
fn qwen25_coder_matches_llamacpp() {
    teacher_forced(M::Qwen25Coder, "greedy_server_completion.json");
    // Since activations are quantized and attention is summed as llama.cpp's x86 build does
    // (examples/layer_diff.rs: every non-matmul op bit-equal), Qwen's greedy text is llama.cpp's
    // over every step, near-ties included.
    free_running(M::Qwen25Coder, true);
}

/// Gemma 3: also against the `-ctxcp 0` run (the llamacpp README: llama-server's default run
/// flips 3 of 6 continuations at near-ties against llama-simple).
#[test]
fn gemma3_matches_llamacpp() {
    teacher_forced(M::Gemma3, "greedy_server_completion.json");
    teacher_forced(M::Gemma3, "greedy_server_completion_ctxcp0.json");
    free_running(M::Gemma3, false);
}
