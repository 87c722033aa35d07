//! Element-wise and row ops, written as ggml computes them (f64 accumulation for norm sums and
//! softmax denominators), so results track llama.cpp's to float rounding.

use ferrite_quants::GgmlType;

/// RMSNorm of each `n`-element row of `x` in place, then × `w` when given.
pub fn rms_norm(x: &mut [f32], n: usize, w: Option<&[f32]>, eps: f32) {
    for row in x.chunks_exact_mut(n) {
        // As ggml: each square rounded to f32, summed in f64.
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        match w {
            Some(w) => row
                .iter_mut()
                .zip(w)
                .for_each(|(v, &g)| *v = *v * scale * g),
            None => row.iter_mut().for_each(|v| *v *= scale),
        }
    }
}

/// LayerNorm of each `n`-element row in place, then × `w` + `b` when given.
pub fn layer_norm(x: &mut [f32], n: usize, w: Option<&[f32]>, b: Option<&[f32]>, eps: f32) {
    for row in x.chunks_exact_mut(n) {
        let mean = (row.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
        let mut var = 0f64;
        for v in row.iter_mut() {
            *v -= mean;
            var += (*v as f64) * (*v as f64);
        }
        let scale = 1.0 / ((var / n as f64) as f32 + eps).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            *v *= scale;
            if let Some(w) = w {
                *v *= w[i];
            }
            if let Some(b) = b {
                *v += b[i];
            }
        }
    }
}

/// Softmax of one row in place (max-subtracted, f64 denominator).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        let e = if *v == f32::NEG_INFINITY {
            0.0
        } else {
            (*v - max).exp()
        };
        *v = e;
        sum += e as f64;
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// SiLU: x·σ(x).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation (ggml's `gelu` / PyTorch's `gelu(approximate="tanh")`).
#[inline]
pub fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// Which GELU: ggml's (the input rounded to f16 and looked up in a table of f16 results, as
/// llama.cpp's CPU backend computes it) or the exact tanh formula in f32 (as PyTorch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluImpl {
    Ggml,
    Exact,
}

/// ggml's table GELU: |x| ≥ 10 short-cuts, else `f16(gelu(f16(x)))`.
#[inline]
pub fn gelu_ggml(x: f32) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let t = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| half::f16::from_f32(gelu(half::f16::from_bits(b).to_f32())).to_f32())
            .collect()
    });
    t[half::f16::from_f32(x).to_bits() as usize]
}

/// `gate[i] = act(gate[i]) * up[i]` (the gated FFN's element-wise step).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    gate.iter_mut()
        .zip(up)
        .for_each(|(g, &u)| *g = silu(*g) * u);
}

/// `gate[i] = gelu(gate[i]) * up[i]` (GeGLU).
pub fn geglu(gate: &mut [f32], up: &[f32], imp: GeluImpl) {
    match imp {
        GeluImpl::Ggml => gate
            .iter_mut()
            .zip(up)
            .for_each(|(g, &u)| *g = gelu_ggml(*g) * u),
        GeluImpl::Exact => gate
            .iter_mut()
            .zip(up)
            .for_each(|(g, &u)| *g = gelu(*g) * u),
    }
}

/// `a += b` element-wise; `b` may be shorter and is then broadcast over rows (a bias).
pub fn add(a: &mut [f32], b: &[f32]) {
    for row in a.chunks_exact_mut(b.len()) {
        row.iter_mut().zip(b).for_each(|(x, &y)| *x += y);
    }
}

/// `a *= b` element-wise; `b` broadcast over rows like [`add`].
pub fn mul(a: &mut [f32], b: &[f32]) {
    for row in a.chunks_exact_mut(b.len()) {
        row.iter_mut().zip(b).for_each(|(x, &y)| *x *= y);
    }
}

/// `x *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    x.iter_mut().for_each(|v| *v *= s);
}

/// `x = tanh(x / cap) * cap` (Gemma 2's logit soft-capping).
pub fn softcap(x: &mut [f32], cap: f32) {
    x.iter_mut().for_each(|v| *v = (*v / cap).tanh() * cap);
}

/// Embedding lookup: row `id` of a `(n_rows, n)` matrix of type `ty`, dequantized into `dst`.
pub fn get_rows(
    ty: GgmlType,
    data: &[u8],
    n: usize,
    ids: &[u32],
    dst: &mut [f32],
) -> Result<(), crate::ComputeError> {
    let rb = ferrite_quants::row_bytes(ty, n)?;
    let n_rows = data.len() / rb.max(1);
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= n_rows {
            return Err(crate::ComputeError::Shape {
                what: "token id (embedding rows)",
                expected: n_rows,
                got: id,
            });
        }
        ferrite_quants::dequantize_row(
            ty,
            &data[id * rb..(id + 1) * rb],
            &mut dst[i * n..(i + 1) * n],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Oracle: the textbook formulas evaluated in f64. Tolerance 1e-6 relative.
    #[test]
    fn rms_norm_matches_f64_formula() {
        let x0: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let w: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 * 0.01).collect();
        let mut x = x0.clone();
        rms_norm(&mut x, 32, Some(&w), 1e-5);
        for r in 0..2 {
            let row = &x0[r * 32..(r + 1) * 32];
            let ms: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 32.0;
            for i in 0..32 {
                let e = row[i] as f64 / (ms + 1e-5).sqrt() * w[i] as f64;
                assert!((x[r * 32 + i] as f64 - e).abs() < 1e-5 * e.abs().max(1.0));
            }
        }
    }

    #[test]
    fn layer_norm_zero_mean_unit_var() {
        let mut x: Vec<f32> = (0..48)
            .map(|i| (i as f32 * 0.7).cos() * 5.0 + 2.0)
            .collect();
        layer_norm(&mut x, 48, None, None, 1e-6);
        let mean: f64 = x.iter().map(|&v| v as f64).sum::<f64>() / 48.0;
        let var: f64 = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 48.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }

    #[test]
    fn softmax_sums_to_one_and_masks() {
        let mut x = vec![1.0, 2.0, f32::NEG_INFINITY, 3.0];
        softmax(&mut x);
        assert_eq!(x[2], 0.0);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let e = (3.0f64).exp() / (1f64.exp() + 2f64.exp() + 3f64.exp());
        assert!((x[3] as f64 - e).abs() < 1e-6);
    }

    #[test]
    fn activations_match_reference_values() {
        // torch.nn.functional.silu / gelu(approximate="tanh") at these points.
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((silu(-2.0) + 0.238_405_84).abs() < 1e-6);
        assert!((gelu(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu(-0.5) + 0.154_286).abs() < 1e-6);
    }

    /// Oracle: the exact formula; the f16 table is within f16 rounding of input and output.
    #[test]
    fn ggml_gelu_is_f16_rounded_exact_gelu() {
        for i in -2000..2000 {
            let x = i as f32 * 0.00731;
            let (a, e) = (gelu_ggml(x), gelu(x));
            // |d gelu/dx| ≤ 1.13, input rounding 2^-11·|x|, output rounding 2^-11·|y|.
            assert!(
                (a - e).abs() <= 1.2 * x.abs() / 2048.0 + e.abs() / 2048.0 + 1e-7,
                "{x}: {a} vs {e}"
            );
        }
        assert_eq!(gelu_ggml(-11.0), 0.0);
        assert_eq!(gelu_ggml(12.5), 12.5);
    }

    #[test]
    fn get_rows_dequantizes_and_checks_ids() {
        let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut out = vec![0.0; 4];
        get_rows(GgmlType::F32, &data, 2, &[2, 0], &mut out).unwrap();
        assert_eq!(out, vec![4.0, 5.0, 0.0, 1.0]);
        assert!(get_rows(GgmlType::F32, &data, 2, &[3], &mut out[..2]).is_err());
    }
}
