//! K-quants: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K in 256-element super-blocks (Q8_K's table lives in
//! `q8.rs`).
//!
//! Layouts follow ggml-common.h. Quantizers mirror ggml-quants.c (`quantize_row_qX_K_ref` and the
//! importance-matrix `quantize_row_qX_K_impl`, with the `make_qx_quants`, `make_q3_quants`,
//! `make_qkx2_quants`, `make_qkx3_quants`, `make_qp_quants` helpers) operation for operation,
//! without FMA contraction (ggml-base is compiled without it).
//!
//! Index loops deliberately mirror ggml's C loops so the code can be audited line by line.
#![allow(clippy::needless_range_loop)]
use crate::q8::{as_bytes, f16_at, f32_at, nearest_int, RawBlock, QK_K};
use crate::{GgmlType, TypeKernels};
use half::f16;
use std::mem::size_of;

const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml `block_q2_K`: 16 groups of 16; 4-bit scale and 4-bit min per group.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}
/// ggml `block_q3_K`: 2 low bits in `qs`, high bit in `hmask`, 6-bit signed scales packed in 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}
/// ggml `block_q4_K`: 8 groups of 32; 6-bit scales and mins packed in 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}
/// ggml `block_q5_K`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
/// ggml `block_q6_K`: 4 low bits in `ql`, 2 high bits in `qh`, 8-bit scale per 16.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);
const _: () = assert!(size_of::<BlockQ3K>() == 110);
const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ5K>() == 176);
const _: () = assert!(size_of::<BlockQ6K>() == 210);
// SAFETY: repr(C), f16 + byte arrays, sizes asserted equal to the field sum (no padding).
unsafe impl RawBlock for BlockQ2K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ3K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ4K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ5K {}
// SAFETY: as above.
unsafe impl RawBlock for BlockQ6K {}

fn put<T: RawBlock>(dst: &mut [u8], b: T) {
    dst.copy_from_slice(as_bytes(std::slice::from_ref(&b)));
}

// ============================================================================ helpers

/// ggml `make_qx_quants`: symmetric quantization to `[-nmax, nmax-1]`, `L` gets `l + nmax`.
pub(crate) fn make_qx_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    l_out: &mut [i8],
    mut rmse_type: i32,
    qw: Option<&[f32]>,
) -> f32 {
    let x = &x[..n];
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let mut iscale = (-nmax) as f32 / max;
    if rmse_type == 0 {
        for i in 0..n {
            let l = nearest_int(iscale * x[i]);
            l_out[i] = (nmax + l.min(nmax - 1).max(-nmax)) as i8;
        }
        return 1.0 / iscale;
    }
    let mut return_early = false;
    if rmse_type < 0 {
        rmse_type = -rmse_type;
        return_early = true;
    }
    // Weights resolved once (same values as evaluating per element). Callers pass n ≤ 32.
    assert!(n <= 32, "make_qx_quants: n = {n} > 32");
    let mut wbuf = [0f32; 32];
    for (i, wb) in wbuf[..n].iter_mut().enumerate() {
        *wb = match qw {
            Some(q) => q[i],
            None => match rmse_type {
                1 => x[i] * x[i],
                2 => 1.0,
                3 => x[i].abs(),
                _ => x[i].abs().sqrt(),
            },
        };
    }
    let wv = &wbuf[..n];
    let weight = |i: usize| -> f32 { wv[i] };
    let l_out = &mut l_out[..n];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
        l_out[i] = (l + nmax) as i8;
        let w = weight(i);
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
            let w = weight(i);
            let lf = l as f32;
            sumlx += w * x[i] * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let l = nearest_int(iscale * x[i]);
                l_out[i] = (nmax + l.min(nmax - 1).max(-nmax)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml `make_q3_quants`.
fn make_q3_quants(n: usize, nmax: i32, x: &[f32], l_out: &mut [i8], do_rmse: bool) -> f32 {
    let x = &x[..n];
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = (-nmax) as f32 / max;
    if do_rmse {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
            l_out[i] = l as i8;
            let w = x[i] * x[i];
            sumlx += w * x[i] * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        for _itry in 0..5 {
            let mut n_changed = 0;
            for i in 0..n {
                let w = x[i] * x[i];
                let li = l_out[i] as f32;
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let new_l = nearest_int(x[i] * sl2 / slx).min(nmax - 1).max(-nmax);
                    if new_l != l_out[i] as i32 {
                        let nl = new_l as f32;
                        slx += w * x[i] * nl;
                        sl2 += w * nl * nl;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            l_out[i] = new_l as i8;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed += 1;
                        }
                    }
                }
            }
            if n_changed == 0 {
                break;
            }
        }
        for l in &mut l_out[..n] {
            *l += nmax as i8;
        }
        return if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    }
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
        l_out[i] = (l + nmax) as i8;
    }
    1.0 / iscale
}

/// ggml `make_qkx2_quants` (`v3 = false`, weights required) and `make_qkx3_quants`
/// (`v3 = true`, `None` weights mean `x^2`). Returns `(scale, the_min)` where `the_min = -min`.
#[allow(clippy::too_many_arguments)]
fn make_qkx_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    weights: Option<&[f32]>,
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
    v3: bool,
) -> (f32, f32) {
    // Weights resolved once into a fixed buffer (same values; the search loops below then
    // run without per-element branches or bounds checks). Callers pass n ≤ 32.
    assert!(n <= 32, "make_qkx_quants: n = {n} > 32");
    let x = &x[..n];
    let mut wbuf = [0f32; 32];
    for (i, wb) in wbuf[..n].iter_mut().enumerate() {
        *wb = match weights {
            Some(w) => w[i],
            None => x[i] * x[i],
        };
    }
    let wv = &wbuf[..n];
    let wt = |i: usize| -> f32 { wv[i] };
    let mut laux_buf = [0u8; 32];
    let laux = &mut laux_buf[..n];
    let l_out = &mut l_out[..n];
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = wt(0);
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = wt(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if (v3 && max <= min) || (!v3 && max == min) {
        l_out.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        l_out[i] = l.min(nmax).max(0) as u8;
        let mut diff = scale * l_out[i] as f32 + min - x[i];
        diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += wt(i) * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = if v3 {
                let v = iscale * (x[i] - min);
                if v > 0.0 {
                    nearest_int(v.min(nmax as f32))
                } else {
                    0
                }
            } else {
                nearest_int(iscale * (x[i] - min)).min(nmax).max(0)
            };
            laux[i] = l as u8;
            let w = wt(i);
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let mut diff = this_scale * laux[i] as f32 + this_min - x[i];
                diff = if use_mad { diff.abs() } else { diff * diff };
                cur_error += wt(i) * diff;
            }
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml `make_qkx3_quants`; returns `(scale, the_min)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx3_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    weights: Option<&[f32]>,
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    make_qkx_quants(
        n, nmax, x, weights, l_out, rmin, rdelta, nstep, use_mad, true,
    )
}

/// ggml `make_qp_quants`: non-negative values to `[0, nmax]`.
fn make_qp_quants(n: usize, nmax: i32, x: &[f32], l_out: &mut [u8], qw: &[f32]) -> f32 {
    let x = &x[..n];
    let mut max = 0.0f32;
    for &v in x {
        max = if max > v { max } else { v }; // C MAX(max, x)
    }
    if max < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        l_out[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * l_out[i] as f32;
        best_mse += qw[i] * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        l_out[i] = l as u8;
        let w = qw[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _itry in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = qw[i];
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l_out[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// ggml `get_scale_min_k4`: 6-bit scale and min of group `j` (0..8) from the 12 packed bytes.
#[inline(always)]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Unpack Q3_K's 16 6-bit scales (returned still biased by +32, as ggml's `aux` trick).
#[inline(always)]
pub(crate) fn q3k_scales(s: &[u8]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let a1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
    let tmp = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (k, a) in aux.iter().enumerate() {
        for (b, v) in a.to_le_bytes().iter().enumerate() {
            out[k * 4 + b] = *v as i8;
        }
    }
    out
}

fn pack_scales_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        let (l, m) = (ls[j], lm[j]);
        if j < 4 {
            s[j] = l;
            s[j + 4] = m;
        } else {
            s[j + 4] = (l & 0xf) | ((m & 0xf) << 4);
            s[j - 4] |= (l >> 4) << 6;
            s[j] |= (m >> 4) << 6;
        }
    }
    s
}

fn pack_2bit(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for j in (0..QK_K).step_by(128) {
        for k in 0..32 {
            qs[j / 4 + k] =
                l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
    qs
}

// ============================================================================ Q2_K

fn q2k_finish(x: &[f32], mut l: [u8; QK_K], scales_b: [u8; 16], d: f16, dmin: f16) -> BlockQ2K {
    for j in 0..16 {
        let dd = d.to_f32() * (scales_b[j] & 0xf) as f32;
        if dd == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * (scales_b[j] >> 4) as f32;
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / dd);
            l[16 * j + ii] = q.clamp(0, 3) as u8;
        }
    }
    BlockQ2K {
        scales: scales_b,
        qs: pack_2bit(&l),
        d,
        dmin,
    }
}

/// ggml `quantize_row_q2_K_ref` for one super-block.
pub fn quantize_block_q2_k(x: &[f32]) -> BlockQ2K {
    let x = &x[..QK_K];
    let mut l = [0u8; QK_K];
    let mut mins = [0.0f32; 16];
    let mut scales = [0.0f32; 16];
    let q4scale = 15.0f32;
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut w = [0.0f32; 16];
        for k in 0..16 {
            w[k] = xs[k].abs();
        }
        let (s, m) = make_qkx_quants(
            16,
            3,
            xs,
            Some(&w),
            &mut l[16 * j..16 * j + 16],
            -0.5,
            0.1,
            15,
            true,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let mut sb = [0u8; 16];
    let d = if max_scale > 0.0 {
        let iscale = q4scale / max_scale;
        for j in 0..16 {
            sb[j] = nearest_int(iscale * scales[j]) as u8;
        }
        f16::from_f32(max_scale / q4scale)
    } else {
        f16::from_f32(0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = q4scale / max_min;
        for j in 0..16 {
            let q = nearest_int(iscale * mins[j]);
            sb[j] |= (q << 4) as u8;
        }
        f16::from_f32(max_min / q4scale)
    } else {
        f16::from_f32(0.0)
    };
    q2k_finish(x, l, sb, d, dmin)
}

/// ggml `quantize_row_q2_K_impl` (importance weights) for one super-block.
fn quantize_block_q2_k_imatrix(x: &[f32], qw: &[f32]) -> BlockQ2K {
    let x = &x[..QK_K];
    let mut l = [0u8; QK_K];
    let mut mins = [0.0f32; 16];
    let mut scales = [0.0f32; 16];
    let mut sw = [0.0f32; 16];
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = sumx2 / QK_K as f32;
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut w = [0.0f32; 16];
        for k in 0..16 {
            w[k] = qw[16 * j + k] * (sigma2 + xs[k] * xs[k]).sqrt();
        }
        for k in 0..16 {
            sw[j] += w[k];
        }
        let (s, m) = make_qkx3_quants(
            16,
            3,
            xs,
            Some(&w),
            &mut l[16 * j..16 * j + 16],
            -0.9,
            0.05,
            36,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let mut ls = [0u8; 16];
    let mut lm = [0u8; 16];
    let dm = make_qp_quants(16, 15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(16, 15, &mins, &mut lm, &sw);
    let mut sb = [0u8; 16];
    for j in 0..16 {
        sb[j] = ls[j] | (lm[j] << 4);
    }
    q2k_finish(x, l, sb, f16::from_f32(dm), f16::from_f32(mm))
}

fn dequantize_q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(84).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 80);
        let min = f16_at(b, 82);
        let sc = &b[0..16];
        let mut yi = 0;
        let mut is = 0;
        for n in 0..2 {
            let q = &b[16 + 32 * n..16 + 32 * n + 32];
            for shift in [0u32, 2, 4, 6] {
                for half in 0..2 {
                    let s = sc[is];
                    is += 1;
                    let dl = d * (s & 0xf) as f32;
                    let ml = min * (s >> 4) as f32;
                    for l in 0..16 {
                        y[yi] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                        yi += 1;
                    }
                }
            }
        }
    }
}

/// ggml `ggml_vec_dot_q2_K_q8_K` (generic; per-block integer sums are exact).
pub(crate) fn vec_dot_q2_k_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(84).zip(a.chunks_exact(292)).take(n / QK_K) {
        let sc = &x[0..16];
        let yd = f32_at(y, 0);
        let mut summs = 0i32;
        for j in 0..16 {
            let bs = i16::from_le_bytes([y[260 + 2 * j], y[261 + 2 * j]]) as i32;
            summs += bs * (sc[j] >> 4) as i32;
        }
        let dall = yd * f16_at(x, 80);
        let dmin = yd * f16_at(x, 82);
        let mut isum = 0i32;
        let mut is = 0;
        let mut q8o = 4;
        for k in 0..2 {
            let q2 = &x[16 + 32 * k..16 + 32 * k + 32];
            for shift in [0u32, 2, 4, 6] {
                for half in 0..2 {
                    let d = (sc[is] & 0xf) as i32;
                    is += 1;
                    let mut isuml = 0i32;
                    for l in 0..16 {
                        isuml += y[q8o + 16 * half + l] as i8 as i32
                            * ((q2[16 * half + l] >> shift) & 3) as i32;
                    }
                    isum += d * isuml;
                }
                q8o += 32;
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

// ============================================================================ Q3_K

fn q3k_finish(x: &[f32], mut l: [i8; QK_K], scales: [u8; 12], d: f16) -> BlockQ3K {
    for j in 0..16 {
        let mut sc: i8 = if j < 8 {
            (scales[j] & 0xf) as i8
        } else {
            (scales[j - 8] >> 4) as i8
        };
        sc =
            ((sc as u8 | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8).wrapping_sub(32);
        let dd = d.to_f32() * sc as f32;
        if dd == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / dd).clamp(-4, 3);
            l[16 * j + ii] = (q + 4) as i8;
        }
    }
    let mut hmask = [0u8; 32];
    let mut m = 0;
    let mut hm = 1u8;
    let mut lu = [0u8; QK_K];
    for j in 0..QK_K {
        let mut v = l[j];
        if v > 3 {
            hmask[m] |= hm;
            v -= 4;
        }
        lu[j] = v as u8;
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm <<= 1;
        }
    }
    BlockQ3K {
        hmask,
        qs: pack_2bit(&lu),
        scales,
        d,
    }
}

fn pack_q3_scale(s: &mut [u8; 12], j: usize, l: i32) {
    if j < 8 {
        s[j] = (l & 0xf) as u8;
    } else {
        s[j - 8] |= ((l & 0xf) << 4) as u8;
    }
    let h = l >> 4;
    s[j % 4 + 8] |= (h << (2 * (j / 4))) as u8;
}

/// ggml `quantize_row_q3_K_ref` for one super-block.
pub fn quantize_block_q3_k(x: &[f32]) -> BlockQ3K {
    let x = &x[..QK_K];
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_q3_quants(16, 4, &x[16 * j..], &mut l[16 * j..16 * j + 16], true);
        let s = scales[j].abs();
        if s > amax {
            amax = s;
            max_scale = scales[j];
        }
    }
    let mut sb = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0f32 / max_scale;
        for j in 0..16 {
            let q = nearest_int(iscale * scales[j]) as i8 as i32; // C: int8_t l = nearest_int(..)
            let q = q.clamp(-32, 31) + 32;
            pack_q3_scale(&mut sb, j, q);
        }
        f16::from_f32(1.0 / iscale)
    } else {
        f16::from_f32(0.0)
    };
    q3k_finish(x, l, sb, d)
}

/// ggml `quantize_row_q3_K_impl` with importance weights, one super-block.
fn quantize_block_q3_k_imatrix(x: &[f32], qw: &[f32]) -> BlockQ3K {
    let x = &x[..QK_K];
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut sw = [0.0f32; 16];
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut w = [0.0f32; 16];
        for k in 0..16 {
            w[k] = qw[16 * j + k] * (sigma2 + xs[k] * xs[k]).sqrt();
        }
        let mut sumw = 0.0f32;
        for v in w {
            sumw += v;
        }
        sw[j] = sumw;
        scales[j] = make_qx_quants(16, 4, xs, &mut l[16 * j..16 * j + 16], 1, Some(&w));
    }
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(16, 32, &scales, &mut ls, 1, Some(&sw));
    let mut sb = [0u8; 12];
    for j in 0..16 {
        pack_q3_scale(&mut sb, j, ls[j] as i32);
    }
    q3k_finish(x, l, sb, f16::from_f32(d_block))
}

fn dequantize_q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(110).zip(dst.chunks_exact_mut(QK_K)) {
        let d_all = f16_at(b, 108);
        let hm = &b[0..32];
        let scales = q3k_scales(&b[96..108]);
        let mut m = 1u8;
        let mut is = 0;
        let mut yi = 0;
        for n in 0..2 {
            let q = &b[32 + 32 * n..64 + 32 * n];
            for shift in [0u32, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d_all * (scales[is] as i32 - 32) as f32;
                    is += 1;
                    for l in 0..16 {
                        let k = l + 16 * half;
                        let v = ((q[k] >> shift) & 3) as i32 - if hm[k] & m != 0 { 0 } else { 4 };
                        y[yi] = dl * v as f32;
                        yi += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// Q3_K values of one block as i8 in natural order (ggml's `aux8`).
#[inline(always)]
fn q3k_values(x: &[u8]) -> [i8; QK_K] {
    let mut a = [0i8; QK_K];
    let hm = &x[0..32];
    let mut m = 1u8;
    let mut ai = 0;
    for n in 0..2 {
        let q3 = &x[32 + 32 * n..64 + 32 * n];
        for shift in [0u32, 2, 4, 6] {
            for l in 0..32 {
                a[ai + l] = ((q3[l] >> shift) & 3) as i8 - if hm[l] & m != 0 { 0 } else { 4 };
            }
            ai += 32;
            m <<= 1;
        }
    }
    a
}

/// ggml `ggml_vec_dot_q3_K_q8_K` (generic; exact integer sums per block).
pub(crate) fn vec_dot_q3_k_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(110).zip(a.chunks_exact(292)).take(n / QK_K) {
        let vals = q3k_values(x);
        let scales = q3k_scales(&x[96..108]);
        let mut isum = 0i32;
        for j in 0..16 {
            let mut s = 0i32;
            for l in 0..16 {
                s += y[4 + 16 * j + l] as i8 as i32 * vals[16 * j + l] as i32;
            }
            isum += (scales[j] as i32 - 32) * s;
        }
        sumf += f16_at(x, 108) * f32_at(y, 0) * isum as f32;
    }
    sumf
}

// ============================================================================ Q4_K / Q5_K

fn scales_mins_k45(scales: &[f32; 8], mins: &[f32; 8]) -> ([u8; 12], f16, f16) {
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    (
        pack_scales_k4(&ls, &lm),
        f16::from_f32(max_scale / 63.0),
        f16::from_f32(max_min / 63.0),
    )
}

/// Final requantization of Q4_K/Q5_K values with the packed scales/mins.
fn requant_k45(x: &[f32], l: &mut [u8; QK_K], s: &[u8; 12], d: f16, dmin: f16, nmax: i32) {
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, s);
        let dd = d.to_f32() * sc as f32;
        if dd == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / dd);
            l[32 * j + ii] = q.min(nmax).max(0) as u8;
        }
    }
}

fn ref_weights_k45(xs: &[f32]) -> [f32; 32] {
    let mut sum_x2 = 0.0f32;
    for &v in xs {
        sum_x2 += v * v;
    }
    let av_x = (sum_x2 / 32.0).sqrt();
    let mut w = [0.0f32; 32];
    for k in 0..32 {
        w[k] = av_x + xs[k].abs();
    }
    w
}

/// Shared body of `quantize_row_q{4,5}_K_impl`: returns (L, packed scales, d, dmin).
fn imatrix_k45(x: &[f32], qw: Option<&[f32]>, nmax: i32) -> ([u8; QK_K], [u8; 12], f16, f16) {
    let mut l = [0u8; QK_K];
    let mut sum_x2 = 0.0f32;
    for &v in &x[..QK_K] {
        sum_x2 += v * v;
    }
    let sigma2 = 2.0 * sum_x2 / QK_K as f32;
    let av_x = sigma2.sqrt();
    let mut sw = [0.0f32; 8];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut w = [0.0f32; 32];
        match qw {
            Some(q) => {
                for k in 0..32 {
                    w[k] = q[32 * j + k] * (sigma2 + xs[k] * xs[k]).sqrt();
                }
            }
            None => {
                for k in 0..32 {
                    w[k] = av_x + xs[k].abs();
                }
            }
        }
        let mut sumw = 0.0f32;
        for v in w {
            sumw += v;
        }
        sw[j] = sumw;
        let (s, m) = make_qkx3_quants(
            32,
            nmax,
            xs,
            Some(&w),
            &mut l[32 * j..32 * j + 32],
            -0.9,
            0.05,
            36,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let d_block = make_qp_quants(8, 63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(8, 63, &mins, &mut lm, &sw);
    for j in 0..8 {
        ls[j] = ls[j].min(63);
        lm[j] = lm[j].min(63);
    }
    let s = pack_scales_k4(&ls, &lm);
    let (d, dmin) = (f16::from_f32(d_block), f16::from_f32(m_block));
    requant_k45(x, &mut l, &s, d, dmin, nmax);
    (l, s, d, dmin)
}

fn pack_q4k(l: &[u8; QK_K], scales: [u8; 12], d: f16, dmin: f16) -> BlockQ4K {
    let mut qs = [0u8; QK_K / 2];
    for (c, j) in (0..QK_K).step_by(64).enumerate() {
        for k in 0..32 {
            qs[32 * c + k] = l[j + k] | (l[j + k + 32] << 4);
        }
    }
    BlockQ4K {
        d,
        dmin,
        scales,
        qs,
    }
}

/// ggml `quantize_row_q4_K_ref` for one super-block.
pub fn quantize_block_q4_k(x: &[f32]) -> BlockQ4K {
    let x = &x[..QK_K];
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let w = ref_weights_k45(xs);
        let (s, m) = make_qkx_quants(
            32,
            15,
            xs,
            Some(&w),
            &mut l[32 * j..32 * j + 32],
            -1.0,
            0.1,
            20,
            false,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let (s, d, dmin) = scales_mins_k45(&scales, &mins);
    requant_k45(x, &mut l, &s, d, dmin, 15);
    pack_q4k(&l, s, d, dmin)
}

fn pack_q5k(l: &[u8; QK_K], scales: [u8; 12], d: f16, dmin: f16) -> BlockQ5K {
    let mut qh = [0u8; 32];
    let mut qs = [0u8; QK_K / 2];
    let (mut m1, mut m2) = (1u8, 2u8);
    for (c, n) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let mut l1 = l[n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            qs[32 * c + j] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
    BlockQ5K {
        d,
        dmin,
        scales,
        qh,
        qs,
    }
}

/// ggml `quantize_row_q5_K_ref` for one super-block.
pub fn quantize_block_q5_k(x: &[f32]) -> BlockQ5K {
    let x = &x[..QK_K];
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let w = ref_weights_k45(xs);
        let (s, m) = make_qkx_quants(
            32,
            31,
            xs,
            Some(&w),
            &mut l[32 * j..32 * j + 32],
            -0.5,
            0.1,
            15,
            false,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let (s, d, dmin) = scales_mins_k45(&scales, &mins);
    requant_k45(x, &mut l, &s, d, dmin, 31);
    pack_q5k(&l, s, d, dmin)
}

fn dequantize_q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        let min = f16_at(b, 2);
        let sc = &b[4..16];
        for c in 0..4 {
            let q = &b[16 + 32 * c..48 + 32 * c];
            let (s1, m1) = get_scale_min_k4(2 * c, sc);
            let (s2, m2) = get_scale_min_k4(2 * c + 1, sc);
            let (d1, m1) = (d * s1 as f32, min * m1 as f32);
            let (d2, m2) = (d * s2 as f32, min * m2 as f32);
            for l in 0..32 {
                y[64 * c + l] = d1 * (q[l] & 0xf) as f32 - m1;
                y[64 * c + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

fn dequantize_q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(176).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        let min = f16_at(b, 2);
        let sc = &b[4..16];
        let qh = &b[16..48];
        let (mut u1, mut u2) = (1u8, 2u8);
        for c in 0..4 {
            let ql = &b[48 + 32 * c..80 + 32 * c];
            let (s1, m1) = get_scale_min_k4(2 * c, sc);
            let (s2, m2) = get_scale_min_k4(2 * c + 1, sc);
            let (d1, m1) = (d * s1 as f32, min * m1 as f32);
            let (d2, m2) = (d * s2 as f32, min * m2 as f32);
            for l in 0..32 {
                let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                y[64 * c + l] = d1 * ((ql[l] & 0xf) + h1) as f32 - m1;
                y[64 * c + 32 + l] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

#[inline(always)]
fn bsums(y: &[u8]) -> [i32; 16] {
    let mut s = [0i32; 16];
    for (j, v) in s.iter_mut().enumerate() {
        *v = i16::from_le_bytes([y[260 + 2 * j], y[261 + 2 * j]]) as i32;
    }
    s
}

/// ggml `ggml_vec_dot_q4_K_q8_K` (generic; exact integer sums per block).
pub(crate) fn vec_dot_q4_k_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(144).zip(a.chunks_exact(292)).take(n / QK_K) {
        let sc = &x[4..16];
        let bs = bsums(y);
        let mut sumi_m = 0i32;
        let mut isum = 0i32;
        for j in 0..8 {
            let (s, m) = get_scale_min_k4(j, sc);
            sumi_m += (bs[2 * j] + bs[2 * j + 1]) * m as i32;
            let q = &x[16 + 32 * (j / 2)..48 + 32 * (j / 2)];
            let shift = 4 * (j % 2);
            let mut t = 0i32;
            for l in 0..32 {
                t += ((q[l] >> shift) & 0xf) as i32 * y[4 + 32 * j + l] as i8 as i32;
            }
            isum += s as i32 * t;
        }
        let yd = f32_at(y, 0);
        sumf += f16_at(x, 0) * yd * isum as f32;
        sumf -= f16_at(x, 2) * yd * sumi_m as f32;
    }
    sumf
}

/// ggml `ggml_vec_dot_q5_K_q8_K` (generic; exact integer sums per block).
pub(crate) fn vec_dot_q5_k_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(176).zip(a.chunks_exact(292)).take(n / QK_K) {
        let sc = &x[4..16];
        let qh = &x[16..48];
        let bs = bsums(y);
        let mut sumi_m = 0i32;
        let mut isum = 0i32;
        for j in 0..8 {
            let (s, m) = get_scale_min_k4(j, sc);
            sumi_m += (bs[2 * j] + bs[2 * j + 1]) * m as i32;
            let q = &x[48 + 32 * (j / 2)..80 + 32 * (j / 2)];
            let shift = 4 * (j % 2);
            let hbit = 1u8 << j;
            let mut t = 0i32;
            for l in 0..32 {
                let v = ((q[l] >> shift) & 0xf) as i32 + if qh[l] & hbit != 0 { 16 } else { 0 };
                t += v * y[4 + 32 * j + l] as i8 as i32;
            }
            isum += s as i32 * t;
        }
        let yd = f32_at(y, 0);
        sumf += f16_at(x, 0) * yd * isum as f32;
        sumf -= f16_at(x, 2) * yd * sumi_m as f32;
    }
    sumf
}

// ============================================================================ Q6_K

fn q6k_pack(l: &[i8; QK_K], scales: [i8; 16], d: f16) -> BlockQ6K {
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for (c, j) in (0..QK_K).step_by(128).enumerate() {
        for k in 0..32 {
            let q1 = l[j + k] as u8 & 0xf;
            let q2 = l[j + k + 32] as u8 & 0xf;
            let q3 = l[j + k + 64] as u8 & 0xf;
            let q4 = l[j + k + 96] as u8 & 0xf;
            ql[64 * c + k] = q1 | (q3 << 4);
            ql[64 * c + k + 32] = q2 | (q4 << 4);
            qh[32 * c + k] = (l[j + k] as u8 >> 4)
                | ((l[j + k + 32] as u8 >> 4) << 2)
                | ((l[j + k + 64] as u8 >> 4) << 4)
                | ((l[j + k + 96] as u8 >> 4) << 6);
        }
    }
    BlockQ6K { ql, qh, scales, d }
}

fn quantize_block_q6_k_with(x: &[f32], qw: Option<&[f32]>) -> BlockQ6K {
    let x = &x[..QK_K];
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ib in 0..16 {
        let w = qw.map(|q| &q[16 * ib..16 * ib + 16]);
        let s = make_qx_quants(16, 32, &x[16 * ib..], &mut l[16 * ib..16 * ib + 16], 1, w);
        scales[ib] = s;
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        return BlockQ6K {
            ql: [0; 128],
            qh: [0; 64],
            scales: [0; 16],
            d: f16::from_f32(0.0),
        };
    }
    let iscale = -128.0f32 / max_scale;
    let d = f16::from_f32(1.0 / iscale);
    let mut sc = [0i8; 16];
    for ib in 0..16 {
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
    }
    for j in 0..16 {
        let dd = d.to_f32() * sc[j] as f32;
        if dd == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / dd).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    q6k_pack(&l, sc, d)
}

/// ggml `quantize_row_q6_K_ref` for one super-block.
pub fn quantize_block_q6_k(x: &[f32]) -> BlockQ6K {
    quantize_block_q6_k_with(x, None)
}

fn dequantize_q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 208);
        for c in 0..2 {
            let ql = &b[64 * c..64 * c + 64];
            let qh = &b[128 + 32 * c..160 + 32 * c];
            let sc = &b[192 + 8 * c..200 + 8 * c];
            let yb = &mut y[128 * c..128 * c + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                yb[l] = d * sc[is] as i8 as f32 * q1 as f32;
                yb[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
                yb[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
                yb[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
            }
        }
    }
}

/// ggml `ggml_vec_dot_q6_K_q8_K` (generic; exact integer sums per block).
pub(crate) fn vec_dot_q6_k_ref(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(210).zip(a.chunks_exact(292)).take(n / QK_K) {
        let mut vals = [0i32; QK_K];
        for c in 0..2 {
            let ql = &x[64 * c..64 * c + 64];
            let qh = &x[128 + 32 * c..160 + 32 * c];
            for l in 0..32 {
                vals[128 * c + l] = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i32 - 32;
                vals[128 * c + l + 32] =
                    ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                vals[128 * c + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                vals[128 * c + l + 96] =
                    ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            }
        }
        let mut isum = 0i32;
        for j in 0..16 {
            let mut t = 0i32;
            for l in 0..16 {
                t += vals[16 * j + l] * y[4 + 16 * j + l] as i8 as i32;
            }
            isum += x[192 + j] as i8 as i32 * t;
        }
        sumf += f16_at(x, 208) * f32_at(y, 0) * isum as f32;
    }
    sumf
}

// ============================================================================ tables

macro_rules! row_fns {
    ($qref:ident, $qimat:ident, $bytes:expr, $block_ref:expr, $block_imat:expr) => {
        fn $qref(src: &[f32], dst: &mut [u8]) {
            for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut($bytes)) {
                put(y, $block_ref(x));
            }
        }
        fn $qimat(src: &[f32], dst: &mut [u8], qw: Option<&[f32]>) {
            let Some(qw) = qw else { return $qref(src, dst) };
            for ((x, y), q) in src
                .chunks_exact(QK_K)
                .zip(dst.chunks_exact_mut($bytes))
                .zip(qw.chunks_exact(QK_K))
            {
                put(y, $block_imat(x, q));
            }
        }
    };
}
row_fns!(
    quantize_row_q2_k_ref,
    quantize_q2_k,
    84,
    quantize_block_q2_k,
    quantize_block_q2_k_imatrix
);
row_fns!(
    quantize_row_q3_k_ref,
    quantize_q3_k,
    110,
    quantize_block_q3_k,
    quantize_block_q3_k_imatrix
);
row_fns!(
    quantize_row_q4_k_ref,
    quantize_q4_k,
    144,
    quantize_block_q4_k,
    |x: &[f32], q: &[f32]| {
        let (l, s, d, dmin) = imatrix_k45(x, Some(q), 15);
        pack_q4k(&l, s, d, dmin)
    }
);
row_fns!(
    quantize_row_q5_k_ref,
    quantize_q5_k,
    176,
    quantize_block_q5_k,
    |x: &[f32], q: &[f32]| {
        let (l, s, d, dmin) = imatrix_k45(x, Some(q), 31);
        pack_q5k(&l, s, d, dmin)
    }
);
row_fns!(
    quantize_row_q6_k_ref,
    quantize_q6_k,
    210,
    quantize_block_q6_k,
    |x: &[f32], q: &[f32]| { quantize_block_q6_k_with(x, Some(q)) }
);

macro_rules! dispatched {
    ($name:ident, $ty:expr) => {
        fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            crate::simd::vec_dot($ty, n, w, a)
        }
    };
}
dispatched!(dot_q2_k, GgmlType::Q2_K);
dispatched!(dot_q3_k, GgmlType::Q3_K);
dispatched!(dot_q4_k, GgmlType::Q4_K);
dispatched!(dot_q5_k, GgmlType::Q5_K);
dispatched!(dot_q6_k, GgmlType::Q6_K);

macro_rules! table {
    ($name:ident, $ty:expr, $deq:ident, $qref:ident, $qimat:ident, $dot:ident, $dref:ident) => {
        static $name: TypeKernels = TypeKernels {
            ty: $ty,
            vec_dot_type: GgmlType::Q8_K,
            dequantize_row: $deq,
            quantize_row: Some($qref),
            quantize_row_imatrix: Some($qimat),
            vec_dot: $dot,
            vec_dot_ref: $dref,
        };
    };
}
table!(
    Q2_K,
    GgmlType::Q2_K,
    dequantize_q2_k,
    quantize_row_q2_k_ref,
    quantize_q2_k,
    dot_q2_k,
    vec_dot_q2_k_ref
);
table!(
    Q3_K,
    GgmlType::Q3_K,
    dequantize_q3_k,
    quantize_row_q3_k_ref,
    quantize_q3_k,
    dot_q3_k,
    vec_dot_q3_k_ref
);
table!(
    Q4_K,
    GgmlType::Q4_K,
    dequantize_q4_k,
    quantize_row_q4_k_ref,
    quantize_q4_k,
    dot_q4_k,
    vec_dot_q4_k_ref
);
table!(
    Q5_K,
    GgmlType::Q5_K,
    dequantize_q5_k,
    quantize_row_q5_k_ref,
    quantize_q5_k,
    dot_q5_k,
    vec_dot_q5_k_ref
);
table!(
    Q6_K,
    GgmlType::Q6_K,
    dequantize_q6_k,
    quantize_row_q6_k_ref,
    quantize_q6_k,
    dot_q6_k,
    vec_dot_q6_k_ref
);

pub(crate) fn kernels(ty: GgmlType) -> Option<&'static TypeKernels> {
    match ty {
        GgmlType::Q2_K => Some(&Q2_K),
        GgmlType::Q3_K => Some(&Q3_K),
        GgmlType::Q4_K => Some(&Q4_K),
        GgmlType::Q5_K => Some(&Q5_K),
        GgmlType::Q6_K => Some(&Q6_K),
        GgmlType::Q8_K => crate::q8::kernels(ty),
        _ => None,
    }
}
