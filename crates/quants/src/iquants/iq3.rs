//! IQ3_XXS (3.0625 bpw) and IQ3_S (3.4375 bpw): 4-wide points of a D4-based grid with
//! separately stored signs.

use super::grids::{IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS};
use super::lattice::{self, Lattice};
use super::{
    cmax, f16_at, fp16_bits, gbyte32, nearest_int, q8k_block, sign_f, sign_i, u32_at, QK_K,
};
use half::f16;
use std::mem::size_of;

/// ggml `block_iq3_xxs`: `qs[0..64]` grid indices, then 8 `u32` of 4×7 sign bits + 4-bit scale.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq3Xxs {
    pub d: f16,
    pub qs: [u8; 3 * QK_K / 8],
}

/// ggml `IQ3S_N_SCALE`.
pub const IQ3S_N_SCALE: usize = QK_K / 64;

/// ggml `block_iq3_s`: 9-bit grid indices (`qs` + `qh`), explicit sign bytes, 4-bit scales.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq3S {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub signs: [u8; QK_K / 8],
    pub scales: [u8; IQ3S_N_SCALE],
}

const _: () = assert!(size_of::<BlockIq3Xxs>() == 98);
const _: () = assert!(size_of::<BlockIq3S>() == 110);
// SAFETY: repr(C), f16/u8 fields whose sizes sum to the asserted size (no padding); every bit
// pattern is valid.
unsafe impl crate::q8::RawBlock for BlockIq3Xxs {}
// SAFETY: as above.
unsafe impl crate::q8::RawBlock for BlockIq3S {}

const XXS_BYTES: usize = size_of::<BlockIq3Xxs>();
const S_BYTES: usize = size_of::<BlockIq3S>();
// Field offsets of block_iq3_s.
const S_QS: usize = 2;
const S_QH: usize = 66;
const S_SIGNS: usize = 74;
const S_SCALES: usize = 106;

// ---------------------------------------------------------------------------------------------
// Dequantize.

pub(crate) fn dequantize_row_iq3_xxs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(XXS_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for ib32 in 0..QK_K / 32 {
            let qs = &b[2 + 8 * ib32..2 + 8 * ib32 + 8];
            let aux32 = u32_at(b, 2 + QK_K / 4 + 4 * ib32);
            let db = d * (0.5f32 + (aux32 >> 28) as f32) * 0.5f32;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux32 >> (7 * l)) & 127) as usize];
                let g1 = IQ3XXS_GRID[qs[2 * l] as usize];
                let g2 = IQ3XXS_GRID[qs[2 * l + 1] as usize];
                let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
                for j in 0..4 {
                    y[j] = db * gbyte32(g1, j) as f32 * sign_f(signs, j);
                    y[j + 4] = db * gbyte32(g2, j) as f32 * sign_f(signs, j + 4);
                }
            }
        }
    }
}

/// Grid index of 4-group `k` (0..64) of an IQ3_S block.
#[inline(always)]
fn iq3s_index(b: &[u8], k: usize) -> usize {
    b[S_QS + k] as usize | (((b[S_QH + k / 8] >> (k % 8)) & 1) as usize) << 8
}

pub(crate) fn dequantize_row_iq3_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(S_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for ib32 in 0..QK_K / 32 {
            let sc = b[S_SCALES + ib32 / 2];
            let s = if ib32 % 2 == 0 { sc & 0xf } else { sc >> 4 };
            let db = d * (1 + 2 * s as i32) as f32;
            for l in 0..4 {
                let signs = b[S_SIGNS + 4 * ib32 + l];
                let g1 = IQ3S_GRID[iq3s_index(b, 8 * ib32 + 2 * l)];
                let g2 = IQ3S_GRID[iq3s_index(b, 8 * ib32 + 2 * l + 1)];
                let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
                for j in 0..4 {
                    y[j] = db * gbyte32(g1, j) as f32 * sign_f(signs, j);
                    y[j + 4] = db * gbyte32(g2, j) as f32 * sign_f(signs, j + 4);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantize (ggml `quantize_row_iq3_xxs_impl`, `quantize_row_iq3_s_impl`).

/// ggml `iq3_find_best_neighbour`: the neighbour minimising the weighted squared error at
/// `scale`; writes its levels to `l` and returns its grid index.
fn find_best_neighbour(
    neighbours: &[u16],
    grid: &[[i8; 4]],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
    l: &mut [i8],
) -> usize {
    // ggml aborts if no distance is below FLT_MAX (only possible for non-finite input); here
    // the first neighbour is kept instead.
    let mut best_d2 = f32::MAX;
    let mut grid_index = neighbours[1] as usize;
    for &j in &neighbours[1..] {
        let pg = &grid[j as usize];
        let mut d2 = 0.0f32;
        for i in 0..4 {
            let q = pg[i] as f32;
            let diff = scale * q - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if d2 < best_d2 {
            best_d2 = d2;
            grid_index = j as usize;
        }
    }
    let pg = &grid[grid_index];
    for i in 0..4 {
        l[i] = (pg[i] - 1) / 2;
    }
    grid_index
}

/// Packed level key of 4 levels (3 bits each).
#[inline(always)]
fn key3(l: &[i8]) -> usize {
    let mut u = 0usize;
    for (i, &v) in l.iter().enumerate().take(4) {
        u |= (v as usize) << (3 * i);
    }
    u
}

/// Result of the per-32 search shared by IQ3_XXS and IQ3_S.
struct Sub32 {
    scale: f32,
    grid_idx: [usize; 8],
}

/// The scale search + grid projection for one 32-element group (the body of ggml's per-`ib`
/// loop, after signs/`xval`/`max` are known). `xxs` selects IQ3_XXS's variant (31 trials,
/// only off-grid groups re-projected) vs IQ3_S's (19 trials, all groups re-projected).
fn search32(
    lat: &Lattice<4>,
    xval: &[f32; 32],
    weight: &[f32; 32],
    waux: &[f32; 32],
    max: f32,
    xxs: bool,
) -> Sub32 {
    const K_MAX_Q: i32 = 8;
    let mut l_best = [0i8; 32];
    let mut laux = [0i8; 32];
    // ggml starts IQ3_XXS with every group "on grid" and IQ3_S with none.
    let mut is_on_grid = [xxs; 8];
    let mut is_on_grid_aux = [true; 8];
    let mut best = 0.0f32;
    let mut scale = max / (2 * K_MAX_Q - 1) as f32;
    let (lo, hi) = if xxs { (-15, 15) } else { (-9, 9) };
    for is in lo..=hi {
        let id = ((2 * K_MAX_Q - 1) as f32 + is as f32 * 0.2f32) / max;
        let this_scale = 1.0 / id;
        for k in 0..8 {
            for i in 0..4 {
                let l = nearest_int(0.5f32 * (id * xval[4 * k + i] - 1.0));
                laux[4 * k + i] = l.clamp(0, K_MAX_Q - 1) as i8;
            }
            let u = key3(&laux[4 * k..4 * k + 4]);
            is_on_grid_aux[k] = true;
            if lat.map[u] < 0 {
                is_on_grid_aux[k] = false;
                find_best_neighbour(
                    lat.neighbours_of(u),
                    &lat.grid,
                    &xval[4 * k..],
                    &waux[4 * k..],
                    this_scale,
                    &mut laux[4 * k..4 * k + 4],
                );
            }
        }
        let mut sumqx = 0.0f32;
        let mut sumq2 = 0.0f32;
        for i in 0..32 {
            let w = weight[i];
            let q = (2 * laux[i] as i32 + 1) as f32;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l_best = laux;
            is_on_grid = is_on_grid_aux;
        }
    }
    let n_not_ongrid = is_on_grid.iter().filter(|&&b| !b).count();
    if n_not_ongrid > 0 && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..8 {
            if xxs && is_on_grid[k] {
                continue;
            }
            let mut u = 0usize;
            for i in 0..4 {
                let l = nearest_int(0.5f32 * (id * xval[4 * k + i] - 1.0)).clamp(0, K_MAX_Q - 1);
                u |= (l as usize) << (3 * i);
            }
            let gi = if lat.map[u] >= 0 {
                lat.map[u] as usize
            } else {
                find_best_neighbour(
                    lat.neighbours_of(u),
                    &lat.grid,
                    &xval[4 * k..],
                    &waux[4 * k..],
                    scale,
                    &mut l_best[4 * k..4 * k + 4],
                )
            };
            let pg = &lat.grid[gi];
            for i in 0..4 {
                l_best[4 * k + i] = (pg[i] - 1) / 2;
            }
        }
        let mut sumqx = 0.0f32;
        let mut sumq2 = 0.0f32;
        for i in 0..32 {
            let w = weight[i];
            let q = (2 * l_best[i] as i32 + 1) as f32;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    let mut grid_idx = [0usize; 8];
    for k in 0..8 {
        let u = key3(&l_best[4 * k..4 * k + 4]);
        let gi = lat.map[u];
        assert!(gi >= 0, "iq3: point {u} not on grid");
        grid_idx[k] = gi as usize;
    }
    Sub32 { scale, grid_idx }
}

/// Weights and |x| for one 32-group: `weight = qw·sqrt(sigma2 + x²)` or `x²`.
fn weights32(xb: &[f32], qw: Option<&[f32]>, sigma2: f32) -> ([f32; 32], [f32; 32]) {
    let mut weight = [0.0f32; 32];
    match qw {
        Some(qw) => {
            for i in 0..32 {
                weight[i] = qw[i] * (sigma2 + xb[i] * xb[i]).sqrt();
            }
        }
        None => {
            for i in 0..32 {
                weight[i] = xb[i] * xb[i];
            }
        }
    }
    let waux = weight.map(f32::sqrt);
    (weight, waux)
}

fn sigma2_of(xbl: &[f32]) -> f32 {
    let mut sumx2 = 0.0f32;
    for &v in xbl {
        sumx2 += v * v;
    }
    2.0 * sumx2 / QK_K as f32
}

/// ggml `quantize_iq3_xxs` (`quantize_row_iq3_xxs_impl(256, ..)`), optional imatrix.
pub(crate) fn quantize_iq3_xxs(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    let lat = lattice::iq3xxs();
    for (ibl, (xbl, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(XXS_BYTES))
        .enumerate()
    {
        y.fill(0);
        let mut q3 = [0u8; 3 * QK_K / 8];
        let mut scales_and_signs = [0u32; QK_K / 32];
        let mut scales = [0.0f32; QK_K / 32];
        let mut max_scale = 0.0f32;
        let sigma2 = sigma2_of(xbl);
        for ib in 0..QK_K / 32 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            let qw = imatrix.map(|w| &w[QK_K * ibl + 32 * ib..QK_K * ibl + 32 * ib + 32]);
            let (weight, waux) = weights32(xb, qw, sigma2);
            let mut xval = [0.0f32; 32];
            let mut block_signs = [0u8; 4];
            for k in 0..4 {
                let mut nflip = 0;
                let mut s = 0u8;
                for i in 0..8 {
                    if xb[8 * k + i] >= 0.0 {
                        xval[8 * k + i] = xb[8 * k + i];
                    } else {
                        xval[8 * k + i] = -xb[8 * k + i];
                        nflip += 1;
                        s |= 1 << i;
                    }
                }
                if nflip % 2 != 0 {
                    let mut imin = 0;
                    let mut min = weight[8 * k] * xb[8 * k] * xb[8 * k];
                    for i in 1..8 {
                        let ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                        if ax < min {
                            min = ax;
                            imin = i;
                        }
                    }
                    xval[8 * k + imin] = -xval[8 * k + imin];
                    s ^= 1 << imin;
                }
                block_signs[k] = s & 127;
            }
            let mut max = xval[0];
            for &v in &xval[1..] {
                max = cmax(max, v);
            }
            if max < super::GROUP_MAX_EPS_IQ3_XXS {
                scales[ib] = 0.0;
                continue;
            }
            let r = search32(lat, &xval, &weight, &waux, max, true);
            let mut scale = r.scale;
            if scale < 0.0 {
                scale = -scale;
                for s in block_signs.iter_mut() {
                    *s = !*s & 127;
                }
            }
            for k in 0..8 {
                q3[8 * ib + k] = r.grid_idx[k] as u8;
            }
            scales_and_signs[ib] = block_signs[0] as u32
                | (block_signs[1] as u32) << 7
                | (block_signs[2] as u32) << 14
                | (block_signs[3] as u32) << 21;
            scales[ib] = scale;
            max_scale = cmax(max_scale, scale);
        }
        if max_scale == 0.0 {
            continue;
        }
        let d = max_scale / 31.0;
        y[0..2].copy_from_slice(&fp16_bits(d * 1.0125f32));
        let id = 1.0 / d;
        for ib in 0..QK_K / 32 {
            let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15);
            scales_and_signs[ib] |= (l as u32) << 28;
        }
        y[2..2 + QK_K / 4].copy_from_slice(&q3[..QK_K / 4]);
        for (ib, s) in scales_and_signs.iter().enumerate() {
            y[2 + QK_K / 4 + 4 * ib..2 + QK_K / 4 + 4 * ib + 4].copy_from_slice(&s.to_le_bytes());
        }
    }
}

pub(crate) fn quantize_row_iq3_xxs(src: &[f32], dst: &mut [u8]) {
    quantize_iq3_xxs(src, dst, None)
}

/// ggml `quantize_iq3_s` (`quantize_row_iq3_s_impl` with `IQ3S_BLOCK_SIZE = 32`).
pub(crate) fn quantize_iq3_s(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    let lat = lattice::iq3s();
    for (ibl, (xbl, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(S_BYTES))
        .enumerate()
    {
        y.fill(0);
        let mut scales = [0.0f32; QK_K / 32];
        let mut max_scale = 0.0f32;
        let sigma2 = sigma2_of(xbl);
        // ggml advances its `qs` / `signs` write pointers only for groups it encodes, so an
        // all-zero group shifts the later groups' indices and signs down (while `qh` bits use
        // the absolute group number). Reproduced as is for bit-exactness.
        let mut qs_pos = 0usize;
        let mut signs_pos = 0usize;
        for ib in 0..QK_K / 32 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            let qw = imatrix.map(|w| &w[QK_K * ibl + 32 * ib..QK_K * ibl + 32 * ib + 32]);
            let (weight, waux) = weights32(xb, qw, sigma2);
            let mut xval = [0.0f32; 32];
            let mut block_signs = [0u8; 4];
            for k in 0..4 {
                let mut s = 0u8;
                for i in 0..8 {
                    if xb[8 * k + i] >= 0.0 {
                        xval[8 * k + i] = xb[8 * k + i];
                    } else {
                        xval[8 * k + i] = -xb[8 * k + i];
                        s |= 1 << i;
                    }
                }
                block_signs[k] = s;
            }
            let mut max = xval[0];
            for &v in &xval[1..] {
                max = cmax(max, v);
            }
            if max == 0.0 {
                scales[ib] = 0.0;
                continue;
            }
            let r = search32(lat, &xval, &weight, &waux, max, false);
            let mut scale = r.scale;
            if scale < 0.0 {
                scale = -scale;
                for s in block_signs.iter_mut() {
                    *s = !*s;
                }
            }
            for k in 0..8 {
                let gi = r.grid_idx[k];
                y[S_QS + qs_pos + k] = (gi & 255) as u8;
                y[S_QH + (ib * 8 + k) / 8] |= ((gi >> 8) as u8) << ((ib * 8 + k) % 8);
            }
            qs_pos += 8;
            y[S_SIGNS + signs_pos..S_SIGNS + signs_pos + 4].copy_from_slice(&block_signs);
            signs_pos += 4;
            scales[ib] = scale;
            max_scale = cmax(max_scale, scale);
        }
        if max_scale == 0.0 {
            continue;
        }
        let d = max_scale / 31.0;
        y[0..2].copy_from_slice(&fp16_bits(d * 1.033f32));
        let id = 1.0 / d;
        for ib in (0..QK_K / 32).step_by(2) {
            let l1 = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15);
            let l2 = nearest_int(0.5f32 * (id * scales[ib + 1] - 1.0)).clamp(0, 15);
            y[S_SCALES + ib / 2] = (l1 | (l2 << 4)) as u8;
        }
    }
}

pub(crate) fn quantize_row_iq3_s(src: &[f32], dst: &mut [u8]) {
    quantize_iq3_s(src, dst, None)
}

// ---------------------------------------------------------------------------------------------
// Dot products (ggml `ggml_vec_dot_iq3_xxs_q8_K_generic`, `ggml_vec_dot_iq3_s_q8_K_generic`).

pub(crate) fn vec_dot_iq3_xxs_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * XXS_BYTES..(i + 1) * XXS_BYTES];
        let (yd, q8, _) = q8k_block(act, i);
        let d = f16_at(x, 0) * yd;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let q3 = &x[2 + 8 * ib32..2 + 8 * ib32 + 8];
            let aux32 = u32_at(x, 2 + QK_K / 4 + 4 * ib32);
            let ls = 2 * (aux32 >> 28) as i32 + 1;
            let mut sumi = 0i32;
            for l in 0..4 {
                let g1 = IQ3XXS_GRID[q3[2 * l] as usize];
                let g2 = IQ3XXS_GRID[q3[2 * l + 1] as usize];
                let signs = KSIGNS_IQ2XS[((aux32 >> (7 * l)) & 127) as usize];
                let q8 = &q8[32 * ib32 + 8 * l..];
                for j in 0..4 {
                    sumi += gbyte32(g1, j) as i32 * q8[j] as i8 as i32 * sign_i(signs, j);
                    sumi += gbyte32(g2, j) as i32 * q8[j + 4] as i8 as i32 * sign_i(signs, j + 4);
                }
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    0.25f32 * sumf
}

pub(crate) fn vec_dot_iq3_s_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * S_BYTES..(i + 1) * S_BYTES];
        let (yd, q8, _) = q8k_block(act, i);
        let d = f16_at(x, 0) * yd;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let sc = x[S_SCALES + ib32 / 2];
            let ls = 2 * (if ib32 % 2 == 0 { sc & 0xf } else { sc >> 4 }) as i32 + 1;
            let mut sumi = 0i32;
            for l in 0..4 {
                let g1 = IQ3S_GRID[iq3s_index(x, 8 * ib32 + 2 * l)];
                let g2 = IQ3S_GRID[iq3s_index(x, 8 * ib32 + 2 * l + 1)];
                let signs = x[S_SIGNS + 4 * ib32 + l];
                let q8 = &q8[32 * ib32 + 8 * l..];
                for j in 0..4 {
                    sumi += gbyte32(g1, j) as i32 * q8[j] as i8 as i32 * sign_i(signs, j);
                    sumi += gbyte32(g2, j) as i32 * q8[j + 4] as i8 as i32 * sign_i(signs, j + 4);
                }
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    sumf
}
