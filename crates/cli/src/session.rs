//! One conversation with a model: the tokens in its KV cache (sequence 0), prompt processing in
//! batches with prefix reuse, and the sample → decode loop with streaming detokenization.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ferrite_models::{Batch, Context, ContextParams, Model};
use ferrite_sampling::Sampler;
use ferrite_tokenizer::Tokenizer;

/// Timings of one prompt + generation, as llama.cpp reports them.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    pub n_prompt: usize,
    pub prompt: Duration,
    pub n_gen: usize,
    pub gen: Duration,
}

impl Timings {
    pub fn report(&self) -> String {
        let rate = |n: usize, d: Duration| {
            if d.as_secs_f64() > 0.0 {
                n as f64 / d.as_secs_f64()
            } else {
                0.0
            }
        };
        format!(
            "prompt: {} tokens in {:.2} s ({:.1} t/s) | generation: {} tokens in {:.2} s ({:.1} t/s)",
            self.n_prompt,
            self.prompt.as_secs_f64(),
            rate(self.n_prompt, self.prompt),
            self.n_gen,
            self.gen.as_secs_f64(),
            rate(self.n_gen, self.gen)
        )
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-generation token.
    Eog,
    /// The token budget.
    Length,
    /// The context is full.
    Context,
    /// Interrupted (Ctrl-C).
    Interrupted,
}

pub struct Session<'m> {
    pub tok: &'m Tokenizer,
    ctx: Context<'m>,
    /// Tokens whose K/V are in the cache, in order (positions 0..len).
    cached: Vec<u32>,
    n_batch: usize,
    /// Logits of the last decoded token (row 0).
    last_logits: Vec<f32>,
}

impl<'m> Session<'m> {
    pub fn new(
        model: &'m Model,
        tok: &'m Tokenizer,
        n_ctx: usize,
        n_threads: usize,
    ) -> Result<Self> {
        let n_batch = 512.min(n_ctx);
        let ctx = Context::new(
            model,
            ContextParams {
                n_ctx,
                n_seq: 1,
                n_batch,
                n_threads,
                ..Default::default()
            },
        )
        .context("creating the inference context")?;
        Ok(Session {
            tok,
            ctx,
            cached: Vec::new(),
            n_batch,
            last_logits: Vec::new(),
        })
    }

    pub fn n_ctx(&self) -> usize {
        self.ctx.kv_cache().n_ctx()
    }

    /// Make the cache hold exactly `tokens`: keep the longest common prefix already cached,
    /// decode the rest in batches. Returns how many tokens were processed.
    pub fn set_tokens(&mut self, tokens: &[u32]) -> Result<usize> {
        if tokens.is_empty() {
            bail!("empty prompt");
        }
        if tokens.len() > self.n_ctx() {
            bail!(
                "the prompt has {} tokens, more than the context size {} (use -c to raise it)",
                tokens.len(),
                self.n_ctx()
            );
        }
        let mut keep = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        // The last token must be decoded again to get its logits.
        if keep == tokens.len() {
            keep -= 1;
        }
        self.ctx.kv_cache_mut().truncate_seq(0, keep as u32);
        self.cached.truncate(keep);
        let todo = &tokens[keep..];
        self.decode(todo)?;
        Ok(todo.len())
    }

    fn decode(&mut self, tokens: &[u32]) -> Result<()> {
        let mut pos: Vec<u32> = Vec::with_capacity(self.n_batch);
        for chunk in tokens.chunks(self.n_batch) {
            let start = self.cached.len() as u32;
            pos.clear();
            pos.extend((0..chunk.len() as u32).map(|i| start + i));
            let seq = vec![0u32; chunk.len()];
            let mut want = vec![false; chunk.len()];
            *want.last_mut().expect("non-empty chunk") = true;
            let logits = self
                .ctx
                .decode(&Batch {
                    tokens: chunk,
                    pos: &pos,
                    seq_id: &seq,
                    want_logits: &want,
                })
                .context("decoding")?;
            self.last_logits.clear();
            self.last_logits.extend_from_slice(logits);
            self.cached.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Prompt (with prefix reuse), then up to `n_predict` sampled tokens; each piece of text
    /// goes to `on_text` as soon as it is whole UTF-8.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        sampler: &mut Sampler,
        n_predict: usize,
        stop: &AtomicBool,
        mut on_text: impl FnMut(&str) -> Result<()>,
    ) -> Result<(Finish, Timings)> {
        let mut t = Timings::default();
        let start = Instant::now();
        t.n_prompt = self.set_tokens(prompt)?;
        t.prompt = start.elapsed();
        for &p in prompt {
            sampler.accept(p);
        }
        let mut detok = self.tok.streaming(false);
        let start = Instant::now();
        let mut finish = Finish::Length;
        while t.n_gen < n_predict {
            if stop.load(Ordering::Relaxed) {
                finish = Finish::Interrupted;
                break;
            }
            let id = sampler.sample(&self.last_logits);
            sampler.accept(id);
            if self.tok.is_eog(id) {
                // The end token is part of the conversation for the next turn's template.
                if self.cached.len() < self.n_ctx() {
                    self.decode(&[id])?;
                }
                finish = Finish::Eog;
                break;
            }
            on_text(&detok.push(id))?;
            t.n_gen += 1;
            if self.cached.len() >= self.n_ctx() {
                finish = Finish::Context;
                break;
            }
            self.decode(&[id])?;
        }
        on_text(&detok.finish())?;
        t.gen = start.elapsed();
        Ok((finish, t))
    }
}
