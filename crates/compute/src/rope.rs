//! Rotary position embedding as ggml computes it: `theta_i = p · base^(-2i/n_rot)` accumulated
//! by repeated multiplication, divided by per-dimension frequency factors (llama3 `rope_freqs`),
//! then linear / YaRN interpolation. Dimensions past `n_rot` (partial rotary) pass through.

/// Which elements form a rotated pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs `(x[2i], x[2i+1])` (ggml's default; Llama GGUFs have q/k rows permuted).
    Normal,
    /// Halves `(x[i], x[i + n_rot/2])` (GPT-NeoX, Qwen, Gemma, Phi-3).
    Neox,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RopeParams {
    pub mode: RopeMode,
    /// Rotated dimensions per head (≤ head_dim).
    pub n_rot: usize,
    pub freq_base: f32,
    /// 1/scaling factor (linear and YaRN interpolation).
    pub freq_scale: f32,
    /// YaRN mix strength: 0 = plain interpolation, 1 = YaRN.
    pub ext_factor: f32,
    /// Magnitude scale on cos/sin.
    pub attn_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// Training context of the unscaled model (YaRN correction dims).
    pub n_ctx_orig: usize,
    /// Per-pair divisors of theta (`rope_freqs.weight`), `n_rot / 2` of them.
    pub freq_factors: Option<Vec<f32>>,
}

impl RopeParams {
    /// Plain RoPE with `base`.
    pub fn new(mode: RopeMode, n_rot: usize, freq_base: f32) -> RopeParams {
        RopeParams {
            mode,
            n_rot,
            freq_base,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 0,
            freq_factors: None,
        }
    }

    fn corr_dims(&self) -> [f32; 2] {
        let n_dims = self.n_rot as f32;
        let corr = |n_rot: f32| {
            n_dims * (self.n_ctx_orig as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln()
                / (2.0 * self.freq_base.ln())
        };
        let start = corr(self.beta_fast).floor();
        let end = corr(self.beta_slow).ceil();
        [start.max(0.0), end.min(n_dims - 1.0)]
    }

    /// `cache[2i], cache[2i+1]` = cos, sin of pair `i` at position `pos` (`n_rot` floats).
    pub fn fill_cache(&self, pos: f32, cache: &mut [f32]) {
        let theta_scale = self.freq_base.powf(-2.0 / self.n_rot as f32);
        let corr = if self.ext_factor != 0.0 {
            self.corr_dims()
        } else {
            [0.0, 0.0]
        };
        let mut theta = pos;
        for i0 in (0..self.n_rot).step_by(2) {
            let ff = self.freq_factors.as_ref().map_or(1.0, |f| f[i0 / 2]);
            let (c, s) = self.yarn(theta / ff, corr, i0);
            cache[i0] = c;
            cache[i0 + 1] = s;
            theta *= theta_scale;
        }
    }

    fn yarn(&self, theta_extrap: f32, corr: [f32; 2], i0: usize) -> (f32, f32) {
        let theta_interp = self.freq_scale * theta_extrap;
        let mut theta = theta_interp;
        let mut mscale = self.attn_factor;
        if self.ext_factor != 0.0 {
            let y = ((i0 / 2) as f32 - corr[0]) / (corr[1] - corr[0]).max(0.001);
            let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor;
            theta = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
            mscale *= 1.0 + 0.1 * (1.0 / self.freq_scale).ln();
        }
        (theta.cos() * mscale, theta.sin() * mscale)
    }

    /// Rotate `n_head` heads of `head_dim` (contiguous in `x`) with a cache from [`fill_cache`].
    /// The first product of each rotated value is fused, as GCC compiles ggml's
    /// `x0*cos - x1*sin` / `x0*sin + x1*cos` (FMA contraction): bit-identical to llama.cpp's.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cache: &[f32]) {
        let n = self.n_rot;
        for head in x.chunks_exact_mut(head_dim) {
            match self.mode {
                RopeMode::Normal => {
                    for i0 in (0..n).step_by(2) {
                        let (c, s) = (cache[i0], cache[i0 + 1]);
                        let (x0, x1) = (head[i0], head[i0 + 1]);
                        head[i0] = x0.mul_add(c, -(x1 * s));
                        head[i0 + 1] = x0.mul_add(s, x1 * c);
                    }
                }
                RopeMode::Neox => {
                    let half = n / 2;
                    for i0 in (0..n).step_by(2) {
                        let (c, s) = (cache[i0], cache[i0 + 1]);
                        let (a, b) = (i0 / 2, i0 / 2 + half);
                        let (x0, x1) = (head[a], head[b]);
                        head[a] = x0.mul_add(c, -(x1 * s));
                        head[b] = x0.mul_add(s, x1 * c);
                    }
                }
            }
        }
    }

    /// The plain twin: angles from `powf` directly in f64, no cache.
    pub fn apply_ref(&self, x: &mut [f32], head_dim: usize, pos: f32) {
        let n = self.n_rot;
        for head in x.chunks_exact_mut(head_dim) {
            let src = head.to_vec();
            for i in 0..n / 2 {
                let ff = self.freq_factors.as_ref().map_or(1.0, |f| f[i]) as f64;
                let theta_e =
                    pos as f64 * (self.freq_base as f64).powf(-2.0 * i as f64 / n as f64) / ff;
                let ti = self.freq_scale as f64 * theta_e;
                let (mut theta, mut ms) = (ti, self.attn_factor as f64);
                if self.ext_factor != 0.0 {
                    let c = self.corr_dims();
                    let y = (i as f64 - c[0] as f64) / ((c[1] - c[0]) as f64).max(0.001);
                    let mix = (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor as f64;
                    theta = ti * (1.0 - mix) + theta_e * mix;
                    ms *= 1.0 + 0.1 * (1.0 / self.freq_scale as f64).ln();
                }
                let (s, c) = theta.sin_cos();
                let (a, b) = match self.mode {
                    RopeMode::Normal => (2 * i, 2 * i + 1),
                    RopeMode::Neox => (i, i + n / 2),
                };
                let (x0, x1) = (src[a] as f64, src[b] as f64);
                head[a] = ((x0 * c - x1 * s) * ms) as f32;
                head[b] = ((x0 * s + x1 * c) * ms) as f32;
            }
        }
    }
}

/// Llama 3.x `rope_freqs`: per-pair divisors of theta from HF's `_compute_llama3_parameters`
/// (high frequencies kept, low ones divided by `factor`, a smooth blend in between).
pub fn llama3_freq_factors(
    n_rot: usize,
    freq_base: f32,
    factor: f32,
    low_freq_factor: f32,
    high_freq_factor: f32,
    n_ctx_orig: usize,
) -> Vec<f32> {
    let old = n_ctx_orig as f32;
    let low_wavelen = old / low_freq_factor;
    let high_wavelen = old / high_freq_factor;
    (0..n_rot / 2)
        .map(|i| {
            let freq = 1.0 / freq_base.powf((2 * i) as f32 / n_rot as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth =
                    (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &RopeParams, head_dim: usize) {
        let x0: Vec<f32> = (0..3 * head_dim)
            .map(|i| ((i * 7919) % 97) as f32 / 50.0 - 1.0)
            .collect();
        let mut cache = vec![0f32; p.n_rot];
        for pos in [0.0, 1.0, 17.0, 300.0] {
            let mut a = x0.clone();
            p.fill_cache(pos, &mut cache);
            p.apply(&mut a, head_dim, &cache);
            let mut b = x0.clone();
            p.apply_ref(&mut b, head_dim, pos);
            for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                // f32 angle accumulation vs f64 powf: ~1e-7·theta·|x| error, theta ≤ 300.
                assert!((u - v).abs() < 2e-4, "{p:?} pos {pos} [{i}]: {u} vs {v}");
            }
            // Partial rotary: the tail passes through.
            for h in 0..3 {
                for i in p.n_rot..head_dim {
                    assert_eq!(a[h * head_dim + i], x0[h * head_dim + i]);
                }
            }
        }
    }

    // Oracle: `apply_ref` (direct f64 formula). Tolerance 2e-4 absolute.
    #[test]
    fn cached_rope_matches_direct_formula() {
        for mode in [RopeMode::Normal, RopeMode::Neox] {
            check(&RopeParams::new(mode, 16, 10000.0), 16);
            check(&RopeParams::new(mode, 12, 250000.0), 16);
            check(
                &RopeParams {
                    freq_scale: 0.125,
                    ..RopeParams::new(mode, 16, 1e6)
                },
                16,
            );
            check(
                &RopeParams {
                    freq_scale: 0.25,
                    ext_factor: 1.0,
                    n_ctx_orig: 64,
                    ..RopeParams::new(mode, 32, 10000.0)
                },
                32,
            );
            let ff = llama3_freq_factors(16, 5e5, 8.0, 1.0, 4.0, 64);
            check(
                &RopeParams {
                    freq_factors: Some(ff),
                    ..RopeParams::new(mode, 16, 5e5)
                },
                16,
            );
        }
    }

    #[test]
    fn rope_position_zero_is_identity_and_norm_preserving() {
        let p = RopeParams::new(RopeMode::Neox, 8, 10000.0);
        let mut c = vec![0f32; 8];
        p.fill_cache(0.0, &mut c);
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        p.apply(&mut x, 8, &c);
        assert_eq!(x, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        p.fill_cache(5.0, &mut c);
        p.apply(&mut x, 8, &c);
        let n: f32 = x.iter().map(|v| v * v).sum();
        assert!((n - 204.0).abs() < 1e-3);
    }
}
