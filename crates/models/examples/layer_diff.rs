//! Layer-by-layer comparison with a llama.cpp tensor dump (one prompt batch, 1 thread).
//! Usage: layer_diff MODEL.gguf DUMP.bin TOKEN_ID... (DUMP from examples/llamacpp_dump.c, same tokens)
//! The dump holds records `name|op|type` (128 bytes), `ne[4]` (i64), f32 data (ggml order).
//! Two tables: (1) each op of layer 0 and the head fed llama.cpp's own inputs (isolated op
//! error); (2) our full forward pass against llama.cpp's at each observed matmul input.
//! Env: LD_FULL_ONLY=1 skips table (1) (its node names are llama-arch ones); LD_ROWS=N also
//! prints the differing elements per row of N; LD_TOKENS=1 the differing ffn_down outputs per
//! token. NB: the llama.cpp built on this Intel machine (-march=native) differs from the Zen 4
//! build that made refdata/llamacpp in its one-row f16 flash attention (seen on Gemma 3's
//! 6-token prompt, where ferrite matches refdata), so trust its dumps on f32 paths only.

use ferrite_compute::{
    attention, matmul, matmul_many, ops, AttnParams, AttnScratch, KvView, MatmulScratch, ThreadPool,
};
use ferrite_gguf::GgmlType;
use ferrite_models::{Batch, Context, ContextParams, Model, Qkv};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

struct Dump {
    map: HashMap<String, Vec<Vec<f32>>>,
}

impl Dump {
    fn load(path: &str) -> Dump {
        let b = std::fs::read(path).unwrap();
        let mut o = 0;
        let mut map: HashMap<String, Vec<Vec<f32>>> = HashMap::new();
        while o < b.len() {
            let name = String::from_utf8_lossy(&b[o..o + 128])
                .trim_end_matches('\0')
                .to_string();
            o += 128;
            let ne: Vec<i64> = (0..4)
                .map(|i| i64::from_le_bytes(b[o + 8 * i..o + 8 * i + 8].try_into().unwrap()))
                .collect();
            o += 32;
            let n: i64 = ne.iter().product();
            let d: Vec<f32> = b[o..o + 4 * n as usize]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            o += 4 * n as usize;
            let key = name.rsplit_once('|').unwrap().0.to_string();
            map.entry(key).or_default().push(d);
        }
        Dump { map }
    }
    fn get(&self, key: &str) -> &[f32] {
        self.get_n(key, 0)
    }
    fn get_n(&self, key: &str, i: usize) -> &[f32] {
        &self
            .map
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in dump"))[i]
    }
    fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

fn report(what: &str, ours: &[f32], want: &[f32]) {
    assert_eq!(ours.len(), want.len(), "{what}");
    let (mut ma, mut mr, mut neq) = (0f64, 0f64, 0usize);
    let amax = want.iter().fold(0f32, |a, &b| a.max(b.abs())) as f64;
    for (&a, &b) in ours.iter().zip(want) {
        let d = (a as f64 - b as f64).abs();
        ma = ma.max(d);
        mr = mr.max(d / (b.abs() as f64).max(1e-3 * amax));
        neq += (a.to_bits() != b.to_bits()) as usize;
    }
    println!(
        "{what:<34} max|Δ| {ma:10.3e}  max rel {mr:10.3e}  |ref|max {amax:9.3e}  bits≠ {neq}/{}",
        want.len()
    );
    // LD_ROWS=N: also the differing elements of each of the N rows.
    if let Some(rows) = std::env::var("LD_ROWS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let w = want.len() / rows.max(1);
        let per: Vec<usize> = (0..rows)
            .map(|r| {
                (r * w..(r + 1) * w)
                    .filter(|&i| ours[i].to_bits() != want[i].to_bits())
                    .count()
            })
            .collect();
        println!("{:34} per row {per:?}", "");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = Model::open(&args[1]).unwrap();
    let d = Dump::load(&args[2]);
    let toks: Vec<u32> = args[3..].iter().map(|s| s.parse().unwrap()).collect();
    let hp = &model.hp;
    let n = toks.len();
    let ne = hp.n_embd;
    let pool = ThreadPool::new(1);
    let mut mm = MatmulScratch::with_capacity(n, 8 * ne);
    let (hd, nh, nhk) = (hp.head_dim, hp.n_head, hp.n_head_kv);
    let (nq, nk) = (nh * hd, nhk * hd);
    // LD_FULL_ONLY=1: skip the isolated table (its node names are llama-arch ones).
    if std::env::var_os("LD_FULL_ONLY").is_none() {
        println!("== isolated ops (inputs from llama.cpp): max|Δ| / max|ref| per op and layer ==");
        let ops_names = [
            "attn_norm",
            "Q",
            "K",
            "V",
            "Qrope",
            "Krope",
            "attn",
            "attn_out",
            "ffn_norm",
            "gate",
            "up",
            "swiglu",
            "down",
            "l_out",
        ];
        print!("{:>3}", "il");
        for o in ops_names {
            print!(" {o:>9}");
        }
        println!();
        let nr = hp.n_rot;
        let mut rc = vec![0f32; n * nr];
        for t in 0..n {
            hp.rope.fill_cache(t as f32, &mut rc[t * nr..(t + 1) * nr]);
        }
        let attn_nodes: Vec<String> = {
            let mut v: Vec<(usize, String)> = d
                .map
                .keys()
                .filter_map(|k| {
                    let r = k.strip_prefix("node_")?;
                    let (num, op) = r.split_once('|')?;
                    Some((num.parse().ok()?, op.to_string(), k.clone()))
                })
                .filter(|(_, op, _)| op == "MUL_MAT")
                .map(|(i, _, k)| (i, k))
                .collect();
            v.sort();
            v.into_iter().map(|x| x.1).collect()
        };
        let rel = |ours: &[f32], want: &[f32]| -> f64 {
            let amax = want.iter().fold(0f32, |a, &b| a.max(b.abs())) as f64;
            let m = ours
                .iter()
                .zip(want)
                .map(|(&a, &b)| (a as f64 - b as f64).abs())
                .fold(0f64, f64::max);
            m / amax
        };
        for (il, w) in model.layers.iter().enumerate() {
            let mut row: Vec<f64> = Vec::new();
            let g = |k: &str| -> &[f32] {
                let (name, op) = k.split_once('|').unwrap();
                d.get(&format!("{name}-{il}|{op}"))
            };
            let inp = if il == 0 {
                d.get("embd|GET_ROWS").to_vec()
            } else {
                d.get(&format!("l_out-{}|ADD", il - 1)).to_vec()
            };
            let mut c = inp.clone();
            ops::rms_norm(&mut c, ne, Some(&w.attn_norm), hp.rms_eps);
            row.push(rel(&c, g("attn_norm|MUL")));
            let an = g("attn_norm|MUL");
            let (mut q, mut k, mut v) =
                (vec![0f32; n * nq], vec![0f32; n * nk], vec![0f32; n * nk]);
            if let Qkv::Separate {
                q: wq,
                k: wk,
                v: wv,
            } = &w.qkv
            {
                let (wq, wk, wv) = (wq.view(), wk.view(), wv.view());
                matmul_many(
                    &pool,
                    [&wq, &wk, &wv],
                    an,
                    n,
                    [&mut q, &mut k, &mut v],
                    &mut mm,
                )
                .unwrap();
            }
            row.push(rel(&q, g("Qcur|MUL_MAT")));
            row.push(rel(&k, g("Kcur|MUL_MAT")));
            row.push(rel(&v, g("Vcur|MUL_MAT")));
            let mut qr = g("Qcur|RESHAPE").to_vec();
            let mut kr = g("Kcur|RESHAPE").to_vec();
            for t in 0..n {
                hp.rope
                    .apply(&mut qr[t * nq..(t + 1) * nq], hd, &rc[t * nr..(t + 1) * nr]);
                hp.rope
                    .apply(&mut kr[t * nk..(t + 1) * nk], hd, &rc[t * nr..(t + 1) * nr]);
            }
            row.push(rel(&qr, g("Qcur|ROPE")));
            row.push(rel(&kr, g("Kcur|ROPE")));
            let to16 = |x: &[f32]| -> Vec<u8> {
                x.iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
                    .collect()
            };
            let kc = to16(g("Kcur|ROPE"));
            let vkey = if d.has(&format!("Vcur-{il}|RESHAPE")) {
                "Vcur|RESHAPE"
            } else {
                "Vcur|MUL_MAT"
            };
            let vc = to16(g(vkey));
            let vis: Vec<u32> = (0..n).flat_map(|t| 0..=t as u32).collect();
            let mut off = vec![0usize];
            for t in 0..n {
                off.push(off[t] + t + 1);
            }
            // Gemma: llama.cpp scales Q before attention (attn_scale_q), attention scale 1.
            let qin: Vec<f32> = if hp.attn_scale_q {
                g("Qcur|ROPE").iter().map(|&x| x * hp.attn_scale).collect()
            } else {
                g("Qcur|ROPE").to_vec()
            };
            let p = AttnParams {
                n_head: nh,
                n_head_kv: nhk,
                head_dim: hd,
                head_dim_v: hp.head_dim_v,
                scale: if hp.attn_scale_q { 1.0 } else { hp.attn_scale },
                softcap: hp.attn_softcap,
            };
            let mut att = vec![0f32; n * nh * hp.head_dim_v];
            let mut sc = AttnScratch::new(1, hd, hp.head_dim_v);
            let kvv = KvView {
                ty: GgmlType::F16,
                k: &kc,
                v: &vc,
            };
            attention(&pool, &p, &qin, &kvv, &vis, &off, &mut att, &mut sc).unwrap();
            let kqv = g("kqv_out|RESHAPE");
            row.push(rel(&att, kqv));
            if std::env::var_os("LD_ROWS").is_some() {
                report(&format!("attn {il}"), &att, kqv);
            }
            if !d.has(&format!("ffn_inp-{il}|ADD")) {
                // Not a llama-style graph (Gemma: post-norms): the attention is what is checked.
                print!("{il:>3}");
                for r in row {
                    print!(" {r:9.1e}");
                }
                println!();
                continue;
            }
            // attn_out: named, or the first unnamed MUL_MAT after this layer's kqv_out.
            let ao_key = format!("attn_out-{il}|MUL_MAT");
            let nrow_out = |key: &str| d.get(key).len() / ne;
            let ao_key = if d.has(&ao_key) {
                ao_key
            } else {
                attn_nodes[il].clone()
            };
            let rows_ao = nrow_out(&ao_key);
            let kqv_in = &kqv[(n - rows_ao) * nq..];
            let mut o = vec![0f32; rows_ao * ne];
            matmul(
                &pool,
                &w.attn_output.view(),
                kqv_in,
                rows_ao,
                &mut o,
                &mut mm,
            )
            .unwrap();
            row.push(rel(&o, d.get(&ao_key)));
            let fi = g("ffn_inp|ADD");
            let m = fi.len() / ne;
            let mut c = fi.to_vec();
            ops::rms_norm(&mut c, ne, Some(&w.ffn_norm), hp.rms_eps);
            row.push(rel(&c, g("ffn_norm|MUL")));
            if let ferrite_models::Ffn::Gated { gate, up, down, .. } = &w.ffn {
                let nf = gate.rows;
                let (mut a, mut u) = (vec![0f32; m * nf], vec![0f32; m * nf]);
                let (wg, wu) = (gate.view(), up.view());
                matmul_many(
                    &pool,
                    [&wg, &wu],
                    g("ffn_norm|MUL"),
                    m,
                    [&mut a, &mut u],
                    &mut mm,
                )
                .unwrap();
                row.push(rel(&a, g("ffn_gate|MUL_MAT")));
                row.push(rel(&u, g("ffn_up|MUL_MAT")));
                let mut sw = g("ffn_gate|MUL_MAT").to_vec();
                ops::swiglu(&mut sw, g("ffn_up|MUL_MAT"));
                row.push(rel(&sw, g("ffn_swiglu|SWIGLU")));
                let mut dn = vec![0f32; m * ne];
                matmul(
                    &pool,
                    &down.view(),
                    g("ffn_swiglu|SWIGLU"),
                    m,
                    &mut dn,
                    &mut mm,
                )
                .unwrap();
                row.push(rel(&dn, g("ffn_out|MUL_MAT")));
                if std::env::var_os("LD_TOKENS").is_some() {
                    let want = g("ffn_out|MUL_MAT");
                    let per: Vec<usize> = (0..m)
                        .map(|t| {
                            (0..ne)
                                .filter(|&i| dn[t * ne + i].to_bits() != want[t * ne + i].to_bits())
                                .count()
                        })
                        .collect();
                    eprintln!("layer {il} down: differing outputs per token {per:?}");
                }
                let mut lo = g("ffn_out|MUL_MAT").to_vec();
                ops::add(&mut lo, fi);
                row.push(rel(&lo, g("l_out|ADD")));
            }
            print!("{il:>3}");
            for r in row {
                print!(" {r:9.1e}");
            }
            if il == 0 || il + 1 == model.layers.len() {
                if let Qkv::Separate { q, k, v } = &w.qkv {
                    print!(
                        "   q {:?} k {:?} v {:?} o {:?}",
                        q.ty, k.ty, v.ty, w.attn_output.ty
                    );
                }
                if let ferrite_models::Ffn::Gated { gate, up, down, .. } = &w.ffn {
                    print!(" gate {:?} up {:?} down {:?}", gate.ty, up.ty, down.ty);
                }
            }
            println!();
        }
        // Head on the last row.
        let mut c = d.get("result_norm|MUL").to_vec();
        let outw = model.output.as_ref().unwrap();
        println!("   output {:?}", outw.ty);
        let mut lg = vec![0f32; model.n_vocab];
        matmul(&pool, &outw.view(), &c, 1, &mut lg, &mut mm).unwrap();
        report("result_output matmul", &lg, d.get("result_output|MUL_MAT"));
        c.clear();
    }

    println!("== full forward (ours vs llama.cpp, accumulated) ==");
    type Seen = Arc<Mutex<Vec<(String, Vec<f32>)>>>;
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    // LD_PREFIX=1 / LD_THREADS=N: as the dump's DUMP_PREFIX / DUMP_THREADS.
    let n_threads = std::env::var("LD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 512,
            n_seq: 1,
            n_batch: 512,
            n_threads,
            kv_type: GgmlType::F16,
            ..Default::default()
        },
    )
    .unwrap();
    let prefix = std::env::var_os("LD_PREFIX").is_some() && n > 1;
    if prefix {
        let m = n - 1;
        let pos: Vec<u32> = (0..m as u32).collect();
        ctx.decode(&Batch {
            tokens: &toks[..m],
            pos: &pos,
            seq_id: &vec![0u32; m],
            want_logits: &vec![false; m],
        })
        .unwrap_or_default();
    }
    ctx.set_matmul_observer(Some(Box::new(move |e| {
        s2.lock()
            .unwrap()
            .push((e.weight.to_string(), e.input.to_vec()));
    })));
    let first = if prefix { n - 1 } else { 0 };
    let pos: Vec<u32> = (first as u32..n as u32).collect();
    let seq = vec![0u32; n - first];
    let want: Vec<bool> = (first..n).map(|i| i == n - 1).collect();
    let logits = ctx
        .decode(&Batch {
            tokens: &toks[first..],
            pos: &pos,
            seq_id: &seq,
            want_logits: &want,
        })
        .unwrap()
        .to_vec();
    for (wname, inp) in seen.lock().unwrap().iter() {
        let parts: Vec<&str> = wname.split('.').collect();
        let key = match (parts.first(), parts.get(2)) {
            (Some(&"blk"), Some(&"attn_q")) => format!("attn_norm-{}|MUL", parts[1]),
            (Some(&"blk"), Some(&"attn_output")) => format!("kqv_out-{}|RESHAPE", parts[1]),
            (Some(&"blk"), Some(&"ffn_gate")) => format!("ffn_norm-{}|MUL", parts[1]),
            (Some(&"blk"), Some(&"ffn_down")) => format!("ffn_swiglu-{}|SWIGLU", parts[1]),
            _ if !wname.starts_with("blk") => "result_norm|MUL".to_string(),
            _ => continue,
        };
        if !d.has(&key) {
            continue;
        }
        let want = d.get(&key);
        let inp = if inp.len() > want.len() {
            &inp[inp.len() - want.len()..]
        } else {
            &inp[..]
        };
        report(&key, inp, want);
    }
    report("logits", &logits, d.get("LOGITS|final"));
}
