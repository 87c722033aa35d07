//! Token sampling in llama.cpp's default order (common/sampling.cpp):
//! penalties → top-k → typical → top-p → min-p → temperature → draw.
//! Defaults are llama.cpp's (`common_params_sampling`). With `temperature <= 0` the sampler is
//! greedy. The same seed gives the same tokens.

/// Sampler settings; `Default` is llama.cpp's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerParams {
    pub seed: u64,
    /// <= 0: greedy (argmax).
    pub temperature: f32,
    /// <= 0: off.
    pub top_k: i32,
    /// >= 1: off.
    pub top_p: f32,
    /// <= 0: off.
    pub min_p: f32,
    /// >= 1: off.
    pub typical_p: f32,
    /// Tokens of history the penalties look at (0: off, -1: the whole context kept here).
    pub penalty_last_n: i32,
    /// 1: off.
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// Minimum candidates each truncating step keeps.
    pub min_keep: usize,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            seed: 0xFFFF_FFFF,
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            penalty_last_n: 64,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            min_keep: 1,
        }
    }
}

impl SamplerParams {
    pub fn greedy() -> Self {
        SamplerParams {
            temperature: 0.0,
            ..Default::default()
        }
    }
}

/// A candidate token with its (transformed) logit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
}

/// splitmix64: small, fast, and fully determined by the seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A stateful sampler: the penalty history and the RNG live here.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    history: std::collections::VecDeque<u32>,
    /// Scratch reused between calls (no per-token allocation once warmed up).
    cands: Vec<Candidate>,
    counts: Vec<u32>,
    /// Tokens never chosen (logit -inf before every step), e.g. end tokens for `ignore_eos`.
    banned: Vec<u32>,
}

impl Sampler {
    pub fn new(params: SamplerParams) -> Self {
        let rng = Rng(params.seed);
        Sampler {
            params,
            rng,
            history: Default::default(),
            cands: Vec::new(),
            counts: Vec::new(),
            banned: Vec::new(),
        }
    }

    /// Never choose these tokens (their logits are -inf before every step, as llama.cpp's
    /// logit bias does for `ignore_eos`).
    pub fn with_banned(mut self, ids: &[u32]) -> Self {
        self.banned = ids.to_vec();
        self
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Record a token (prompt or generated) in the penalty history.
    pub fn accept(&mut self, token: u32) {
        let n = self.params.penalty_last_n;
        if n == 0 {
            return;
        }
        self.history.push_back(token);
        if n > 0 {
            while self.history.len() > n as usize {
                self.history.pop_front();
            }
        }
    }

    pub fn reset(&mut self) {
        self.history.clear();
        self.rng = Rng(self.params.seed);
    }

    /// Choose the next token from a row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        assert!(!logits.is_empty(), "sampling from an empty vocabulary");
        let p = self.params.clone();
        let mut cands = std::mem::take(&mut self.cands);
        cands.clear();
        cands.extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
            id: i as u32,
            logit: l,
        }));
        for &b in &self.banned {
            if let Some(c) = cands.get_mut(b as usize) {
                c.logit = f32::NEG_INFINITY;
            }
        }
        apply_penalties(&mut cands, &self.history, &p, &mut self.counts);
        let id = if p.temperature <= 0.0 {
            argmax(&cands)
        } else {
            top_k(&mut cands, p.top_k, p.min_keep);
            typical(&mut cands, p.typical_p, p.min_keep);
            top_p(&mut cands, p.top_p, p.min_keep);
            min_p(&mut cands, p.min_p, p.min_keep);
            for c in cands.iter_mut() {
                c.logit /= p.temperature;
            }
            let probs = softmax(&cands);
            let r = self.rng.next_f64();
            let mut acc = 0.0f64;
            let mut chosen = cands[cands.len() - 1].id;
            for (c, &pr) in cands.iter().zip(&probs) {
                acc += pr as f64;
                if r < acc {
                    chosen = c.id;
                    break;
                }
            }
            chosen
        };
        self.cands = cands;
        id
    }
}

/// Highest logit; ties go to the lowest id (as llama.cpp's greedy sampler).
pub fn argmax(cands: &[Candidate]) -> u32 {
    let mut best = cands[0];
    for &c in &cands[1..] {
        if c.logit > best.logit {
            best = c;
        }
    }
    best.id
}

/// Repetition (llama.cpp/CTRL style: divide positive logits, multiply negative ones),
/// frequency and presence penalties over the tokens in `history`. `counts` is scratch (a
/// per-id counter, grown to the largest id seen and left all-zero on return), so a sampler
/// calling this per token allocates nothing once warmed up.
pub fn apply_penalties(
    cands: &mut [Candidate],
    history: &std::collections::VecDeque<u32>,
    p: &SamplerParams,
    counts: &mut Vec<u32>,
) {
    if history.is_empty()
        || (p.repeat_penalty == 1.0 && p.frequency_penalty == 0.0 && p.presence_penalty == 0.0)
    {
        return;
    }
    for &t in history {
        let t = t as usize;
        if t >= counts.len() {
            counts.resize(t + 1, 0);
        }
        counts[t] += 1;
    }
    for &t in history {
        let n = std::mem::take(&mut counts[t as usize]);
        if n == 0 {
            continue; // already applied for an earlier occurrence
        }
        // Candidates are usually the whole vocabulary in id order.
        let c = match cands.get_mut(t as usize) {
            Some(c) if c.id == t => Some(c),
            _ => cands.iter_mut().find(|c| c.id == t),
        };
        if let Some(c) = c {
            if c.logit <= 0.0 {
                c.logit *= p.repeat_penalty;
            } else {
                c.logit /= p.repeat_penalty;
            }
            c.logit -= n as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }
}

fn sort_desc(cands: &mut [Candidate]) {
    cands.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
}

/// Softmax over the candidates' logits (max-subtracted, in f32 as llama.cpp).
pub fn softmax(cands: &[Candidate]) -> Vec<f32> {
    let max = cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let mut out: Vec<f32> = cands.iter().map(|c| (c.logit - max).exp()).collect();
    let sum: f32 = out.iter().sum();
    for x in &mut out {
        *x /= sum;
    }
    out
}

/// Keep the k highest (sorted descending afterwards). k <= 0: no-op.
pub fn top_k(cands: &mut Vec<Candidate>, k: i32, min_keep: usize) {
    if k <= 0 {
        return;
    }
    let k = (k as usize).max(min_keep).min(cands.len());
    if k < cands.len() {
        cands.select_nth_unstable_by(k - 1, |a, b| {
            b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
        });
        cands.truncate(k);
    }
    sort_desc(cands);
}

/// Nucleus: keep the smallest prefix (by probability) whose mass reaches `p`.
pub fn top_p(cands: &mut Vec<Candidate>, p: f32, min_keep: usize) {
    if p >= 1.0 {
        return;
    }
    sort_desc(cands);
    let probs = softmax(cands);
    let mut cum = 0.0f32;
    let mut keep = cands.len();
    for (i, pr) in probs.iter().enumerate() {
        cum += pr;
        if cum >= p && i + 1 >= min_keep {
            keep = i + 1;
            break;
        }
    }
    cands.truncate(keep);
}

/// Keep tokens whose probability is at least `p` times the top token's.
pub fn min_p(cands: &mut Vec<Candidate>, p: f32, min_keep: usize) {
    if p <= 0.0 || cands.is_empty() {
        return;
    }
    sort_desc(cands);
    // p_i >= p * p_max  <=>  logit_i >= logit_max + ln(p)
    let threshold = cands[0].logit + p.ln();
    let keep = cands
        .iter()
        .take_while(|c| c.logit >= threshold)
        .count()
        .max(min_keep)
        .min(cands.len());
    cands.truncate(keep);
}

/// Locally typical sampling (Meister et al.): keep tokens whose surprisal is closest to the
/// entropy until their mass reaches `p`.
pub fn typical(cands: &mut Vec<Candidate>, p: f32, min_keep: usize) {
    if p >= 1.0 || cands.is_empty() {
        return;
    }
    let probs = softmax(cands);
    let entropy: f32 = probs
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| -x * x.ln())
        .sum();
    let mut order: Vec<(f32, usize)> = probs
        .iter()
        .enumerate()
        .map(|(i, &x)| ((-x.ln() - entropy).abs(), i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut cum = 0.0f32;
    let mut keep = order.len();
    for (n, &(_, i)) in order.iter().enumerate() {
        cum += probs[i];
        if cum > p && n + 1 >= min_keep {
            keep = n + 1;
            break;
        }
    }
    let kept: Vec<Candidate> = order[..keep].iter().map(|&(_, i)| cands[i]).collect();
    *cands = kept;
}

/// Log-probabilities (natural log) of every token, for logprobs reporting.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&l| l - lse).collect()
}

/// `ln Σ exp(l)` (max-subtracted): token `i`'s log-probability is `logits[i] - log_sum_exp`,
/// equal to `log_softmax(logits)[i]` without building the vector.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln()
}

/// Ids of the `k` largest values, largest first (ties: lower id first), in one pass keeping
/// only `k` ids (no vocabulary-sized scratch).
pub fn top_k_ids(x: &[f32], k: usize) -> Vec<u32> {
    let mut top: Vec<u32> = Vec::with_capacity(k + 1);
    if k == 0 {
        return top;
    }
    for (i, &v) in x.iter().enumerate() {
        if top.len() == k && v <= x[top[k - 1] as usize] {
            continue;
        }
        let at = top.partition_point(|&j| x[j as usize] >= v);
        top.insert(at, i as u32);
        top.truncate(k);
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(l: &[f32]) -> Vec<Candidate> {
        l.iter()
            .enumerate()
            .map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
            })
            .collect()
    }

    /// Oracle: a full sort of the indices (descending, ties by id) and `log_softmax`.
    #[test]
    fn top_k_ids_and_log_sum_exp_match_full_computation() {
        let x: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 101) as f32 * 0.25 - 9.0)
            .collect();
        let mut all: Vec<u32> = (0..x.len() as u32).collect();
        all.sort_by(|&a, &b| x[b as usize].total_cmp(&x[a as usize]).then(a.cmp(&b)));
        for k in [0, 1, 3, 20] {
            assert_eq!(top_k_ids(&x, k), all[..k].to_vec(), "k = {k}");
        }
        let lp = log_softmax(&x);
        let lse = log_sum_exp(&x);
        assert!(x.iter().zip(&lp).all(|(&l, &p)| l - lse == p));
    }

    #[test]
    fn banned_tokens_are_never_chosen() {
        let mut s = Sampler::new(SamplerParams::greedy()).with_banned(&[1]);
        assert_eq!(s.sample(&[0.1, 3.0, 2.0, -1.0]), 2);
        let mut s = Sampler::new(SamplerParams::default()).with_banned(&[0]);
        for _ in 0..50 {
            assert_ne!(s.sample(&[5.0, 0.0, 0.0]), 0);
        }
    }

    #[test]
    fn greedy_picks_max_lowest_id_on_ties() {
        let mut s = Sampler::new(SamplerParams::greedy());
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn top_k_keeps_k_sorted() {
        let mut c = cands(&[1.0, 5.0, 3.0, 4.0, 2.0]);
        top_k(&mut c, 3, 1);
        assert_eq!(c.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 3, 2]);
    }

    #[test]
    fn top_p_includes_the_crossing_token() {
        // probs ≈ [0.665, 0.245, 0.090]: 0.665 < 0.7, so two tokens are kept.
        let mut c = cands(&[2.0, 1.0, 0.0]);
        top_p(&mut c, 0.7, 1);
        assert_eq!(c.len(), 2);
        let mut c = cands(&[2.0, 1.0, 0.0]);
        top_p(&mut c, 0.6, 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn min_p_relative_to_max() {
        // p ∝ e^l: e^-3/e^0 ≈ 0.0498 < 0.05 drops; e^-2 ≈ 0.135 stays.
        let mut c = cands(&[0.0, -2.0, -3.0]);
        min_p(&mut c, 0.05, 1);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn penalties_follow_llama_cpp_rule() {
        let p = SamplerParams {
            repeat_penalty: 2.0,
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            ..Default::default()
        };
        let mut c = cands(&[4.0, -4.0, 1.0]);
        let hist: std::collections::VecDeque<u32> = [0, 0, 1].into_iter().collect();
        let mut counts = Vec::new();
        apply_penalties(&mut c, &hist, &p, &mut counts);
        assert_eq!(c[0].logit, 4.0 / 2.0 - 2.0 * 0.5 - 0.25);
        assert_eq!(c[1].logit, -4.0 * 2.0 - 0.5 - 0.25);
        assert_eq!(c[2].logit, 1.0);
        assert!(counts.iter().all(|&n| n == 0), "scratch left dirty");
        // Candidates not in id order (after truncation) are found by id.
        let mut c = vec![
            Candidate { id: 2, logit: 1.0 },
            Candidate { id: 0, logit: 4.0 },
        ];
        apply_penalties(&mut c, &hist, &p, &mut counts);
        assert_eq!(c[1].logit, 4.0 / 2.0 - 2.0 * 0.5 - 0.25);
        assert_eq!(c[0].logit, 1.0);
    }

    #[test]
    fn same_seed_same_tokens_and_history_bounded() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerParams {
                seed,
                temperature: 1.5,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                ..Default::default()
            });
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let mut s = Sampler::new(SamplerParams {
            penalty_last_n: 3,
            ..Default::default()
        });
        for t in 0..10 {
            s.accept(t);
        }
        assert_eq!(s.history.iter().copied().collect::<Vec<_>>(), vec![7, 8, 9]);
    }

    #[test]
    fn draws_follow_the_distribution() {
        // Two tokens with p = [0.75, 0.25]; 20k draws land within 2% of the expectation.
        let logits = [3f32.ln(), 0.0];
        let mut s = Sampler::new(SamplerParams {
            seed: 1,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        });
        let n = 20_000;
        let zeros = (0..n).filter(|_| s.sample(&logits) == 0).count();
        let frac = zeros as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.02, "{frac}");
    }

    #[test]
    fn typical_keeps_mass() {
        let mut c = cands(&[3.0, 2.0, 1.0, 0.0, -1.0]);
        typical(&mut c, 0.5, 1);
        assert!(!c.is_empty() && c.len() < 5);
    }

    #[test]
    fn log_softmax_normalises() {
        let l = log_softmax(&[1.0, 2.0, 3.0]);
        let s: f32 = l.iter().map(|x| x.exp()).sum();
        assert!((s - 1.0).abs() < 1e-6);
    }
}
