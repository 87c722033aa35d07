//! Teacher-forced comparison with llama.cpp's greedy_server_completion.json: for every step,
//! the difference of our log-probabilities from llama.cpp's top-5.
//! Usage: llamacpp_diff <smollm2|gemma3|qwen2.5> [f16|f32] [threads]

use ferrite_gguf::GgmlType;
use ferrite_models::{Batch, Context, ContextParams, Model};
use ferrite_testdata::Model as M;

fn logprobs(l: &[f32]) -> Vec<f64> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = l.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    l.iter().map(|&v| v as f64 - m - z).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let m = match args.get(1).map(String::as_str) {
        Some("gemma3") => M::Gemma3,
        Some("qwen2.5") => M::Qwen25Coder,
        _ => M::SmolLM2,
    };
    let kv_type = if args.get(2).map(String::as_str) == Some("f32") {
        GgmlType::F32
    } else {
        GgmlType::F16
    };
    let n_threads = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let model = Model::open(m.path()).unwrap();
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 512,
            n_seq: 1,
            n_batch: 512,
            n_threads,
            kv_type,
            ..Default::default()
        },
    )
    .unwrap();
    let text = std::fs::read_to_string(m.refdata().join("greedy_server_completion.json")).unwrap();
    let recs: serde_json::Value = serde_json::from_str(&text).unwrap();
    for r in recs.as_array().unwrap() {
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let prompt = ids(&r["prompt_ids_server_tokenize_add_special"]);
        let gen = ids(&r["generated_ids"]);
        ctx.kv_cache_mut().clear();
        let mut toks = prompt.clone();
        let mut pos0 = 0u32;
        let (mut sum, mut cnt, mut worst) = (0f64, 0usize, 0f64);
        let mut flips = 0;
        for (i, s) in r["steps"].as_array().unwrap().iter().enumerate() {
            let n = toks.len();
            let pos: Vec<u32> = (pos0..pos0 + n as u32).collect();
            let want: Vec<bool> = (0..n).map(|j| j == n - 1).collect();
            let l = ctx
                .decode(&Batch {
                    tokens: &toks,
                    pos: &pos,
                    seq_id: &vec![0; n],
                    want_logits: &want,
                })
                .unwrap()
                .to_vec();
            let lp = logprobs(&l);
            let am = (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
            if am as u32 != gen[i] {
                flips += 1;
            }
            for t in s["top_logprobs"].as_array().unwrap() {
                let d = lp[t["id"].as_u64().unwrap() as usize] - t["logprob"].as_f64().unwrap();
                sum += d.abs();
                cnt += 1;
                worst = worst.max(d.abs());
            }
            if std::env::var_os("VERBOSE").is_some() {
                let t0 = &s["top_logprobs"][0];
                println!(
                    "  step {i}: top1 {} ours {:.4} llama.cpp {:.4}",
                    t0["id"],
                    lp[t0["id"].as_u64().unwrap() as usize],
                    t0["logprob"].as_f64().unwrap()
                );
            }
            pos0 += n as u32;
            toks = vec![gen[i]];
        }
        println!(
            "{:?} {} kv {kv_type:?}: mean |dlogprob| {:.4} max {:.4} argmax flips {flips}",
            m,
            r["name"],
            sum / cnt as f64,
            worst
        );
    }
}
