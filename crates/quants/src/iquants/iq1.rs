//! IQ1_S (1.5625 bpw) and IQ1_M (1.75 bpw): 8-wide ternary grid points (`iq1s_grid`, values
//! -1/0/+1) shifted by ±`IQ1S_DELTA`.

use super::grids::IQ1S_GRID;
use super::lattice::{self, Lattice};
use super::{cmax, f16_at, fp16_bits, gbyte64, nearest_int, q8k_block, u16_at, QK_K};
use half::f16;
use std::mem::size_of;

/// ggml `IQ1S_DELTA` / `IQ1M_DELTA`.
pub const IQ1S_DELTA: f32 = 0.125;
pub const IQ1M_DELTA: f32 = 0.125;

/// ggml `block_iq1_s`: `qh[ib]` = 3 high index bits ×4 | 3-bit scale << 12 | delta sign << 15.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq1S {
    pub d: f16,
    pub qs: [u8; QK_K / 8],
    pub qh: [u16; QK_K / 32],
}

/// ggml `block_iq1_m`: no separate `d`; the f16 super-scale is spread over the top nibbles
/// of the four `u16` words of `scales`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq1M {
    pub qs: [u8; QK_K / 8],
    pub qh: [u8; QK_K / 16],
    pub scales: [u8; QK_K / 32],
}

const _: () = assert!(size_of::<BlockIq1S>() == 50);
const _: () = assert!(size_of::<BlockIq1M>() == 56);
// SAFETY: repr(C), f16/u16/u8 fields whose sizes sum to the asserted size (no padding); every
// bit pattern is valid.
unsafe impl crate::q8::RawBlock for BlockIq1S {}
// SAFETY: as above.
unsafe impl crate::q8::RawBlock for BlockIq1M {}

const S_BYTES: usize = size_of::<BlockIq1S>();
const M_BYTES: usize = size_of::<BlockIq1M>();
const S_QH: usize = 34;
const M_QH: usize = 32;
const M_SCALES: usize = 48;

#[inline(always)]
fn gi8(g: u64, j: usize) -> i8 {
    gbyte64(g, j) as i8
}

/// The f16 super-scale of an IQ1_M block and its four scale words.
#[inline(always)]
fn iq1m_scale(b: &[u8]) -> (f32, [u16; 4]) {
    let sc: [u16; 4] = std::array::from_fn(|i| u16_at(b, M_SCALES + 2 * i));
    let u = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    (f16::from_bits(u).to_f32(), sc)
}

// ---------------------------------------------------------------------------------------------
// Dequantize.

pub(crate) fn dequantize_row_iq1_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(S_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for ib in 0..QK_K / 32 {
            let qh = u16_at(b, S_QH + 2 * ib);
            let dl = d * (2 * ((qh >> 12) & 7) as i32 + 1) as f32;
            let delta = if qh & 0x8000 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            };
            for l in 0..4 {
                let grid =
                    IQ1S_GRID[b[2 + 4 * ib + l] as usize | (((qh >> (3 * l)) & 7) as usize) << 8];
                let y = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
                for j in 0..8 {
                    y[j] = dl * (gi8(grid, j) as f32 + delta);
                }
            }
        }
    }
}

pub(crate) fn dequantize_row_iq1_m(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(M_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let (d, sc) = iq1m_scale(b);
        for ib in 0..QK_K / 32 {
            let s = sc[ib / 2] >> (6 * (ib % 2));
            let dl1 = d * (2 * (s & 7) as i32 + 1) as f32;
            let dl2 = d * (2 * ((s >> 3) & 7) as i32 + 1) as f32;
            let qs = &b[4 * ib..4 * ib + 4];
            let qh = &b[M_QH + 2 * ib..M_QH + 2 * ib + 2];
            let idx = [
                qs[0] as usize | ((qh[0] as usize) << 8) & 0x700,
                qs[1] as usize | ((qh[0] as usize) << 4) & 0x700,
                qs[2] as usize | ((qh[1] as usize) << 8) & 0x700,
                qs[3] as usize | ((qh[1] as usize) << 4) & 0x700,
            ];
            let delta = [
                if qh[0] & 0x08 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
                if qh[0] & 0x80 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
                if qh[1] & 0x08 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
                if qh[1] & 0x80 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
            ];
            for l in 0..4 {
                let dl = if l < 2 { dl1 } else { dl2 };
                let grid = IQ1S_GRID[idx[l]];
                let y = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
                for j in 0..8 {
                    y[j] = dl * (gi8(grid, j) as f32 + delta[l]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantize (ggml `quantize_row_iq1_s_impl`, `quantize_row_iq1_m_impl`).

/// ggml `iq1_find_best_neighbour2`: the neighbour minimising the weighted error of
/// `scale * xg[level]` against `xval`. (ggml aborts when every distance is NaN — only possible
/// for non-finite input; here the first neighbour is kept.)
fn find_best_neighbour2(
    neighbours: &[u16],
    grid: &[[i8; 8]],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
    xg: &[f32; 3],
    l: &mut [i8],
) -> usize {
    let mut best_score = f32::MAX;
    let mut grid_index = neighbours[1] as usize;
    for &j in &neighbours[1..] {
        let pg = &grid[j as usize];
        let mut d2 = 0.0f32;
        for i in 0..8 {
            let q = xg[((pg[i] - 1) / 2) as usize];
            let w = weight[i];
            let diff = scale * q - xval[i];
            d2 += w * diff * diff;
        }
        if d2 < best_score {
            best_score = d2;
            grid_index = j as usize;
        }
    }
    let pg = &grid[grid_index];
    for i in 0..8 {
        l[i] = (pg[i] - 1) / 2;
    }
    grid_index
}

#[inline(always)]
fn key2(l: &[i8]) -> usize {
    let mut u = 0usize;
    for (i, &v) in l.iter().enumerate().take(8) {
        u |= (v as usize) << (2 * i);
    }
    u
}

/// Ascending order of `xb` (value, then position: a stable sort; ggml uses `qsort`, whose
/// order among exactly equal values is unspecified).
fn sorted_order<const B: usize>(xb: &[f32]) -> [usize; B] {
    let mut idx: [usize; B] = std::array::from_fn(|i| i);
    idx.sort_by(|&a, &b| {
        xb[a]
            .partial_cmp(&xb[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    idx
}

/// Grid indices for the 8-groups of `l`, projecting off-grid groups; returns whether all were on
/// the grid.
fn project<const G: usize>(
    lat: &Lattice<8>,
    l: &mut [i8],
    xb: &[f32],
    weight: &[f32],
    scale: f32,
    xx_of: impl Fn(usize) -> [f32; 3],
) -> ([usize; G], bool) {
    let mut all_on_grid = true;
    let mut index = [0usize; G];
    for k in 0..G {
        let u = key2(&l[8 * k..8 * k + 8]);
        index[k] = if lat.map[u] >= 0 {
            lat.map[u] as usize
        } else {
            all_on_grid = false;
            find_best_neighbour2(
                lat.neighbours_of(u),
                &lat.grid,
                &xb[8 * k..],
                &weight[8 * k..],
                scale,
                &xx_of(k),
                &mut l[8 * k..8 * k + 8],
            )
        };
    }
    (index, all_on_grid)
}

/// ggml `quantize_iq1_s`. ggml requires an imatrix; `None` means unit importance.
pub(crate) fn quantize_iq1_s(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    const BS: usize = 32;
    let qwv = super::unit_weights(imatrix, src.len());
    let lat = lattice::iq1s();
    let x_p = [-1.0 + IQ1S_DELTA, IQ1S_DELTA, 1.0 + IQ1S_DELTA];
    let x_m = [-1.0 - IQ1S_DELTA, -IQ1S_DELTA, 1.0 - IQ1S_DELTA];
    for (ibl, (xbl, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(S_BYTES))
        .enumerate()
    {
        y.fill(0);
        let mut qh = [0u16; QK_K / 32];
        let mut scales = [0.0f32; QK_K / BS];
        let mut shifts = [0i8; QK_K / BS];
        let mut max_scale = 0.0f32;
        let mut sumx2 = 0.0f32;
        for &v in xbl {
            sumx2 += v * v;
        }
        let sigma2 = 2.0 * sumx2 / QK_K as f32;
        for ib in 0..QK_K / BS {
            let xb = &xbl[BS * ib..BS * ib + BS];
            let qw = &qwv[QK_K * ibl + BS * ib..QK_K * ibl + BS * ib + BS];
            let weight: [f32; BS] =
                std::array::from_fn(|i| qw[i] * (sigma2 + xb[i] * xb[i]).sqrt());
            let mut max = xb[0].abs();
            for &v in &xb[1..] {
                max = cmax(max, v.abs());
            }
            if max < super::GROUP_MAX_EPS_IQ1_S {
                scales[ib] = 0.0;
                shifts[ib] = 1;
                continue;
            }
            let idx = sorted_order::<BS>(xb);
            let mut sumx = [0.0f32; BS + 1];
            let mut sumw = [0.0f32; BS + 1];
            for j in 0..BS {
                let i = idx[j];
                sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                sumw[j + 1] = sumw[j] + weight[i];
            }
            let mut best_score = -f32::MAX;
            let mut scale = max;
            let (mut besti1, mut besti2, mut best_shift) = (-1i32, -1i32, 0i32);
            for i1 in 0..=BS {
                for i2 in i1..=BS {
                    for (xs, shift) in [(&x_p, 1), (&x_m, -1)] {
                        let sumqx = (sumx[i1] - sumx[0]) * xs[0]
                            + (sumx[i2] - sumx[i1]) * xs[1]
                            + (sumx[BS] - sumx[i2]) * xs[2];
                        let sumq2 = (sumw[i1] - sumw[0]) * xs[0] * xs[0]
                            + (sumw[i2] - sumw[i1]) * xs[1] * xs[1]
                            + (sumw[BS] - sumw[i2]) * xs[2] * xs[2];
                        if sumq2 > 0.0 && sumqx * sumqx > best_score * sumq2 {
                            scale = sumqx / sumq2;
                            best_score = scale * sumqx;
                            besti1 = i1 as i32;
                            besti2 = i2 as i32;
                            best_shift = shift;
                        }
                    }
                }
            }
            if besti1 < 0 || besti2 < 0 || best_shift == 0 {
                scales[ib] = 0.0;
                shifts[ib] = 1;
                continue;
            }
            let mut l = [0i8; BS];
            for (j, &i) in idx.iter().enumerate() {
                l[i] = if (j as i32) < besti1 {
                    0
                } else if (j as i32) < besti2 {
                    1
                } else {
                    2
                };
            }
            if scale < 0.0 {
                for v in l.iter_mut() {
                    *v = 2 - *v;
                }
                scale = -scale;
                best_shift = -best_shift;
            }
            let xx = if best_shift == 1 { x_p } else { x_m };
            let (index, all_on_grid) = project::<4>(lat, &mut l, xb, &weight, scale, |_| xx);
            if !all_on_grid {
                let mut sumqx = 0.0f32;
                let mut sumq2 = 0.0f32;
                for k in 0..BS / 8 {
                    let pg = &lat.grid[index[k]];
                    for j in 0..8 {
                        let w = weight[8 * k + j];
                        let q = xx[((pg[j] - 1) / 2) as usize];
                        sumqx += w * q * xb[8 * k + j];
                        sumq2 += w * q * q;
                    }
                }
                if sumqx > 0.0 && sumq2 > 0.0 {
                    scale = sumqx / sumq2;
                }
            }
            let mut h = 0u16;
            for k in 0..BS / 8 {
                y[2 + (BS / 8) * ib + k] = (index[k] & 255) as u8;
                h |= ((index[k] >> 8) as u16) << (3 * k);
            }
            qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = best_shift as i8;
            max_scale = cmax(max_scale, scale);
        }
        if max_scale != 0.0 {
            let d = max_scale / 15.0;
            y[0..2].copy_from_slice(&fp16_bits(d * 1.125f32));
            let id = 1.0 / d;
            for ib in 0..QK_K / BS {
                let mut l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 7);
                if shifts[ib] == -1 {
                    l |= 8;
                }
                qh[ib] |= (l as u16) << 12;
            }
        }
        for (i, v) in qh.iter().enumerate() {
            y[S_QH + 2 * i..S_QH + 2 * i + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// ggml `quantize_iq1_m`. ggml accepts no imatrix here (weights `x²`).
pub(crate) fn quantize_iq1_m(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    const BS: usize = 16;
    let lat = lattice::iq1s();
    let x_p = [-1.0 + IQ1M_DELTA, IQ1M_DELTA, 1.0 + IQ1M_DELTA];
    let x_m = [-1.0 - IQ1M_DELTA, -IQ1M_DELTA, 1.0 - IQ1M_DELTA];
    let masks = [0x00u8, 0x80, 0x08, 0x88];
    let xx_for = |shift: i32, k: usize| -> [f32; 3] {
        if k == 0 {
            if shift < 2 {
                x_p
            } else {
                x_m
            }
        } else if shift % 2 == 0 {
            x_p
        } else {
            x_m
        }
    };
    let weights_of = |ibl: usize, ib: usize, xb: &[f32], sigma2: f32| -> [f32; BS] {
        match imatrix {
            Some(w) => {
                let qw = &w[QK_K * ibl + BS * ib..QK_K * ibl + BS * ib + BS];
                std::array::from_fn(|i| qw[i] * (sigma2 + xb[i] * xb[i]).sqrt())
            }
            None => std::array::from_fn(|i| xb[i] * xb[i]),
        }
    };
    for (ibl, (xbl, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(M_BYTES))
        .enumerate()
    {
        y.fill(0);
        let mut scales = [0.0f32; QK_K / BS];
        let mut shifts = [0i32; QK_K / BS];
        let mut max_scale = 0.0f32;
        let mut sumx2 = 0.0f32;
        for &v in xbl {
            sumx2 += v * v;
        }
        let sigma2 = 2.0 * sumx2 / QK_K as f32;
        for ib in 0..QK_K / BS {
            let xb = &xbl[BS * ib..BS * ib + BS];
            let weight = weights_of(ibl, ib, xb, sigma2);
            let mut max = xb[0].abs();
            for &v in &xb[1..] {
                max = cmax(max, v.abs());
            }
            if max < super::GROUP_MAX_EPS_IQ1_M {
                scales[ib] = 0.0;
                shifts[ib] = 0;
                continue;
            }
            let idx = sorted_order::<BS>(xb);
            let mut best_score = -f32::MAX;
            let mut scale = max;
            let (mut besti1, mut besti2, mut best_k) = (-1i32, -1i32, -1i32);
            let mut px = [[0.0f32; BS + 1]; 2];
            let mut pw = [[0.0f32; BS + 1]; 2];
            for j in 0..BS {
                let i = idx[j];
                let h = if i < BS / 2 { 0 } else { 1 };
                px[h][j + 1] = px[h][j] + weight[i] * xb[i];
                px[1 - h][j + 1] = px[1 - h][j];
                pw[h][j + 1] = pw[h][j] + weight[i];
                pw[1 - h][j + 1] = pw[1 - h][j];
            }
            let txs = [px[0][BS], px[1][BS]];
            let tws = [pw[0][BS], pw[1][BS]];
            let (p2, m2) = (x_p[2], x_m[2]);
            let cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1];
            let cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
            let cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1];
            let cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
            for i1 in 0..=BS {
                for i2 in i1..=BS {
                    let mut qx_p = [0.0f32; 2];
                    let mut qx_m = [0.0f32; 2];
                    let mut q2_p = [0.0f32; 2];
                    let mut q2_m = [0.0f32; 2];
                    for h in 0..2 {
                        let sx = px[h][i1] + px[h][i2];
                        qx_p[h] = txs[h] * p2 - sx;
                        qx_m[h] = txs[h] * m2 - sx;
                        q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                        q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                    }
                    let sumqx = [
                        qx_p[0] + qx_p[1],
                        qx_p[0] + qx_m[1],
                        qx_m[0] + qx_p[1],
                        qx_m[0] + qx_m[1],
                    ];
                    let sumq2 = [
                        q2_p[0] + q2_p[1],
                        q2_p[0] + q2_m[1],
                        q2_m[0] + q2_p[1],
                        q2_m[0] + q2_m[1],
                    ];
                    for k in 0..4 {
                        if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best_score * sumq2[k] {
                            scale = sumqx[k] / sumq2[k];
                            best_score = scale * sumqx[k];
                            besti1 = i1 as i32;
                            besti2 = i2 as i32;
                            best_k = k as i32;
                        }
                    }
                }
            }
            if besti1 < 0 || besti2 < 0 || best_k < 0 {
                scales[ib] = 0.0;
                shifts[ib] = 0;
                continue;
            }
            let mut l = [0i8; BS];
            for (j, &i) in idx.iter().enumerate() {
                l[i] = if (j as i32) < besti1 {
                    0
                } else if (j as i32) < besti2 {
                    1
                } else {
                    2
                };
            }
            if scale < 0.0 {
                for v in l.iter_mut() {
                    *v = 2 - *v;
                }
                scale = -scale;
                best_k = 3 - best_k;
            }
            let (index, all_on_grid) =
                project::<2>(lat, &mut l, xb, &weight, scale, |k| xx_for(best_k, k));
            if !all_on_grid {
                let mut sumqx_f = 0.0f32;
                let mut sumq2_f = 0.0f32;
                for k in 0..BS / 8 {
                    let xx = xx_for(best_k, k);
                    let pg = &lat.grid[index[k]];
                    for j in 0..8 {
                        let w = weight[8 * k + j];
                        let q = xx[((pg[j] - 1) / 2) as usize];
                        sumqx_f += w * q * xb[8 * k + j];
                        sumq2_f += w * q * q;
                    }
                }
                if sumqx_f > 0.0 && sumq2_f > 0.0 {
                    scale = sumqx_f / sumq2_f;
                }
            }
            y[2 * ib] = (index[0] & 255) as u8;
            y[2 * ib + 1] = (index[1] & 255) as u8;
            y[M_QH + ib] = ((index[0] >> 8) | ((index[1] >> 8) << 4)) as u8;
            scales[ib] = scale;
            shifts[ib] = best_k;
            max_scale = cmax(max_scale, scale);
        }
        if max_scale == 0.0 {
            continue;
        }
        let mut sc = [0u16; 4];
        let mut d = max_scale / 15.0;
        let id = 1.0 / d;
        let mut sumqx_f = 0.0f32;
        let mut sumq2_f = 0.0f32;
        for ib in 0..QK_K / BS {
            let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 7);
            sc[ib / 4] |= (l as u16) << (3 * (ib % 4));
            y[M_QH + ib] |= masks[shifts[ib] as usize];
            let xb = &xbl[BS * ib..BS * ib + BS];
            let weight = weights_of(ibl, ib, xb, sigma2);
            for k in 0..BS / 8 {
                let xx = xx_for(shifts[ib], k);
                let gi =
                    y[2 * ib + k] as usize + (((y[M_QH + ib] as usize) << (8 - 4 * k)) & 0x700);
                let pg = &lat.grid[gi];
                for j in 0..8 {
                    let w = weight[8 * k + j];
                    let q = xx[((pg[j] - 1) / 2) as usize] * (2 * l + 1) as f32;
                    sumqx_f += w * q * xb[8 * k + j];
                    sumq2_f += w * q * q;
                }
            }
        }
        if sumq2_f > 0.0 {
            d = sumqx_f / sumq2_f;
        }
        let s = f16::from_f32(d * 1.1125f32).to_bits();
        sc[0] |= (s & 0x000f) << 12;
        sc[1] |= (s & 0x00f0) << 8;
        sc[2] |= (s & 0x0f00) << 4;
        sc[3] |= s & 0xf000;
        for (i, v) in sc.iter().enumerate() {
            y[M_SCALES + 2 * i..M_SCALES + 2 * i + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dot products (ggml `ggml_vec_dot_iq1_s_q8_K_generic`, `ggml_vec_dot_iq1_m_q8_K_generic`).

pub(crate) fn vec_dot_iq1_s_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * S_BYTES..(i + 1) * S_BYTES];
        let (yd, q8, bsums) = q8k_block(act, i);
        let mut sumi = 0i32;
        let mut sumi1 = 0i32;
        for ib in 0..QK_K / 32 {
            let qh = u16_at(x, S_QH + 2 * ib);
            let ls = 2 * ((qh >> 12) & 7) as i32 + 1;
            let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
            let mut lsum = 0i32;
            for l in 0..4 {
                let grid =
                    IQ1S_GRID[x[2 + 4 * ib + l] as usize | (((qh >> (3 * l)) & 7) as usize) << 8];
                for j in 0..8 {
                    lsum += q8[32 * ib + 8 * l + j] as i8 as i32 * gi8(grid, j) as i32;
                }
            }
            sumi += ls * lsum;
            let bs = u16_at(bsums, 4 * ib) as i16 as i32 + u16_at(bsums, 4 * ib + 2) as i16 as i32;
            sumi1 += ls * delta * bs;
        }
        sumf += f16_at(x, 0) * yd * (sumi as f32 + IQ1S_DELTA * sumi1 as f32);
    }
    sumf
}

pub(crate) fn vec_dot_iq1_m_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * M_BYTES..(i + 1) * M_BYTES];
        let (yd, q8, _) = q8k_block(act, i);
        let (d, sc) = iq1m_scale(x);
        let mut sumi1 = 0i32;
        let mut sumi2 = 0i32;
        for ib in 0..QK_K / 32 {
            let qs = &x[4 * ib..4 * ib + 4];
            let qh = &x[M_QH + 2 * ib..M_QH + 2 * ib + 2];
            let delta = [
                if qh[0] & 0x08 != 0 { -1 } else { 1 },
                if qh[0] & 0x80 != 0 { -1 } else { 1 },
                if qh[1] & 0x08 != 0 { -1 } else { 1 },
                if qh[1] & 0x80 != 0 { -1 } else { 1 },
            ];
            let mut sum1 = [0i32; 2];
            let mut sum2 = [0i32; 2];
            for l in 0..4 {
                let gidx = qs[l] as usize | (((qh[l / 2] as usize) << (8 - 4 * (l % 2))) & 0x700);
                let grid = IQ1S_GRID[gidx];
                let mut lsum1 = 0i32;
                let mut lsum2 = 0i32;
                for j in 0..8 {
                    let a = q8[32 * ib + 8 * l + j] as i8 as i32;
                    lsum1 += a * gi8(grid, j) as i32;
                    lsum2 += a;
                }
                sum1[l / 2] += lsum1;
                sum2[l / 2] += lsum2 * delta[l];
            }
            let s = sc[ib / 2] >> (6 * (ib % 2));
            let ls1 = 2 * (s & 7) as i32 + 1;
            let ls2 = 2 * ((s >> 3) & 7) as i32 + 1;
            sumi1 += sum1[0] * ls1 + sum1[1] * ls2;
            sumi2 += sum2[0] * ls1 + sum2[1] * ls2;
        }
        sumf += d * yd * (sumi1 as f32 + IQ1M_DELTA * sumi2 as f32);
    }
    sumf
}
