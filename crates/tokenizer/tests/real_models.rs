//! Oracle: `shared/refdata/llamacpp/<model>/tokenizer_tricky.json`, llama.cpp's
//! `llama-tokenize` output for 24 tricky strings on the three real models:
//! `ids` (BOS as the model says, special tokens parsed), `ids_no_bos`, `ids_no_parse_special`.
//! The models come from `scripts/fetch-models.sh`.

mod common;

use ferrite_testdata::Model;

fn check(model: Model) {
    let tok = common::load(&model.path());
    let cases = common::read_json(&model.refdata().join("tokenizer_tricky.json"));
    let cases = cases.as_array().expect("a list of cases");
    let mut fails = Vec::new();
    for c in cases {
        let text = c["text"].as_str().expect("text");
        for (field, add, parse) in [
            ("ids", true, true),
            ("ids_no_bos", false, true),
            ("ids_no_parse_special", true, false),
        ] {
            let want = common::ids(&c[field]);
            let got = tok.tokenize(text, add, parse);
            if got != want {
                fails.push(format!(
                    "  {field} {text:?}\n    want {want:?}\n    got  {got:?}"
                ));
            }
        }
    }
    println!(
        "{model:?}: {}/{} checks pass ({} strings)",
        cases.len() * 3 - fails.len(),
        cases.len() * 3,
        cases.len()
    );
    assert!(fails.is_empty(), "{model:?}:\n{}", fails.join("\n"));
}

#[test]
fn smollm2_tricky() {
    check(Model::SmolLM2);
}

#[test]
fn gemma3_tricky() {
    check(Model::Gemma3);
}

#[test]
fn qwen25_coder_tricky() {
    check(Model::Qwen25Coder);
}

/// Oracle: the GGUF metadata of the three models and llama.cpp's end-of-generation rules.
#[test]
fn special_tokens_of_the_real_models() {
    let q = common::load(&Model::Qwen25Coder.path());
    let im_end = q.token_id(b"<|im_end|>").unwrap();
    let eot = q.token_id(b"<|endoftext|>").unwrap();
    assert_eq!(q.eos(), Some(im_end), "eos_token_id of the GGUF");
    assert!(q.is_eog(im_end) && q.is_eog(eot));
    assert!(!q.add_bos());
    assert!(!q.is_eog(q.token_id(b"<|im_start|>").unwrap()));
    let g = common::load(&Model::Gemma3.path());
    assert!(g.add_bos());
    assert!(g.is_eog(g.token_id(b"<end_of_turn>").unwrap()));
    assert!(g.is_eog(g.eos().unwrap()));
    let s = common::load(&Model::SmolLM2.path());
    assert!(s.is_eog(s.token_id(b"<|im_end|>").unwrap()));
}

/// Load time of the largest BPE vocabulary (151,936 tokens, 151,387 merges). The bound is
/// loose for a shared 2-core machine; the measured figure is printed.
#[test]
fn qwen_vocab_loads_fast() {
    let f = ferrite_gguf::GgufFile::open(Model::Qwen25Coder.path()).unwrap();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let tok = ferrite_tokenizer::Tokenizer::from_gguf(&f).unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
        assert_eq!(tok.n_tokens(), 151_936);
        assert_eq!(tok.n_merges(), 151_387);
    }
    println!("qwen2.5 tokenizer load: {:.1} ms (best of 3)", best * 1e3);
    assert!(best < 0.5, "loading took {best:.3} s");
}
