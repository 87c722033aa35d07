//! ggml's f16 vector ops used by flash attention (`ggml_vec_mad_f16`, `ggml_vec_scale_f16`):
//! widen to f32, compute (fused multiply-add for mad), round back to f16 after every op. An
//! AVX2+F16C+FMA path chosen once at run time, and the scalar twin it is tested against.

use half::f16;
use std::sync::OnceLock;

#[derive(Clone, Copy)]
pub struct F16Ops {
    simd: bool,
    /// AVX-512F: 16 lanes per step (same widen/fma/round per element, so bit-identical).
    z512: bool,
}

impl F16Ops {
    pub fn get() -> F16Ops {
        static OPS: OnceLock<F16Ops> = OnceLock::new();
        *OPS.get_or_init(|| {
            let simd = detect();
            F16Ops {
                simd,
                z512: simd && detect_z512(),
            }
        })
    }

    /// `y = f16(fma(x, v, y))`; `x` is little-endian f16 bytes, `y.len()` elements.
    #[inline]
    pub fn mad(&self, y: &mut [u16], x: &[u8], v: f32) {
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            // SAFETY: features checked in `detect` / `detect_z512`.
            unsafe {
                if self.z512 {
                    x86::mad_z512(y, x, v)
                } else {
                    x86::mad(y, x, v)
                }
            };
            return;
        }
        mad_ref(y, x, v)
    }

    /// `y = f16(y · v)`.
    #[inline]
    pub fn scale(&self, y: &mut [u16], v: f32) {
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            // SAFETY: features checked in `detect` / `detect_z512`.
            unsafe {
                if self.z512 {
                    x86::scale_z512(y, v)
                } else {
                    x86::scale(y, v)
                }
            };
            return;
        }
        scale_ref(y, v)
    }
}

fn detect() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::env::var_os("FERRITE_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn detect_z512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

pub fn mad_ref(y: &mut [u16], x: &[u8], v: f32) {
    for (i, yi) in y.iter_mut().enumerate() {
        let xi = f16::from_bits(u16::from_le_bytes([x[2 * i], x[2 * i + 1]])).to_f32();
        *yi = f16::from_f32(xi.mul_add(v, f16::from_bits(*yi).to_f32())).to_bits();
    }
}

pub fn scale_ref(y: &mut [u16], v: f32) {
    for yi in y.iter_mut() {
        *yi = f16::from_f32(f16::from_bits(*yi).to_f32() * v).to_bits();
    }
}

/// f16 bits → f32.
pub fn to_f32(x: &[u16], out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(x) {
        *o = f16::from_bits(b).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn mad(y: &mut [u16], x: &[u8], v: f32) {
        let n = y.len();
        let vv = _mm256_set1_ps(v);
        let mut i = 0;
        while i + 8 <= n {
            let xp = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(2 * i) as *const __m128i));
            let yp = _mm256_cvtph_ps(_mm_loadu_si128(y.as_ptr().add(i) as *const __m128i));
            let r = _mm256_fmadd_ps(xp, vv, yp);
            _mm_storeu_si128(
                y.as_mut_ptr().add(i) as *mut __m128i,
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r),
            );
            i += 8;
        }
        if i < n {
            super::mad_ref(&mut y[i..], &x[2 * i..], v);
        }
    }

    /// [`mad`] 16 lanes at a time; the 8-lane step above finishes the rest.
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    pub unsafe fn mad_z512(y: &mut [u16], x: &[u8], v: f32) {
        let n = y.len();
        let vv = _mm512_set1_ps(v);
        let mut i = 0;
        while i + 16 <= n {
            let xp = _mm512_cvtph_ps(_mm256_loadu_si256(x.as_ptr().add(2 * i) as *const __m256i));
            let yp = _mm512_cvtph_ps(_mm256_loadu_si256(y.as_ptr().add(i) as *const __m256i));
            let r = _mm512_fmadd_ps(xp, vv, yp);
            _mm256_storeu_si256(
                y.as_mut_ptr().add(i) as *mut __m256i,
                _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r),
            );
            i += 16;
        }
        if i < n {
            mad(&mut y[i..], &x[2 * i..], v);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn scale(y: &mut [u16], v: f32) {
        let n = y.len();
        let vv = _mm256_set1_ps(v);
        let mut i = 0;
        while i + 8 <= n {
            let yp = _mm256_cvtph_ps(_mm_loadu_si128(y.as_ptr().add(i) as *const __m128i));
            let r = _mm256_mul_ps(yp, vv);
            _mm_storeu_si128(
                y.as_mut_ptr().add(i) as *mut __m128i,
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r),
            );
            i += 8;
        }
        if i < n {
            super::scale_ref(&mut y[i..], v);
        }
    }

    /// [`scale`] 16 lanes at a time; the 8-lane step above finishes the rest.
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    pub unsafe fn scale_z512(y: &mut [u16], v: f32) {
        let n = y.len();
        let vv = _mm512_set1_ps(v);
        let mut i = 0;
        while i + 16 <= n {
            let yp = _mm512_cvtph_ps(_mm256_loadu_si256(y.as_ptr().add(i) as *const __m256i));
            let r = _mm512_mul_ps(yp, vv);
            _mm256_storeu_si256(
                y.as_mut_ptr().add(i) as *mut __m256i,
                _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r),
            );
            i += 16;
        }
        if i < n {
            scale(&mut y[i..], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracle: the scalar twins. The SIMD path must be bit-identical (same fma, same rounding).
    #[test]
    fn simd_matches_scalar_bit_for_bit() {
        let best = F16Ops::get();
        let narrow = F16Ops {
            z512: false,
            ..best
        };
        for (ops, n) in [best, narrow]
            .into_iter()
            .flat_map(|o| [1, 7, 8, 15, 16, 24, 64, 70, 80, 256].map(|n| (o, n)))
        {
            let x: Vec<u8> = (0..n)
                .flat_map(|i| {
                    f16::from_f32(((i * 37 % 101) as f32 - 50.0) / 17.0)
                        .to_bits()
                        .to_le_bytes()
                })
                .collect();
            let y0: Vec<u16> = (0..n)
                .map(|i| f16::from_f32(((i * 13 % 29) as f32 - 14.0) / 3.0).to_bits())
                .collect();
            for v in [0.0, 0.3, 1.0, -2.7, 1e-3] {
                let (mut a, mut b) = (y0.clone(), y0.clone());
                ops.mad(&mut a, &x, v);
                mad_ref(&mut b, &x, v);
                assert_eq!(a, b, "mad n={n} v={v}");
                ops.scale(&mut a, v);
                scale_ref(&mut b, v);
                assert_eq!(a, b, "scale n={n} v={v}");
            }
        }
    }
}
