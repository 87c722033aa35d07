//! Does a sequence's logits depend on what else is in the batch? The engine's promise "8
//! streams give the same text as 1" rests on it. Oracle: the same sequence decoded alone in a
//! fresh context.

use ferrite_models::{Batch, Context, ContextParams, Model};
use ferrite_tokenizer::Tokenizer;

fn model() -> Model {
    let p = ferrite_testdata::Model::SmolLM2.path();
    Model::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/fetch-models.sh smollm2)", p.display()))
}

fn ctx(m: &Model) -> Context<'_> {
    Context::new(
        m,
        ContextParams {
            n_ctx: 256,
            n_seq: 2,
            n_batch: 64,
            n_threads: 2,
            kv_type: kv_type(),
            ..Default::default()
        },
    )
    .unwrap()
}

/// Max |a - b| over the last-token logits of `a` decoded alone vs. batched with `b`.
#[test]
fn logits_of_a_sequence_do_not_depend_on_the_batch() {
    let m = model();
    let tok = Tokenizer::from_gguf(m.gguf().meta()).unwrap();
    let a = tok.tokenize("def fibonacci(n):", true, true);
    let b = tok.tokenize("The capital of France is a city that", true, true);
    let pos = |t: &[u32]| (0..t.len() as u32).collect::<Vec<_>>();
    let last = |n: usize| (0..n).map(|i| i + 1 == n).collect::<Vec<_>>();

    let mut c1 = ctx(&m);
    let alone = c1
        .decode(&Batch {
            tokens: &a,
            pos: &pos(&a),
            seq_id: &vec![0; a.len()],
            want_logits: &last(a.len()),
        })
        .unwrap()
        .to_vec();

    let mut c2 = ctx(&m);
    // Interleave: b first (seq 1), then a (seq 0), one batch.
    let tokens: Vec<u32> = b.iter().chain(&a).copied().collect();
    let p: Vec<u32> = pos(&b).into_iter().chain(pos(&a)).collect();
    let s: Vec<u32> = vec![1; b.len()]
        .into_iter()
        .chain(vec![0; a.len()])
        .collect();
    let w: Vec<bool> = (0..tokens.len()).map(|i| i + 1 == tokens.len()).collect();
    let batched = c2
        .decode(&Batch {
            tokens: &tokens,
            pos: &p,
            seq_id: &s,
            want_logits: &w,
        })
        .unwrap()
        .to_vec();
    let diff = alone
        .iter()
        .zip(&batched)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("prompt: max |logit difference| alone vs batched = {diff:e}");
    assert!(diff == 0.0, "prompt logits differ by {diff}");

    // One generation step: a's next token alone vs. together with b's next token.
    let next = 13u32;
    let one = c1
        .decode(&Batch {
            tokens: &[next],
            pos: &[a.len() as u32],
            seq_id: &[0],
            want_logits: &[true],
        })
        .unwrap()
        .to_vec();
    let two = c2
        .decode(&Batch {
            tokens: &[next, next],
            pos: &[b.len() as u32, a.len() as u32],
            seq_id: &[1, 0],
            want_logits: &[false, true],
        })
        .unwrap()
        .to_vec();
    let diff2 = one
        .iter()
        .zip(&two)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("generation step: max |logit difference| alone vs batched = {diff2:e}");
    assert!(diff2 == 0.0, "generation logits differ by {diff2}");
}

/// A sequence whose new tokens land in KV cells *before* its older ones (cells freed by
/// another sequence are reused first-fit) vs. the same sequence decoded in a fresh context.
#[test]
fn logits_do_not_depend_on_kv_cell_order() {
    let m = model();
    let tok = Tokenizer::from_gguf(m.gguf().meta()).unwrap();
    let a = tok.tokenize("def fibonacci(n):", true, true);
    let b = tok.tokenize("The capital of France is a city that", true, true);
    let pos = |t: &[u32]| (0..t.len() as u32).collect::<Vec<_>>();
    let last = |n: usize| (0..n).map(|i| i + 1 == n).collect::<Vec<_>>();
    let next = 13u32;

    let mut c1 = ctx(&m);
    c1.decode(&Batch {
        tokens: &a,
        pos: &pos(&a),
        seq_id: &vec![0; a.len()],
        want_logits: &last(a.len()),
    })
    .unwrap();
    let fresh = c1
        .decode(&Batch {
            tokens: &[next],
            pos: &[a.len() as u32],
            seq_id: &[0],
            want_logits: &[true],
        })
        .unwrap()
        .to_vec();

    let mut c2 = ctx(&m);
    c2.decode(&Batch {
        tokens: &b,
        pos: &pos(&b),
        seq_id: &vec![1; b.len()],
        want_logits: &last(b.len()),
    })
    .unwrap();
    c2.decode(&Batch {
        tokens: &a,
        pos: &pos(&a),
        seq_id: &vec![0; a.len()],
        want_logits: &last(a.len()),
    })
    .unwrap();
    c2.kv_cache_mut().clear_seq(1); // cells 0.. are free again, before a's cells
    let reordered = c2
        .decode(&Batch {
            tokens: &[next],
            pos: &[a.len() as u32],
            seq_id: &[0],
            want_logits: &[true],
        })
        .unwrap()
        .to_vec();
    let diff = fresh
        .iter()
        .zip(&reordered)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("cell order: max |logit difference| fresh vs reordered cells = {diff:e}");
    assert!(diff == 0.0, "logits differ by {diff}");
}

/// The default F16 cache: its f16 V accumulator makes attention depend on the order cells are
/// visited in, which the model code fixes (position order), so this is the strict case.
fn kv_type() -> ferrite_gguf::GgmlType {
    ferrite_gguf::GgmlType::F16
}

/// Eight prompts in one batch (what the server does when 8 requests arrive together: 41
/// tokens, GEMM tiles) vs. each prompt alone in a fresh context (row kernels): the last-token
/// logits of each must be bit-identical.
#[test]
fn eight_prompts_batched_match_each_alone() {
    let m = model();
    let tok = Tokenizer::from_gguf(m.gguf().meta()).unwrap();
    let prompts = [
        "The capital of France is",
        "List three fruits:",
        "def fibonacci(n):",
        "The quick brown fox",
        "In 1492, Columbus",
        "Water boils at",
        "My favourite book is",
        "The best way to learn Rust is",
    ];
    let toks: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| tok.tokenize(p, true, true))
        .collect();
    let params = |n_seq| ContextParams {
        n_ctx: 512,
        n_seq,
        n_batch: 256,
        n_threads: 2,
        kv_type: kv_type(),
        ..Default::default()
    };
    let mut alone = Vec::new();
    for t in &toks {
        let mut c = Context::new(&m, params(8)).unwrap();
        let pos: Vec<u32> = (0..t.len() as u32).collect();
        let want: Vec<bool> = (0..t.len()).map(|i| i + 1 == t.len()).collect();
        alone.push(
            c.decode(&Batch {
                tokens: t,
                pos: &pos,
                seq_id: &vec![0; t.len()],
                want_logits: &want,
            })
            .unwrap()
            .to_vec(),
        );
    }
    let (mut tokens, mut pos, mut seq, mut want) = (vec![], vec![], vec![], vec![]);
    for (s, t) in toks.iter().enumerate() {
        for (i, &id) in t.iter().enumerate() {
            tokens.push(id);
            pos.push(i as u32);
            seq.push(s as u32);
            want.push(i + 1 == t.len());
        }
    }
    let mut c = Context::new(&m, params(8)).unwrap();
    let all = c
        .decode(&Batch {
            tokens: &tokens,
            pos: &pos,
            seq_id: &seq,
            want_logits: &want,
        })
        .unwrap()
        .to_vec();
    let nv = m.n_vocab;
    for (s, a) in alone.iter().enumerate() {
        let b = &all[s * nv..(s + 1) * nv];
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{:?}: max |logit difference| alone vs batched = {diff:e}",
            prompts[s]
        );
        assert!(diff == 0.0, "{:?}: logits differ by {diff}", prompts[s]);
    }
}
