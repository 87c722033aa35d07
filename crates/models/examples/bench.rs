//! Prompt processing (pp) and generation (tg) throughput, llama-bench style.
//! Usage: bench [smollm2|gemma3|qwen2.5|all] [n_pp=512] [n_tg=128] [threads=1,2]

use ferrite_gguf::GgmlType;
use ferrite_models::{Batch, Context, ContextParams, Model};
use ferrite_testdata::Model as M;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let models = match args.get(1).map(String::as_str) {
        Some("smollm2") => vec![M::SmolLM2],
        Some("gemma3") => vec![M::Gemma3],
        Some("qwen2.5") => vec![M::Qwen25Coder],
        _ => M::GGUF.to_vec(),
    };
    let n_pp: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(512);
    let n_tg: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(128);
    let threads: Vec<usize> = args.get(4).map_or(vec![1, 2], |s| {
        s.split(',').map(|t| t.parse().unwrap()).collect()
    });
    for m in models {
        let model = Model::open(m.path()).unwrap();
        for &nt in &threads {
            let p = ContextParams {
                n_ctx: n_pp.max(n_tg) + 1,
                n_seq: 1,
                n_batch: n_pp,
                n_threads: nt,
                kv_type: GgmlType::F16,
                ..Default::default()
            };
            let mut ctx = Context::new(&model, p).unwrap();
            // pp: one batch of n_pp tokens, logits for the last one (as llama-bench).
            let tokens: Vec<u32> = (0..n_pp as u32).map(|i| 100 + (i * 7919) % 5000).collect();
            let pos: Vec<u32> = (0..n_pp as u32).collect();
            let seq = vec![0u32; n_pp];
            let want: Vec<bool> = (0..n_pp).map(|i| i == n_pp - 1).collect();
            let t = Instant::now();
            ctx.decode(&Batch {
                tokens: &tokens,
                pos: &pos,
                seq_id: &seq,
                want_logits: &want,
            })
            .unwrap();
            let pp = n_pp as f64 / t.elapsed().as_secs_f64();
            // tg: n_tg single-token steps from an empty cache.
            ctx.kv_cache_mut().clear();
            let t = Instant::now();
            for i in 0..n_tg as u32 {
                ctx.decode(&Batch {
                    tokens: &[100 + i],
                    pos: &[i],
                    seq_id: &[0],
                    want_logits: &[true],
                })
                .unwrap();
            }
            let tg = n_tg as f64 / t.elapsed().as_secs_f64();
            println!(
                "{:<12} threads {nt}: pp{n_pp} {pp:7.1} t/s   tg{n_tg} {tg:6.1} t/s",
                format!("{m:?}")
            );
        }
    }
}
