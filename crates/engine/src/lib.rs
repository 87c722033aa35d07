//! The batching scheduler behind `ferrite serve`.
//!
//! One engine thread owns the inference [`Context`]; its KV cache holds one sequence per
//! *slot*. Requests wait in a bounded queue and join free slots between steps. Every step
//! gathers one token from each generating slot plus a chunk of pending prompt tokens (at most
//! `n_batch` tokens in all) into one multi-sequence [`Batch`], so many streams decode together
//! and a long prompt never stalls running streams for more than one chunk.
//!
//! - Prompt cache: a slot keeps the tokens of its last request in its sequence; a new request
//!   goes to the idle slot sharing the longest prefix with its prompt, and only the rest is
//!   decoded (`truncate_seq` drops the tail).
//! - Each request has its own seeded [`Sampler`], stop strings (text that could still become a
//!   stop string is held back), a token budget, end-of-generation detection and optional
//!   log-probabilities.
//! - A request whose event receiver is dropped (the client went away) frees its slot at the
//!   next step.
//!
//! The HTTP layer talks to the engine through [`Engine::submit`] and a per-request channel of
//! [`Event`]s.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrite_gguf::GgmlType;
use ferrite_models::{Batch, Context, ContextParams, Model};
use ferrite_sampling::{log_sum_exp, top_k_ids, Sampler, SamplerParams};
use ferrite_tokenizer::{StreamingDetokenizer, Tokenizer};
use tokio::sync::mpsc::UnboundedSender;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// KV cells in all; each slot may use `n_ctx / n_parallel` positions.
    pub n_ctx: usize,
    /// Slots (concurrent sequences).
    pub n_parallel: usize,
    /// Most tokens decoded in one step (generation tokens first, then prompt chunks).
    pub n_batch: usize,
    pub n_threads: usize,
    /// Requests that may wait for a slot; more are refused ([`SubmitError::QueueFull`]).
    pub max_queue: usize,
    pub kv_type: GgmlType,
}

impl Default for EngineParams {
    fn default() -> Self {
        EngineParams {
            n_ctx: 4096,
            n_parallel: 4,
            n_batch: 256,
            n_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_queue: 128,
            kv_type: GgmlType::F16,
        }
    }
}

/// What to generate for one request.
#[derive(Debug, Clone)]
pub struct GenParams {
    /// Most tokens to generate (`None`: until the slot's context is full).
    pub max_tokens: Option<usize>,
    pub sampler: SamplerParams,
    /// Generation ends before the first occurrence of any of these; the stop text is not
    /// returned.
    pub stop: Vec<String>,
    /// `Some(k)`: report the log-probability of every generated token and the `k` most likely
    /// alternatives.
    pub logprobs: Option<usize>,
    /// Never end at an end-of-generation token: the sampler bans them (logit -inf)
    /// (llama-server's `ignore_eos`, used for benchmarks with a fixed token count).
    pub ignore_eos: bool,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_tokens: Some(16),
            sampler: SamplerParams::default(),
            stop: Vec::new(),
            logprobs: None,
            ignore_eos: false,
        }
    }
}

/// One request: prompt tokens, parameters and where its events go.
#[derive(Debug)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub params: GenParams,
    pub events: UnboundedSender<Event>,
}

/// A token's log-probability (natural log) and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenProb {
    pub id: u32,
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

impl TokenProb {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Log-probabilities of one generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    pub chosen: TokenProb,
    /// The most likely tokens, best first.
    pub top: Vec<TokenProb>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// End-of-generation token or a stop string.
    Stop,
    /// The token budget or the slot's context.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// Token counts and timings of a finished request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose K/V were reused from the slot's cache.
    pub cached_tokens: usize,
    pub prompt_ms: f64,
    pub gen_ms: f64,
}

/// What the engine tells a request's owner, in order: `Started`, `Delta`s, then `Done` or
/// `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        slot: usize,
        cached_tokens: usize,
    },
    /// New text (never part of a stop string) and the log-probabilities of the tokens it came
    /// from (when asked for).
    Delta {
        text: String,
        logprobs: Vec<TokenLogprobs>,
    },
    Done {
        finish: Finish,
        usage: Usage,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the request queue is full ({max_queue} waiting)")]
    QueueFull { max_queue: usize },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error(
        "the prompt has {n_prompt} tokens, more than the context size of a slot ({n_ctx_slot})"
    )]
    PromptTooLong { n_prompt: usize, n_ctx_slot: usize },
    #[error("token id {id} out of range (the vocabulary has {n_vocab} tokens)")]
    BadToken { id: u32, n_vocab: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("creating the inference context: {0}")]
    Context(#[from] ferrite_models::ModelError),
    #[error("the engine thread could not be started: {0}")]
    Thread(String),
}

/// What a slot is doing, for `/slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub id: usize,
    /// "idle", "prompt" or "generating".
    pub state: &'static str,
    /// Tokens held in the slot's KV sequence.
    pub n_cached: usize,
    pub n_prompt: usize,
    pub n_decoded: usize,
}

/// Counters since start (Prometheus counters and gauges).
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub prompt_us_total: AtomicU64,
    pub tokens_predicted_total: AtomicU64,
    pub predicted_us_total: AtomicU64,
    pub requests_processing: AtomicU64,
    pub requests_deferred: AtomicU64,
    pub kv_cells_used: AtomicU64,
    pub decode_calls_total: AtomicU64,
    pub batch_tokens_total: AtomicU64,
    pub cancelled_total: AtomicU64,
}

struct Queue {
    pending: VecDeque<Request>,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    metrics: Metrics,
    slots: Mutex<Vec<SlotInfo>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle on the engine thread; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    n_ctx: usize,
    n_ctx_slot: usize,
    n_parallel: usize,
    max_queue: usize,
    n_vocab: usize,
}

impl Engine {
    /// Start the engine thread. Returns once the context is allocated.
    pub fn start(
        model: Arc<Model>,
        tok: Arc<Tokenizer>,
        p: EngineParams,
    ) -> Result<(Engine, JoinHandle<()>), EngineError> {
        let n_parallel = p.n_parallel.max(1);
        let n_ctx = p.n_ctx.max(n_parallel);
        let n_ctx_slot = n_ctx / n_parallel;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            metrics: Metrics::default(),
            slots: Mutex::new(
                (0..n_parallel)
                    .map(|id| SlotInfo {
                        id,
                        state: "idle",
                        n_cached: 0,
                        n_prompt: 0,
                        n_decoded: 0,
                    })
                    .collect(),
            ),
        });
        let engine = Engine {
            shared: shared.clone(),
            n_ctx,
            n_ctx_slot,
            n_parallel,
            max_queue: p.max_queue,
            n_vocab: model.n_vocab,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let cfg = Config {
            n_ctx_slot,
            n_parallel,
            n_batch: p.n_batch.max(1),
        };
        let handle = std::thread::Builder::new()
            .name("ferrite-engine".into())
            .spawn(move || {
                let ctx = Context::new(
                    &model,
                    ContextParams {
                        n_ctx,
                        n_seq: n_parallel,
                        n_batch: cfg.n_batch,
                        n_threads: p.n_threads.max(1),
                        kv_type: p.kv_type,
                        ..Default::default()
                    },
                );
                match ctx {
                    Ok(ctx) => {
                        let _ = ready_tx.send(Ok(()));
                        run(ctx, &tok, &shared, cfg);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| EngineError::Thread(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok((engine, handle)),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(EngineError::Context(e))
            }
            Err(_) => Err(EngineError::Thread(
                "the engine thread ended while starting".into(),
            )),
        }
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    /// Positions available to one request (prompt + generated tokens).
    pub fn n_ctx_slot(&self) -> usize {
        self.n_ctx_slot
    }
    pub fn n_parallel(&self) -> usize {
        self.n_parallel
    }

    /// Queue a request. Fails at once when the queue is full, the server is stopping, or the
    /// prompt cannot fit a slot.
    pub fn submit(&self, req: Request) -> Result<(), SubmitError> {
        if req.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        if req.prompt.len() > self.n_ctx_slot {
            return Err(SubmitError::PromptTooLong {
                n_prompt: req.prompt.len(),
                n_ctx_slot: self.n_ctx_slot,
            });
        }
        if let Some(&id) = req.prompt.iter().find(|&&t| t as usize >= self.n_vocab) {
            return Err(SubmitError::BadToken {
                id,
                n_vocab: self.n_vocab,
            });
        }
        let mut q = lock(&self.shared.queue);
        if q.shutdown {
            return Err(SubmitError::ShuttingDown);
        }
        if q.pending.len() >= self.max_queue {
            return Err(SubmitError::QueueFull {
                max_queue: self.max_queue,
            });
        }
        q.pending.push_back(req);
        self.shared
            .metrics
            .requests_deferred
            .store(q.pending.len() as u64, Ordering::Relaxed);
        drop(q);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Stop: queued and running requests get an error event, and the engine thread ends.
    pub fn shutdown(&self) {
        lock(&self.shared.queue).shutdown = true;
        self.shared.wake.notify_all();
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn slots(&self) -> Vec<SlotInfo> {
        lock(&self.shared.slots).clone()
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).pending.len()
    }
}

#[derive(Clone, Copy)]
struct Config {
    n_ctx_slot: usize,
    n_parallel: usize,
    n_batch: usize,
}

/// A running request.
struct Task<'t> {
    events: UnboundedSender<Event>,
    params: GenParams,
    sampler: Sampler,
    prompt: Vec<u32>,
    cached_tokens: usize,
    /// The last sampled token, not yet decoded (generation phase), or `None` while the prompt
    /// is still being processed.
    next: Option<u32>,
    detok: StreamingDetokenizer<'t>,
    /// Generated text not sent yet (it may be the start of a stop string).
    held: String,
    held_logprobs: Vec<TokenLogprobs>,
    n_gen: usize,
    started: Instant,
    prompt_done: Option<Instant>,
}

struct Slot<'t> {
    id: usize,
    /// Tokens whose K/V are in this slot's sequence (positions `0..len`).
    cached: Vec<u32>,
    last_used: u64,
    task: Option<Task<'t>>,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Byte length of the longest suffix of `text` that is a proper prefix of some stop string.
fn partial_stop_len(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        for (k, _) in s.char_indices().skip(1) {
            if k > best && text.ends_with(&s[..k]) {
                best = k;
            }
        }
    }
    best
}

/// The first occurrence of any stop string in `text`: its byte offset.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

enum Outcome {
    Continue,
    Finished(Finish),
    /// The receiver is gone.
    Cancelled,
}

impl<'t> Task<'t> {
    fn send(&self, ev: Event) -> bool {
        self.events.send(ev).is_ok()
    }

    /// Send what is surely not part of a stop string; `Some(finish)` when a stop string was
    /// found.
    fn flush_text(&mut self, final_flush: bool) -> Result<Option<Finish>, ()> {
        let (emit_to, stopped) = match find_stop(&self.held, &self.params.stop) {
            Some(at) => (at, true),
            None if final_flush => (self.held.len(), false),
            None => (
                self.held.len() - partial_stop_len(&self.held, &self.params.stop),
                false,
            ),
        };
        if emit_to > 0 || (!self.held_logprobs.is_empty() && (stopped || final_flush)) {
            let text: String = self.held[..emit_to].to_owned();
            let logprobs = if stopped {
                // The tokens that made the stop string are not part of the answer; keep those
                // whose text was (approximately: whole tokens up to the cut).
                let mut acc = 0;
                let mut keep = 0;
                for lp in &self.held_logprobs {
                    acc += lp.chosen.bytes.len();
                    if acc > emit_to {
                        break;
                    }
                    keep += 1;
                }
                self.held_logprobs.truncate(keep);
                std::mem::take(&mut self.held_logprobs)
            } else if emit_to == self.held.len() {
                std::mem::take(&mut self.held_logprobs)
            } else {
                Vec::new()
            };
            self.held.drain(..emit_to);
            if (!text.is_empty() || !logprobs.is_empty())
                && !self.send(Event::Delta { text, logprobs })
            {
                return Err(());
            }
        }
        Ok(stopped.then_some(Finish::Stop))
    }
}

fn run(mut ctx: Context<'_>, tok: &Tokenizer, shared: &Shared, cfg: Config) {
    let mut slots: Vec<Slot<'_>> = (0..cfg.n_parallel)
        .map(|id| Slot {
            id,
            cached: Vec::new(),
            last_used: 0,
            task: None,
        })
        .collect();
    let mut clock = 0u64;
    let mut rr = 0usize;
    loop {
        // Admit waiting requests into idle slots; sleep while there is nothing to do.
        {
            let mut q = lock(&shared.queue);
            loop {
                if q.shutdown {
                    for req in q.pending.drain(..) {
                        let _ = req.events.send(Event::Error {
                            message: "the server is shutting down".into(),
                        });
                    }
                    drop(q);
                    for s in &mut slots {
                        if let Some(t) = s.task.take() {
                            let _ = t.send(Event::Error {
                                message: "the server is shutting down".into(),
                            });
                        }
                    }
                    publish(shared, &slots, &ctx);
                    return;
                }
                let busy = slots.iter().any(|s| s.task.is_some());
                let admit = !q.pending.is_empty() && slots.iter().any(|s| s.task.is_none());
                if busy || admit {
                    break;
                }
                q = shared
                    .wake
                    .wait_timeout(q, Duration::from_millis(500))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            while slots.iter().any(|s| s.task.is_none()) {
                let Some(req) = q.pending.pop_front() else {
                    break;
                };
                if req.events.is_closed() {
                    shared
                        .metrics
                        .cancelled_total
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                clock += 1;
                let i = pick_slot(&slots, &req.prompt);
                start_task(&mut ctx, tok, &mut slots[i], req, clock, shared);
            }
            shared
                .metrics
                .requests_deferred
                .store(q.pending.len() as u64, Ordering::Relaxed);
        }

        // Drop requests whose client went away.
        for s in &mut slots {
            if s.task.as_ref().is_some_and(|t| t.events.is_closed()) {
                s.task = None;
                shared
                    .metrics
                    .cancelled_total
                    .fetch_add(1, Ordering::Relaxed);
            }
        }

        let step = catch_unwind(AssertUnwindSafe(|| {
            step(&mut ctx, tok, &mut slots, shared, cfg, &mut rr)
        }));
        if step.is_err() {
            // A bug in the model code: fail the running requests, start from a clean cache.
            for s in &mut slots {
                if let Some(t) = s.task.take() {
                    let _ = t.send(Event::Error {
                        message: "internal error while decoding (the engine recovered)".into(),
                    });
                }
                s.cached.clear();
            }
            ctx.kv_cache_mut().clear();
        }
        publish(shared, &slots, &ctx);
    }
}

/// The idle slot sharing the longest prefix with `prompt` when that prefix is at least half
/// the prompt (as llama.cpp's slot similarity); otherwise the least recently used idle slot,
/// so that a one-token match does not evict another conversation's cache.
fn pick_slot(slots: &[Slot<'_>], prompt: &[u32]) -> usize {
    let idle = || slots.iter().filter(|s| s.task.is_none());
    let best = idle()
        .map(|s| (common_prefix(&s.cached, prompt), s.id))
        .max_by_key(|&(n, id)| (n, std::cmp::Reverse(id)));
    match best {
        Some((n, id)) if n > 0 && 2 * n >= prompt.len() => id,
        _ => idle()
            .min_by_key(|s| (s.last_used, s.id))
            .map(|s| s.id)
            .expect("an idle slot exists"),
    }
}

fn start_task<'t>(
    ctx: &mut Context<'_>,
    tok: &'t Tokenizer,
    slot: &mut Slot<'t>,
    req: Request,
    clock: u64,
    shared: &Shared,
) {
    let mut keep = common_prefix(&slot.cached, &req.prompt);
    // The last prompt token is decoded again for its logits.
    if keep == req.prompt.len() {
        keep -= 1;
    }
    ctx.kv_cache_mut().truncate_seq(slot.id as u32, keep as u32);
    slot.cached.truncate(keep);
    slot.last_used = clock;
    let mut sampler = Sampler::new(req.params.sampler.clone());
    if req.params.ignore_eos {
        sampler = sampler.with_banned(tok.eog_ids());
    }
    for &t in &req.prompt {
        sampler.accept(t);
    }
    shared
        .metrics
        .requests_total
        .fetch_add(1, Ordering::Relaxed);
    let task = Task {
        events: req.events,
        params: req.params,
        sampler,
        prompt: req.prompt,
        cached_tokens: keep,
        next: None,
        detok: tok.streaming(false),
        held: String::new(),
        held_logprobs: Vec::new(),
        n_gen: 0,
        started: Instant::now(),
        prompt_done: None,
    };
    if task.send(Event::Started {
        slot: slot.id,
        cached_tokens: keep,
    }) {
        slot.task = Some(task);
    }
}

/// Who owns a wanted logits row.
struct Row {
    slot: usize,
}

fn step<'t>(
    ctx: &mut Context<'_>,
    tok: &'t Tokenizer,
    slots: &mut [Slot<'t>],
    shared: &Shared,
    cfg: Config,
    rr: &mut usize,
) {
    let mut tokens = Vec::with_capacity(cfg.n_batch);
    let mut pos = Vec::with_capacity(cfg.n_batch);
    let mut seq = Vec::with_capacity(cfg.n_batch);
    let mut want = Vec::with_capacity(cfg.n_batch);
    let mut rows: Vec<Row> = Vec::new();
    // Per slot: how many tokens it put in this batch.
    let mut added = vec![0usize; slots.len()];
    for s in slots.iter() {
        if let Some(Task { next: Some(id), .. }) = &s.task {
            tokens.push(*id);
            pos.push(s.cached.len() as u32);
            seq.push(s.id as u32);
            want.push(true);
            rows.push(Row { slot: s.id });
            added[s.id] = 1;
        }
    }
    // Prompt chunks, round-robin so that one long prompt does not starve the others.
    let n = slots.len();
    for k in 0..n {
        let i = (*rr + k) % n;
        let s = &slots[i];
        let Some(t) = &s.task else { continue };
        if t.next.is_some() {
            continue;
        }
        let room = cfg.n_batch.saturating_sub(tokens.len());
        if room == 0 {
            break;
        }
        let from = s.cached.len();
        let m = (t.prompt.len() - from).min(room);
        for j in 0..m {
            tokens.push(t.prompt[from + j]);
            pos.push((from + j) as u32);
            seq.push(s.id as u32);
            let last = from + j + 1 == t.prompt.len();
            want.push(last);
            if last {
                rows.push(Row { slot: s.id });
            }
        }
        added[i] = m;
    }
    *rr = (*rr + 1) % n.max(1);
    if tokens.is_empty() {
        return;
    }
    let result = ctx.decode(&Batch {
        tokens: &tokens,
        pos: &pos,
        seq_id: &seq,
        want_logits: &want,
    });
    shared
        .metrics
        .decode_calls_total
        .fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .batch_tokens_total
        .fetch_add(tokens.len() as u64, Ordering::Relaxed);
    let logits = match result {
        Ok(l) => l.to_vec(),
        Err(e) => {
            let message = format!("decoding failed: {e}");
            for (i, s) in slots.iter_mut().enumerate() {
                if added[i] > 0 {
                    if let Some(t) = s.task.take() {
                        let _ = t.send(Event::Error {
                            message: message.clone(),
                        });
                    }
                    ctx.kv_cache_mut()
                        .truncate_seq(s.id as u32, s.cached.len() as u32);
                }
            }
            return;
        }
    };
    // The batch is in the cache now.
    for s in slots.iter_mut() {
        let k = added[s.id];
        if k == 0 {
            continue;
        }
        if let Some(t) = &s.task {
            match t.next {
                Some(id) => s.cached.push(id),
                None => {
                    let from = s.cached.len();
                    s.cached.extend_from_slice(&t.prompt[from..from + k]);
                }
            }
        }
    }
    let n_vocab = ctx.n_vocab();
    for (r, row) in rows.iter().enumerate() {
        let slot = &mut slots[row.slot];
        let logits = &logits[r * n_vocab..(r + 1) * n_vocab];
        let outcome = match slot.task.as_mut() {
            Some(t) => on_logits(t, tok, logits, slot.cached.len(), cfg, shared),
            None => continue,
        };
        match outcome {
            Outcome::Continue => {}
            Outcome::Cancelled => {
                slot.task = None;
                shared
                    .metrics
                    .cancelled_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Finished(finish) => {
                let t = slot.task.take().expect("task present");
                let now = Instant::now();
                let prompt_done = t.prompt_done.unwrap_or(now);
                let usage = Usage {
                    prompt_tokens: t.prompt.len(),
                    completion_tokens: t.n_gen,
                    cached_tokens: t.cached_tokens,
                    prompt_ms: (prompt_done - t.started).as_secs_f64() * 1e3,
                    gen_ms: (now - prompt_done).as_secs_f64() * 1e3,
                };
                let m = &shared.metrics;
                m.tokens_predicted_total
                    .fetch_add(t.n_gen as u64, Ordering::Relaxed);
                m.predicted_us_total
                    .fetch_add((usage.gen_ms * 1e3) as u64, Ordering::Relaxed);
                let _ = t.send(Event::Done { finish, usage });
            }
        }
    }
}

/// Sample from a row of logits and act on the token.
fn on_logits(
    t: &mut Task<'_>,
    tok: &Tokenizer,
    logits: &[f32],
    n_cached: usize,
    cfg: Config,
    shared: &Shared,
) -> Outcome {
    if t.prompt_done.is_none() {
        let now = Instant::now();
        t.prompt_done = Some(now);
        let m = &shared.metrics;
        m.prompt_tokens_total
            .fetch_add((t.prompt.len() - t.cached_tokens) as u64, Ordering::Relaxed);
        m.prompt_us_total
            .fetch_add((now - t.started).as_micros() as u64, Ordering::Relaxed);
    }
    if t.params.max_tokens == Some(0) {
        return finish(t, Finish::Length);
    }
    let id = t.sampler.sample(logits);
    t.sampler.accept(id);
    if tok.is_eog(id) {
        return finish(t, Finish::Stop);
    }
    if let Some(k) = t.params.logprobs {
        // Log-probabilities from one log-sum-exp and a k-sized top list: no vocabulary-sized
        // vectors per token.
        let lse = log_sum_exp(logits);
        let prob = |id: u32| TokenProb {
            id,
            bytes: tok.token_to_piece(id, true),
            logprob: logits[id as usize] - lse,
        };
        let top = top_k_ids(logits, k);
        t.held_logprobs.push(TokenLogprobs {
            chosen: prob(id),
            top: top.into_iter().map(prob).collect(),
        });
    }
    let piece = t.detok.push(id);
    t.held.push_str(&piece);
    t.n_gen += 1;
    match t.flush_text(false) {
        Err(()) => return Outcome::Cancelled,
        Ok(Some(f)) => return Outcome::Finished(f),
        Ok(None) => {}
    }
    if t.params.max_tokens.is_some_and(|m| t.n_gen >= m) || n_cached >= cfg.n_ctx_slot {
        return finish(t, Finish::Length);
    }
    t.next = Some(id);
    Outcome::Continue
}

/// Flush the detokenizer and the held text (a stop string may still be found there).
fn finish(t: &mut Task<'_>, why: Finish) -> Outcome {
    let rest = t.detok.finish();
    t.held.push_str(&rest);
    match t.flush_text(true) {
        Err(()) => Outcome::Cancelled,
        Ok(Some(f)) => Outcome::Finished(f),
        Ok(None) => Outcome::Finished(why),
    }
}

fn publish(shared: &Shared, slots: &[Slot<'_>], ctx: &Context<'_>) {
    let m = &shared.metrics;
    m.requests_processing.store(
        slots.iter().filter(|s| s.task.is_some()).count() as u64,
        Ordering::Relaxed,
    );
    m.kv_cells_used
        .store(ctx.kv_cache().n_used() as u64, Ordering::Relaxed);
    let mut info = lock(&shared.slots);
    for (i, s) in slots.iter().enumerate() {
        info[i] = SlotInfo {
            id: s.id,
            state: match &s.task {
                None => "idle",
                Some(t) if t.next.is_none() => "prompt",
                Some(_) => "generating",
            },
            n_cached: s.cached.len(),
            n_prompt: s.task.as_ref().map_or(0, |t| t.prompt.len()),
            n_decoded: s.task.as_ref().map_or(0, |t| t.n_gen),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_stop_holds_back_prefixes_only() {
        let stops = vec!["</end>".to_string(), "ab".to_string()];
        // Oracle: the longest suffix of the text that starts a stop string.
        assert_eq!(partial_stop_len("hello </e", &stops), 3);
        assert_eq!(partial_stop_len("hello a", &stops), 1);
        assert_eq!(partial_stop_len("hello", &stops), 0);
        // A complete stop string is found by find_stop, not held back as a partial.
        assert_eq!(find_stop("x</end>y ab", &stops), Some(1));
        assert_eq!(find_stop("xyz", &stops), None);
    }

    #[test]
    fn partial_stop_respects_char_boundaries() {
        let stops = vec!["é!".to_string()];
        // "é" is two bytes; the held suffix must be the whole character.
        assert_eq!(partial_stop_len("café", &stops), "é".len());
        assert_eq!(partial_stop_len("caf", &stops), 0);
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[5, 6], &[5, 6, 7]), 2);
    }
}
