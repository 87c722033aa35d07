//! Several sequences in one batch give the same logits as each run alone; truncate_seq lets a
//! sequence reuse its prompt prefix.

mod common;
use common::*;
use ferrite_gguf::GgmlType;
use ferrite_models::{Batch, Context, ContextParams, Model};

/// Oracle: the same prompts decoded one sequence at a time (itself checked against
/// transformers in hf_tiny.rs). Tolerance 1e-5: only the cell order of the sums differs.
#[test]
fn interleaved_sequences_match_separate_runs() {
    let dir = hf_tiny("qwen3");
    let model = Model::open(dir.join("qwen3-f32.gguf")).unwrap();
    let meta = json(dir.join("expected/meta.json"));
    let a = ids(&meta["sequences"]["len7"]);
    let b = ids(&meta["sequences"]["len40"])[..11].to_vec();
    let mut solo = ctx(&model, 64, GgmlType::F32, 2);
    let la = run(&mut solo, &a, 0, false);
    solo.kv_cache_mut().clear();
    let lb = run(&mut solo, &b, 0, false);

    let mut c = Context::new(
        &model,
        ContextParams {
            n_ctx: 64,
            n_seq: 2,
            n_batch: 5,
            n_threads: 2,
            kv_type: GgmlType::F32,
            ..Default::default()
        },
    )
    .unwrap();
    // Interleave the two prompts token by token in one batch (split into micro-batches of 5).
    let (mut tok, mut pos, mut seq, mut want) = (vec![], vec![], vec![], vec![]);
    for i in 0..a.len().max(b.len()) {
        for (s, p) in [(0u32, &a), (1u32, &b)] {
            if i < p.len() {
                tok.push(p[i]);
                pos.push(i as u32);
                seq.push(s);
                want.push(i == p.len() - 1);
            }
        }
    }
    let out = c
        .decode(&Batch {
            tokens: &tok,
            pos: &pos,
            seq_id: &seq,
            want_logits: &want,
        })
        .unwrap()
        .to_vec();
    let n = model.n_vocab;
    // a ends first (len 7 < 11), so its logits come first.
    assert!(max_abs_diff(&out[..n], &la) < 1e-5);
    assert!(max_abs_diff(&out[n..], &lb) < 1e-5);

    // Drop b's tail after 4 tokens and re-feed it: same logits as before.
    c.kv_cache_mut().truncate_seq(1, 4);
    assert_eq!(c.kv_cache().seq_len(1), 4);
    assert_eq!(c.kv_cache().seq_len(0), a.len() as u32);
    let n_rest = b.len() - 4;
    let pos: Vec<u32> = (4..b.len() as u32).collect();
    let want: Vec<bool> = (0..n_rest).map(|i| i == n_rest - 1).collect();
    let again = c
        .decode(&Batch {
            tokens: &b[4..],
            pos: &pos,
            seq_id: &vec![1; n_rest],
            want_logits: &want,
        })
        .unwrap()
        .to_vec();
    assert!(max_abs_diff(&again, &lb) < 1e-5);
    // clear_seq frees only that sequence's cells.
    c.kv_cache_mut().clear_seq(1);
    assert_eq!(c.kv_cache().n_used(), a.len());
}
