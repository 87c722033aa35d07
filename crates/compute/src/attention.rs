//! Scaled dot-product attention over a KV cache, with GQA, an arbitrary visibility list per
//! query token (causal / sliding-window / per-sequence masks are built by the caller), and
//! optional logit soft-capping. Work is split over (token, head) pairs across the pool.
//!
//! The algorithm is ggml's CPU flash attention (llama.cpp's default): the query is converted to
//! the cache type before `q·k`, and an online softmax walks the visible cells in order with the
//! V accumulator kept in the cache type (f16 rounding after every step, as llama.cpp does).

use crate::pool::{SendPtr, ThreadPool};
use crate::ComputeError;
use ferrite_quants::{kernels, GgmlType};

#[derive(Debug, Clone, Copy)]
pub struct AttnParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    /// q/k head size.
    pub head_dim: usize,
    /// v head size.
    pub head_dim_v: usize,
    /// Multiplies `q·k` (usually 1/√head_dim).
    pub scale: f32,
    /// `s = tanh(s / cap) · cap` after scaling when > 0 (Gemma 2).
    pub softcap: f32,
}

/// One layer's cache: `k` is `(n_cells, n_head_kv * head_dim)`, `v` `(n_cells, n_head_kv *
/// head_dim_v)`, both of type `ty` (F16 or F32).
#[derive(Clone, Copy)]
pub struct KvView<'a> {
    pub ty: GgmlType,
    pub k: &'a [u8],
    pub v: &'a [u8],
}

/// Per-thread buffers (the converted query, the f16 V accumulator), allocated once.
pub struct AttnScratch {
    threads: Vec<ThreadBufs>,
}

struct ThreadBufs {
    q: Vec<u8>,
    acc16: Vec<u16>,
}

impl AttnScratch {
    pub fn new(n_threads: usize, head_dim: usize, head_dim_v: usize) -> AttnScratch {
        AttnScratch {
            threads: (0..n_threads.max(1))
                .map(|_| ThreadBufs {
                    q: vec![0; head_dim * 4],
                    acc16: vec![0; head_dim_v],
                })
                .collect(),
        }
    }
}

fn elt_size(ty: GgmlType) -> usize {
    match ty {
        GgmlType::F16 => 2,
        _ => 4,
    }
}

/// `out[t, h]` = softmax over visible cells `c` of `scale · q[t, h] · k[c, h / g]` applied to
/// `v[c, h / g]`, `g = n_head / n_head_kv`. Token `t` sees `visible[vis_off[t]..vis_off[t+1]]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    pool: &ThreadPool,
    p: &AttnParams,
    q: &[f32],
    kv: &KvView<'_>,
    visible: &[u32],
    vis_off: &[usize],
    out: &mut [f32],
    scratch: &mut AttnScratch,
) -> Result<(), ComputeError> {
    let n_tokens = vis_off.len() - 1;
    check_shapes(p, q, kv, out, n_tokens)?;
    if scratch.threads.len() < pool.n_threads() {
        return Err(ComputeError::Shape {
            what: "attention scratch threads",
            expected: pool.n_threads(),
            got: scratch.threads.len(),
        });
    }
    let es = elt_size(kv.ty);
    let k_kern = kernels(kv.ty)?;
    let (dot, to_ty) = (
        // F16: ggml's `ggml_vec_dot_f16` summation order (see `dot_f16_ggml`); F32: the same
        // kernel `vec_dot` dispatches to, resolved once.
        match kv.ty {
            GgmlType::F16 => dot_f16_ggml_fn(),
            ty => ferrite_quants::simd::best_dot_fn(ty),
        },
        k_kern.quantize_row.expect("f16/f32 convert"),
    );
    let group = p.n_head / p.n_head_kv;
    let (kd, vd) = (p.head_dim, p.head_dim_v);
    let k_stride = p.n_head_kv * kd * es;
    let v_stride = p.n_head_kv * vd * es;
    // ggml folds the soft-cap divisor into the scale: s = cap · tanh(q·k · scale / cap).
    let scale = if p.softcap > 0.0 {
        p.scale / p.softcap
    } else {
        p.scale
    };
    let optr = SendPtr::new(out);
    let sptr = SendPtr::new(&mut scratch.threads);
    let n_items = n_tokens * p.n_head;
    let f16_ops = crate::f16ops::F16Ops::get();
    pool.for_each(n_items, &|item, ith| {
        // SAFETY: each thread uses only its own scratch entry.
        let bufs = unsafe { &mut sptr.slice(ith, 1)[0] };
        {
            let (t, h) = (item / p.n_head, item % p.n_head);
            let hk = h / group;
            let cells = &visible[vis_off[t]..vis_off[t + 1]];
            let qh = &q[(t * p.n_head + h) * kd..][..kd];
            let qb = &mut bufs.q[..kd * es];
            to_ty(qh, qb);
            // SAFETY: (t, h) output rows are disjoint between items.
            let o = unsafe { optr.slice((t * p.n_head + h) * vd, vd) };
            // Online softmax over the visible cells in order, as ggml's CPU flash attention:
            // running max M, sum S, and the V accumulator (f16 when V is f16, so it rounds
            // like llama.cpp's).
            let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
            let acc16 = &mut bufs.acc16[..vd];
            acc16.fill(0);
            o.fill(0.0);
            for &c in cells {
                let kr = &kv.k[c as usize * k_stride + hk * kd * es..][..kd * es];
                let mut s = dot(kd, kr, qb) * scale;
                if p.softcap > 0.0 {
                    s = p.softcap * s.tanh();
                }
                let vr = &kv.v[c as usize * v_stride + hk * vd * es..][..vd * es];
                let (mut ms, mut vs) = (1f32, 1f32);
                let new_max = s > m;
                if new_max {
                    ms = (m - s).exp();
                    m = s;
                } else {
                    vs = (s - m).exp();
                }
                match kv.ty {
                    GgmlType::F16 => {
                        if new_max {
                            f16_ops.scale(acc16, ms);
                        }
                        f16_ops.mad(acc16, vr, vs);
                    }
                    _ => {
                        if new_max {
                            o.iter_mut().for_each(|a| *a *= ms);
                        }
                        let vf = vr
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                        o.iter_mut()
                            .zip(vf)
                            .for_each(|(a, b)| *a = b.mul_add(vs, *a));
                    }
                }
                // One rounding, as ggml's `S = S*ms + vs` compiles (GCC contracts it to an FMA
                // under its default -ffp-contract=fast).
                sum = sum.mul_add(ms, vs);
            }
            if kv.ty == GgmlType::F16 {
                crate::f16ops::to_f32(acc16, o);
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            o.iter_mut().for_each(|a| *a *= inv);
        }
    });
    Ok(())
}

/// `k · q` over `n` f16 pairs in the order of ggml's `ggml_vec_dot_f16` on an AVX-512 build
/// (the kernel llama.cpp's CPU flash attention uses for `q·k` with an F16 cache): 64 elements
/// per step into four 16-lane f32 FMA accumulators, reduced `(a0 + a2) + (a1 + a3)`, then the
/// lanes as `_mm512_reduce_add_ps` (256-bit halves, 128-bit halves, `(l0 + l2) + (l1 + l3)`),
/// widened to f64; the `n % 64` tail is added in f64 one product at a time. Products of two
/// halves are exact in f32. A different pairing moves `q·k` by an ulp, which the f16 V
/// accumulator turns into ~1e-4 relative differences of the attention output.
pub fn dot_f16_ggml(n: usize, k: &[u8], q: &[u8]) -> f32 {
    let h = |b: &[u8], i: usize| {
        half::f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32()
    };
    let np = n & !63;
    let mut acc = [[0f32; 16]; 4];
    for i in (0..np).step_by(64) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, al) in a.iter_mut().enumerate() {
                let e = i + 16 * j + l;
                *al = h(k, e).mul_add(h(q, e), *al);
            }
        }
    }
    let mut sum = if np > 0 {
        let mut v = [0f32; 16];
        for l in 0..16 {
            v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        }
        let mut t = [0f32; 8];
        for l in 0..8 {
            t[l] = v[l] + v[l + 8];
        }
        let mut u = [0f32; 4];
        for l in 0..4 {
            u[l] = t[l] + t[l + 4];
        }
        ((u[0] + u[2]) + (u[1] + u[3])) as f64
    } else {
        0.0
    };
    for e in np..n {
        sum += (h(k, e) * h(q, e)) as f64;
    }
    sum as f32
}

/// The fastest implementation of [`dot_f16_ggml`] on this CPU (bit-identical).
fn dot_f16_ggml_fn() -> fn(usize, &[u8], &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("FERRITE_NO_SIMD").is_none() && is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f checked.
        return |n, k, q| unsafe { x86::dot_f16_ggml(n, k, q) };
    }
    dot_f16_ggml
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::dot_f16_ggml`] with AVX-512F (same operations, same order).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f16_ggml(n: usize, k: &[u8], q: &[u8]) -> f32 {
        assert!(k.len() >= 2 * n && q.len() >= 2 * n);
        let np = n & !63;
        let (kp, qp) = (k.as_ptr(), q.as_ptr());
        let mut a = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i < np {
            for (j, aj) in a.iter_mut().enumerate() {
                let o = 2 * (i + 16 * j);
                let x = _mm512_cvtph_ps(_mm256_loadu_si256(kp.add(o) as *const __m256i));
                let y = _mm512_cvtph_ps(_mm256_loadu_si256(qp.add(o) as *const __m256i));
                *aj = _mm512_fmadd_ps(x, y, *aj);
            }
            i += 64;
        }
        let mut sum = if np > 0 {
            let v = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
            let t = _mm256_add_ps(lo, hi);
            let u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
            let w = _mm_add_ps(u, _mm_movehl_ps(u, u));
            _mm_cvtss_f32(_mm_add_ss(w, _mm_movehdup_ps(w))) as f64
        } else {
            0.0
        };
        let h = |b: &[u8], e: usize| {
            half::f16::from_bits(u16::from_le_bytes([b[2 * e], b[2 * e + 1]])).to_f32()
        };
        for e in np..n {
            sum += (h(k, e) * h(q, e)) as f64;
        }
        sum as f32
    }
}

fn check_shapes(
    p: &AttnParams,
    q: &[f32],
    kv: &KvView<'_>,
    out: &[f32],
    n_tokens: usize,
) -> Result<(), ComputeError> {
    let chk = |what, expected, got| {
        if expected == got {
            Ok(())
        } else {
            Err(ComputeError::Shape {
                what,
                expected,
                got,
            })
        }
    };
    chk("attention q", n_tokens * p.n_head * p.head_dim, q.len())?;
    chk(
        "attention out",
        n_tokens * p.n_head * p.head_dim_v,
        out.len(),
    )?;
    chk(
        "attention n_head % n_head_kv",
        0,
        p.n_head % p.n_head_kv.max(1),
    )?;
    let es = elt_size(kv.ty);
    chk(
        "attention k/v cells",
        kv.k.len() / (p.n_head_kv * p.head_dim * es),
        kv.v.len() / (p.n_head_kv * p.head_dim_v * es),
    )
}

/// The plain twin: f32 dequantized K/V, f64 dot products and sums, one thread.
pub fn attention_ref(
    p: &AttnParams,
    q: &[f32],
    kv: &KvView<'_>,
    visible: &[u32],
    vis_off: &[usize],
    out: &mut [f32],
) -> Result<(), ComputeError> {
    let n_tokens = vis_off.len() - 1;
    check_shapes(p, q, kv, out, n_tokens)?;
    let es = elt_size(kv.ty);
    let deq = |b: &[u8], n: usize| {
        let mut v = vec![0f32; n];
        ferrite_quants::dequantize_row(kv.ty, b, &mut v).map(|_| v)
    };
    let k_all = deq(kv.k, kv.k.len() / es)?;
    let v_all = deq(kv.v, kv.v.len() / es)?;
    let group = p.n_head / p.n_head_kv;
    let (kd, vd) = (p.head_dim, p.head_dim_v);
    for t in 0..n_tokens {
        let cells = &visible[vis_off[t]..vis_off[t + 1]];
        for h in 0..p.n_head {
            let hk = h / group;
            let qh = &q[(t * p.n_head + h) * kd..][..kd];
            let mut s: Vec<f64> = cells
                .iter()
                .map(|&c| {
                    let kr = &k_all[(c as usize * p.n_head_kv + hk) * kd..][..kd];
                    let x = qh
                        .iter()
                        .zip(kr)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * p.scale as f64;
                    if p.softcap > 0.0 {
                        (x / p.softcap as f64).tanh() * p.softcap as f64
                    } else {
                        x
                    }
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            s.iter_mut().for_each(|x| *x = (*x - m).exp());
            let z: f64 = s.iter().sum();
            let o = &mut out[(t * p.n_head + h) * vd..][..vd];
            for (d, od) in o.iter_mut().enumerate() {
                *od = (cells
                    .iter()
                    .zip(&s)
                    .map(|(&c, &w)| w * v_all[(c as usize * p.n_head_kv + hk) * vd + d] as f64)
                    .sum::<f64>()
                    / z) as f32;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// The AVX-512 `dot_f16_ggml` equals the scalar emulation bit for bit (head sizes with
    /// and without a 64-element tail), and both are within f32 rounding of an f64 dot.
    #[test]
    fn dot_f16_ggml_fast_matches_scalar() {
        let mut seed = 11u64;
        for n in [16, 40, 64, 80, 128, 200, 256] {
            for _ in 0..50 {
                let mk = |seed: &mut u64| -> Vec<u8> {
                    (0..n)
                        .flat_map(|_| half::f16::from_f32(lcg(seed) * 8.0).to_bits().to_le_bytes())
                        .collect()
                };
                let (k, q) = (mk(&mut seed), mk(&mut seed));
                let want = dot_f16_ggml(n, &k, &q);
                assert_eq!(
                    dot_f16_ggml_fn()(n, &k, &q).to_bits(),
                    want.to_bits(),
                    "n {n}"
                );
                let h = |b: &[u8], i: usize| {
                    half::f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f64()
                };
                let exact: f64 = (0..n).map(|i| h(&k, i) * h(&q, i)).sum();
                let mag: f64 = (0..n).map(|i| (h(&k, i) * h(&q, i)).abs()).sum();
                assert!((want as f64 - exact).abs() <= 1e-6 * mag + 1e-30, "n {n}");
            }
        }
    }

    /// Oracle: `attention_ref` (f64). Tolerance: 1e-5 for an f32 cache; 5e-3 for f16 (query
    /// rounded to f16 before `q·k` and an f16 V accumulator, as ggml does; |v| ≤ 1).
    #[test]
    fn attention_matches_reference() {
        let mut seed = 3u64;
        let (n_cells, n_tokens) = (23, 5);
        for (ty, tol) in [(GgmlType::F32, 1e-5), (GgmlType::F16, 5e-3)] {
            for softcap in [0.0, 2.0] {
                let p = AttnParams {
                    n_head: 4,
                    n_head_kv: 2,
                    head_dim: 16,
                    head_dim_v: 8,
                    scale: 0.25,
                    softcap,
                };
                let kf: Vec<f32> = (0..n_cells * 2 * 16)
                    .map(|_| lcg(&mut seed) * 2.0)
                    .collect();
                let vf: Vec<f32> = (0..n_cells * 2 * 8).map(|_| lcg(&mut seed)).collect();
                let conv = |x: &[f32]| {
                    let mut b = vec![0u8; ferrite_quants::row_bytes(ty, x.len()).unwrap()];
                    ferrite_quants::quantize_row(ty, x, &mut b).unwrap();
                    b
                };
                let (kb, vb) = (conv(&kf), conv(&vf));
                let kv = KvView { ty, k: &kb, v: &vb };
                let q: Vec<f32> = (0..n_tokens * 4 * 16).map(|_| lcg(&mut seed)).collect();
                // Causal-with-window style lists of different lengths, not contiguous.
                let mut visible = vec![];
                let mut off = vec![0];
                for t in 0..n_tokens {
                    visible.extend(
                        (0..n_cells as u32).filter(|c| {
                            !(c + t as u32).is_multiple_of(3) && *c <= 10 + 3 * t as u32
                        }),
                    );
                    off.push(visible.len());
                }
                let mut want = vec![0f32; n_tokens * 4 * 8];
                attention_ref(&p, &q, &kv, &visible, &off, &mut want).unwrap();
                for nth in [1, 2, 3] {
                    let pool = ThreadPool::new(nth);
                    let mut s = AttnScratch::new(nth, 16, 8);
                    let mut got = vec![0f32; want.len()];
                    attention(&pool, &p, &q, &kv, &visible, &off, &mut got, &mut s).unwrap();
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - e).abs() < tol,
                            "{ty:?} cap {softcap} nth {nth} [{i}] {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    /// Batch invariance: a token's output is bit-identical alone (one token, one thread) and in
    /// a batch with others for any thread count, and where its visible K/V rows are stored in
    /// the cache does not matter, only their visiting order (which the caller fixes: position
    /// order). Oracle: the token alone; tolerance 0.
    #[test]
    fn token_output_does_not_depend_on_batch_or_cell_placement() {
        let mut seed = 9u64;
        let (n_cells, n_tokens) = (29, 6);
        let p = AttnParams {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            head_dim_v: 8,
            scale: 0.25,
            softcap: 0.0,
        };
        for ty in [GgmlType::F32, GgmlType::F16] {
            let es = elt_size(ty);
            let (kr, vr) = (2 * 16 * es, 2 * 8 * es);
            let conv = |x: &[f32]| {
                let mut b = vec![0u8; ferrite_quants::row_bytes(ty, x.len()).unwrap()];
                ferrite_quants::quantize_row(ty, x, &mut b).unwrap();
                b
            };
            let kb = conv(
                &(0..n_cells * 32)
                    .map(|_| lcg(&mut seed))
                    .collect::<Vec<_>>(),
            );
            let vb = conv(
                &(0..n_cells * 16)
                    .map(|_| lcg(&mut seed))
                    .collect::<Vec<_>>(),
            );
            let q: Vec<f32> = (0..n_tokens * 64).map(|_| lcg(&mut seed)).collect();
            let lists: Vec<Vec<u32>> = (0..n_tokens)
                .map(|t| {
                    (0..n_cells as u32)
                        .filter(|c| !(c * 7 + t as u32).is_multiple_of(4))
                        .collect()
                })
                .collect();
            let run = |nth: usize, k: &[u8], v: &[u8], q: &[f32], lists: &[Vec<u32>]| {
                let pool = ThreadPool::new(nth);
                let mut s = AttnScratch::new(nth, 16, 8);
                let vis: Vec<u32> = lists.concat();
                let mut off = vec![0];
                lists
                    .iter()
                    .for_each(|l| off.push(off.last().unwrap() + l.len()));
                let mut out = vec![0f32; lists.len() * 32];
                let kv = KvView { ty, k, v };
                attention(&pool, &p, q, &kv, &vis, &off, &mut out, &mut s).unwrap();
                out
            };
            let alone: Vec<Vec<f32>> = (0..n_tokens)
                .map(|t| run(1, &kb, &vb, &q[t * 64..(t + 1) * 64], &lists[t..t + 1]))
                .collect();
            // The same rows stored at other cells (cell c moved to perm[c]).
            let perm: Vec<usize> = (0..n_cells).map(|c| (c * 11 + 5) % n_cells).collect();
            let (mut kp, mut vp) = (vec![0u8; kb.len()], vec![0u8; vb.len()]);
            for (c, &d) in perm.iter().enumerate() {
                kp[d * kr..(d + 1) * kr].copy_from_slice(&kb[c * kr..(c + 1) * kr]);
                vp[d * vr..(d + 1) * vr].copy_from_slice(&vb[c * vr..(c + 1) * vr]);
            }
            let moved: Vec<Vec<u32>> = lists
                .iter()
                .map(|l| l.iter().map(|&c| perm[c as usize] as u32).collect())
                .collect();
            for nth in [1, 2, 3] {
                for (k, v, l) in [(&kb, &vb, &lists), (&kp, &vp, &moved)] {
                    let got = run(nth, k, v, &q, l);
                    for (t, a) in alone.iter().enumerate() {
                        let g = &got[t * 32..(t + 1) * 32];
                        let same = g.iter().zip(a).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{ty:?} nth {nth} token {t}");
                    }
                }
            }
        }
    }
}
