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
/// llama.cpp's CPU backend computes it), the exact tanh formula in f32 (as PyTorch's
/// `gelu(approximate="tanh")`), or the erf form (PyTorch's default `gelu`, transformers'
/// `hidden_act: "gelu"`, e.g. BERT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluImpl {
    Ggml,
    Exact,
    Erf,
}

/// The error function, to a few f64 ulps: A&S 7.1.6's positive series for |x| < 3, else
/// `1 - erfc(x)` with erfc's continued fraction (Abramowitz & Stegun 7.1.14).
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    if a.is_nan() {
        return f64::NAN;
    }
    let r = if a < 3.0 {
        // A&S 7.1.6, all terms positive (no cancellation):
        // erf(a) = 2/√π · exp(-a²) · Σ 2ⁿ a^(2n+1) / (1·3·…·(2n+1))
        let (a2, mut term, mut sum) = (a * a, a, a);
        for n in 1..400 {
            term *= 2.0 * a2 / (2 * n + 1) as f64;
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
        }
        sum * (-a2).exp() * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        1.0 - erfc_cf(a)
    };
    r.copysign(x)
}

/// erfc(a) for a ≥ 3: `exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))`.
fn erfc_cf(a: f64) -> f64 {
    if a > 27.0 {
        return 0.0; // exp(-729) underflows f64
    }
    let mut t = a;
    for k in (1..=120).rev() {
        t = a + (k as f64 * 0.5) / t;
    }
    (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
}

/// GELU, erf form: `x · Φ(x) = x/2 · (1 + erf(x/√2))` (evaluated in f64, rounded once).
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// GELU of every element in place (a plain, non-gated FFN's activation).
pub fn gelu_inplace(x: &mut [f32], imp: GeluImpl) {
    match imp {
        GeluImpl::Ggml => x.iter_mut().for_each(|v| *v = gelu_ggml(*v)),
        GeluImpl::Exact => x.iter_mut().for_each(|v| *v = gelu(*v)),
        GeluImpl::Erf => x.iter_mut().for_each(|v| *v = gelu_erf(*v)),
    }
}

/// One entry of ggml's GELU table as `ggml_cpu_init` computes it: its C `ggml_gelu_f32`
/// compiled with GCC's default contraction, i.e. `1 + a·x·x` as one fma
/// (`vfmadd213ss`); the plain formula differs in a few hundred f16 entries.
fn gelu_table_entry(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044715;
    let inner = (COEF_A * x).mul_add(x, 1.0);
    (1.0 + (SQRT_2_OVER_PI * x * inner).tanh()) * (0.5 * x)
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
            .map(|b| {
                half::f16::from_f32(gelu_table_entry(half::f16::from_bits(b).to_f32())).to_f32()
            })
            .collect()
    });
    t[half::f16::from_f32(x).to_bits() as usize]
}

/// `gate[i] = act(gate[i]) * up[i]` (the gated FFN's element-wise step), with SiLU as
/// [`silu_v`] (ggml's vectorized `ggml_vec_swiglu_f32`); 16 lanes at a time with AVX-512F.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    #[cfg(target_arch = "x86_64")]
    if silu_z512() {
        // SAFETY: avx512f checked.
        let done = unsafe { x86::swiglu(&mut gate[..n], &up[..n]) };
        swiglu_ref(&mut gate[done..n], &up[done..n]);
        return;
    }
    swiglu_ref(&mut gate[..n], &up[..n]);
}

/// The scalar twin of [`swiglu`] (bit-identical).
pub fn swiglu_ref(gate: &mut [f32], up: &[f32]) {
    gate.iter_mut()
        .zip(up)
        .for_each(|(g, &u)| *g = silu_v(*g) * u);
}

#[cfg(target_arch = "x86_64")]
fn silu_z512() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var_os("FERRITE_NO_SIMD").is_none() && is_x86_feature_detected!("avx512f")
    })
}

/// ggml's `ggml_v_expf` (ARM optimized-routines polynomial, ≤ 1.5 ulp): `n = round(x/ln2)`,
/// `b = x - n·ln2` (two-part ln2), degree-5 polynomial `j ≈ eᵇ`, result `j·2ⁿ` (one rounding,
/// as `vscalefps`); |n| > 192 gives 0 or +∞. Scalar, evaluated exactly as the 16 lanes are.
#[inline]
pub fn expf_v(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // 0x1.7f7d1cp-20
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // 0x1.62e4p-1
    );
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010) // 0x1.0e4020p-7
        .mul_add(b, f32::from_bits(0x3d2b_9f17)) // 0x1.573e2ep-5
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3efffedb)), // 0x1.555e66p-3, 0x1.fffdb6p-2
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0)); // 0x1.ffffecp-1
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // j·2ⁿ exactly in f64, then one rounding to f32 (as scalef, subnormals included).
    (j as f64 * (n as f64).exp2()) as f32
}

/// SiLU as ggml's `ggml_v_silu`: `x / (1 + expf_v(-x))`.
#[inline]
pub fn silu_v(x: f32) -> f32 {
    x / (1.0 + expf_v(0.0 - x))
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// ggml's `ggml_v_expf` on 16 lanes (see [`super::expf_v`], its scalar twin).
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn expf(x: __m512) -> __m512 {
        let r = _mm512_set1_ps(f32::from_bits(0x4b40_0000));
        let z = _mm512_fmadd_ps(x, _mm512_set1_ps(f32::from_bits(0x3fb8_aa3b)), r);
        let n = _mm512_sub_ps(z, r);
        let b = _mm512_fnmadd_ps(
            n,
            _mm512_set1_ps(f32::from_bits(0x35bf_be8e)),
            _mm512_fnmadd_ps(n, _mm512_set1_ps(f32::from_bits(0x3f31_7200)), x),
        );
        let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(
                _mm512_fmadd_ps(
                    _mm512_set1_ps(f32::from_bits(0x3c07_2010)),
                    b,
                    _mm512_set1_ps(f32::from_bits(0x3d2b_9f17)),
                ),
                u,
                _mm512_fmadd_ps(
                    _mm512_set1_ps(f32::from_bits(0x3e2a_af33)),
                    b,
                    _mm512_set1_ps(f32::from_bits(0x3efffedb)),
                ),
            ),
            u,
            _mm512_fmadd_ps(
                _mm512_set1_ps(f32::from_bits(0x3f7f_fff6)),
                b,
                _mm512_set1_ps(1.0),
            ),
        );
        let res = _mm512_scalef_ps(j, n);
        if d == 0 {
            return res;
        }
        let zero = _mm512_setzero_ps();
        let alt = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero),
            _mm512_set1_ps(f32::INFINITY),
            zero,
        );
        _mm512_mask_blend_ps(d, res, alt)
    }

    /// 16 lanes at a time; returns how many elements were done.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn swiglu(gate: &mut [f32], up: &[f32]) -> usize {
        let n = gate.len();
        let (one, zero) = (_mm512_set1_ps(1.0), _mm512_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            let x = _mm512_loadu_ps(gate.as_ptr().add(i));
            let e = expf(_mm512_sub_ps(zero, x));
            let s = _mm512_div_ps(x, _mm512_add_ps(one, e));
            let r = _mm512_mul_ps(s, _mm512_loadu_ps(up.as_ptr().add(i)));
            _mm512_storeu_ps(gate.as_mut_ptr().add(i), r);
            i += 16;
        }
        i
    }
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
        GeluImpl::Erf => gate
            .iter_mut()
            .zip(up)
            .for_each(|(g, &u)| *g = gelu_erf(*g) * u),
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
    get_rows_impl(ty, data, false, n, ids, dst)
}

/// [`get_rows`] from a weight view, which may be packed (a tied output head doubling as the
/// token embedding table).
pub fn get_rows_view(
    w: &crate::WeightView<'_>,
    ids: &[u32],
    dst: &mut [f32],
) -> Result<(), crate::ComputeError> {
    get_rows_impl(w.ty, w.data, w.packed, w.cols, ids, dst)
}

fn get_rows_impl(
    ty: GgmlType,
    data: &[u8],
    packed: bool,
    n: usize,
    ids: &[u32],
    dst: &mut [f32],
) -> Result<(), crate::ComputeError> {
    let rb = ferrite_quants::row_bytes(ty, n)?;
    let n_rows = data.len() / rb.max(1);
    let mut row = if packed { vec![0u8; rb] } else { Vec::new() };
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= n_rows {
            return Err(crate::ComputeError::Shape {
                what: "token id (embedding rows)",
                expected: n_rows,
                got: id,
            });
        }
        let src = if packed {
            ferrite_quants::packed::copy_row(ty, n, data, id, &mut row)?;
            &row[..]
        } else {
            &data[id * rb..(id + 1) * rb]
        };
        ferrite_quants::dequantize_row(ty, src, &mut dst[i * n..(i + 1) * n])?;
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

    /// Oracle: erf/erfc table values (Abramowitz & Stegun table 7.1, to 16 digits as printed
    /// by mpmath) and Φ(±1) for the erf GELU. Tolerance 1e-15 absolute (erf), 1e-13 relative
    /// (erfc tail), 1 f32 ulp (GELU).
    #[test]
    fn erf_and_erf_gelu_match_table_values() {
        for (x, e) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (2.999_999, 0.999_977_909_363_747_9),
            (3.0, 0.999_977_909_503_001_4),
            (-1.0, -0.842_700_792_949_714_9),
        ] {
            assert!((erf(x) - e).abs() < 1e-15, "erf({x}) = {} vs {e}", erf(x));
        }
        // The tail through 1 - erf: erfc(3), erfc(4), erfc(5).
        for (x, e) in [
            (3.0, 2.209_049_699_858_544e-5),
            (4.0, 1.541_725_790_028_002e-8),
            (5.0, 1.537_459_794_428_035e-12),
        ] {
            let c = erfc_cf(x);
            assert!(((c - e) / e).abs() < 1e-13, "erfc({x}) = {c} vs {e}");
        }
        assert_eq!(erf(40.0), 1.0);
        assert!(erf(f64::NAN).is_nan());
        // x·Φ(x): Φ(1) = 0.841344746068543, Φ(-1) = 0.158655253931457.
        assert_eq!(gelu_erf(1.0), 0.841_344_8_f32);
        assert_eq!(gelu_erf(-1.0), -0.158_655_25_f32);
        assert_eq!(gelu_erf(0.0), 0.0);
        let mut v = vec![1.0f32, -1.0];
        gelu_inplace(&mut v, GeluImpl::Erf);
        assert_eq!(v, vec![gelu_erf(1.0), gelu_erf(-1.0)]);
    }

    /// Oracle: f64 `exp` (≤ 2 ulp, as ggml documents 1.45 + 0.5) and the scalar twin, which
    /// the 16-lane path must match bit for bit.
    #[test]
    fn vector_silu_matches_twin_and_exp() {
        let mut xs: Vec<f32> = (-20000..20000).map(|i| i as f32 * 0.0061).collect();
        xs.extend([
            -200.0, -104.5, -90.0, -87.5, 0.0, -0.0, 1e-30, 88.0, 88.5, 95.0, 300.0,
        ]);
        for &x in &xs {
            let (a, e) = (expf_v(x), (x as f64).exp());
            if e > 1e-37 && e < 3e38 {
                let ulp = (e as f32).abs() * f32::EPSILON;
                assert!(
                    (a as f64 - e).abs() <= 2.0 * ulp as f64,
                    "exp({x}) = {a} vs {e}"
                );
            }
            let s = silu_v(x);
            let se = x as f64 / (1.0 + (-x as f64).exp());
            assert!(
                (s as f64 - se).abs() <= 4e-7 * se.abs() + 1e-30, // x < -88.7: e^-x = inf, -0
                "silu({x})"
            );
        }
        assert_eq!(expf_v(-200.0), 0.0);
        assert_eq!(expf_v(200.0), f32::INFINITY);
        let up: Vec<f32> = xs.iter().map(|&x| 1.0 - x * 0.01).collect();
        let (mut a, mut b) = (xs.clone(), xs.clone());
        swiglu(&mut a, &up);
        swiglu_ref(&mut b, &up);
        let (a, b): (Vec<u32>, Vec<u32>) = (
            a.iter().map(|v| v.to_bits()).collect(),
            b.iter().map(|v| v.to_bits()).collect(),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn get_rows_dequantizes_and_checks_ids() {
        let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut out = vec![0.0; 4];
        get_rows(GgmlType::F32, &data, 2, &[2, 0], &mut out).unwrap();
        assert_eq!(out, vec![4.0, 5.0, 0.0, 1.0]);
        assert!(get_rows(GgmlType::F32, &data, 2, &[3], &mut out[..2]).is_err());
    }

    /// Lookups from a packed (x4) matrix equal those from the plain bytes, bit for bit;
    /// out-of-range ids are errors. Oracle: `get_rows` on the unpacked matrix.
    #[test]
    fn get_rows_reads_packed_views() {
        let (ty, n, rows) = (GgmlType::Q4_0, 64, 12);
        let rb = ferrite_quants::row_bytes(ty, n).unwrap();
        let mut plain = vec![0u8; rb * rows];
        for r in 0..rows {
            let x: Vec<f32> = (0..n).map(|i| ((r * n + i) as f32 * 0.37).sin()).collect();
            ferrite_quants::quantize_row(ty, &x, &mut plain[r * rb..(r + 1) * rb]).unwrap();
        }
        let mut packed = vec![0u8; plain.len()];
        ferrite_quants::packed::pack_rows(ty, n, &plain, &mut packed).unwrap();
        let w = crate::WeightView::new_packed(ty, rows, n, &packed).unwrap();
        let ids = [11u32, 0, 5, 6, 3];
        let (mut want, mut got) = (vec![0f32; ids.len() * n], vec![0f32; ids.len() * n]);
        get_rows(ty, &plain, n, &ids, &mut want).unwrap();
        get_rows_view(&w, &ids, &mut got).unwrap();
        assert_eq!(got, want);
        assert!(get_rows_view(&w, &[12], &mut got[..n]).is_err());
    }
}
