//! Oracle: llama.cpp's tokenizer test vectors, `shared/refdata/vocab/ggml-vocab-*.gguf` with
//! their `.inp` / `.out` files (no BOS/EOS, no special-token parsing), as llama.cpp's
//! `test-tokenizer-0` runs them. Every case must match.

mod common;

fn check(name: &str) {
    let dir = common::refdata("vocab");
    let gguf = dir.join(format!("ggml-vocab-{name}.gguf"));
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp")))
        .expect("read .inp");
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out")))
        .expect("read .out");
    let sep = "\n__ggml_vocab_test__\n";
    let mut texts: Vec<&str> = inp.split(sep).collect();
    if inp.ends_with(sep) || texts.last() == Some(&"") {
        texts.pop();
    }
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|x| x.parse().expect("id"))
                .collect()
        })
        .collect();
    assert_eq!(
        texts.len(),
        expected.len(),
        "{name}: .inp and .out disagree in length"
    );

    let t0 = std::time::Instant::now();
    let tok = common::load(&gguf);
    let load = t0.elapsed();
    let mut fails = Vec::new();
    for (text, want) in texts.iter().zip(&expected) {
        let got = tok.tokenize(text, false, false);
        if &got != want {
            fails.push(format!("  {text:?}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    println!(
        "{name}: {}/{} cases pass (load {:.1} ms)",
        texts.len() - fails.len(),
        texts.len(),
        load.as_secs_f64() * 1e3
    );
    assert!(
        fails.is_empty(),
        "{name}: {} of {} cases differ:\n{}",
        fails.len(),
        texts.len(),
        fails.join("\n")
    );
}

macro_rules! vocab_tests {
    ($($fn:ident => $name:literal,)*) => {$(
        #[test]
        fn $fn() {
            check($name);
        }
    )*};
}

vocab_tests! {
    bert_bge => "bert-bge",
    deepseek_coder => "deepseek-coder",
    deepseek_llm => "deepseek-llm",
    falcon => "falcon",
    gpt_2 => "gpt-2",
    llama_bpe => "llama-bpe",
    llama_spm => "llama-spm",
    mpt => "mpt",
    phi_3 => "phi-3",
    qwen2 => "qwen2",
    starcoder => "starcoder",
}
