//! IQ2_XXS (2.0625 bpw), IQ2_XS (2.3125 bpw) and IQ2_S (2.5625 bpw): 8-wide points of
//! E8-lattice-derived grids with separately stored signs.

use super::grids::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, KSIGNS_IQ2XS};
use super::lattice::{self, Lattice};
use super::{
    cmax, f16_at, fp16_bits, gbyte64, nearest_int, q8k_block, sign_f, sign_i, u16_at, u32_at, QK_K,
};
use half::f16;
use std::mem::size_of;

/// ggml `block_iq2_xxs`: per 32 values two `u32`: four 8-bit grid indices, then 4×7 sign bits
/// and a 4-bit scale.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq2Xxs {
    pub d: f16,
    pub qs: [u16; QK_K / 8],
}

/// ggml `block_iq2_xs`: `qs[i]` = 9-bit grid index | 7 sign bits << 9; 4-bit scale per 16.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq2Xs {
    pub d: f16,
    pub qs: [u16; QK_K / 8],
    pub scales: [u8; QK_K / 32],
}

/// ggml `block_iq2_s`: `qs[0..32]` low 8 index bits, `qs[32..64]` sign bytes, `qh` 2 high
/// index bits per group, 4-bit scales per 16.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockIq2S {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub scales: [u8; QK_K / 32],
}

const _: () = assert!(size_of::<BlockIq2Xxs>() == 66);
const _: () = assert!(size_of::<BlockIq2Xs>() == 74);
const _: () = assert!(size_of::<BlockIq2S>() == 82);
// SAFETY: repr(C), f16/u16/u8 fields whose sizes sum to the asserted size (no padding); every
// bit pattern is valid.
unsafe impl crate::q8::RawBlock for BlockIq2Xxs {}
// SAFETY: as above.
unsafe impl crate::q8::RawBlock for BlockIq2Xs {}
// SAFETY: as above.
unsafe impl crate::q8::RawBlock for BlockIq2S {}

const XXS_BYTES: usize = size_of::<BlockIq2Xxs>();
const XS_BYTES: usize = size_of::<BlockIq2Xs>();
const S_BYTES: usize = size_of::<BlockIq2S>();
const XS_SCALES: usize = 66;
const S_SIGNS: usize = 2 + QK_K / 8;
const S_QH: usize = 66;
const S_SCALES: usize = 74;

// ---------------------------------------------------------------------------------------------
// Dequantize.

pub(crate) fn dequantize_row_iq2_xxs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(XXS_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for ib32 in 0..QK_K / 32 {
            let aux1 = u32_at(b, 2 + 8 * ib32 + 4);
            let db = d * (0.5f32 + (aux1 >> 28) as f32) * 0.25f32;
            for l in 0..4 {
                let grid = IQ2XXS_GRID[b[2 + 8 * ib32 + l] as usize];
                let signs = KSIGNS_IQ2XS[((aux1 >> (7 * l)) & 127) as usize];
                let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
                for j in 0..8 {
                    y[j] = db * gbyte64(grid, j) as f32 * sign_f(signs, j);
                }
            }
        }
    }
}

pub(crate) fn dequantize_row_iq2_xs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(XS_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for ib32 in 0..QK_K / 32 {
            let sc = b[XS_SCALES + ib32];
            let db = [
                d * (0.5f32 + (sc & 0xf) as f32) * 0.25f32,
                d * (0.5f32 + (sc >> 4) as f32) * 0.25f32,
            ];
            for l in 0..4 {
                let q = u16_at(b, 2 + 2 * (4 * ib32 + l));
                let grid = IQ2XS_GRID[(q & 511) as usize];
                let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
                let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
                for j in 0..8 {
                    y[j] = db[l / 2] * gbyte64(grid, j) as f32 * sign_f(signs, j);
                }
            }
        }
    }
}

/// Grid index of 8-group `l` of 32-block `ib32` of an IQ2_S block.
#[inline(always)]
fn iq2s_index(b: &[u8], ib32: usize, l: usize) -> usize {
    b[2 + 4 * ib32 + l] as usize | ((b[S_QH + ib32] as usize) << (8 - 2 * l)) & 0x300
}

pub(crate) fn dequantize_row_iq2_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(S_BYTES).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 0);
        for ib32 in 0..QK_K / 32 {
            let sc = b[S_SCALES + ib32];
            let db = [
                d * (0.5f32 + (sc & 0xf) as f32) * 0.25f32,
                d * (0.5f32 + (sc >> 4) as f32) * 0.25f32,
            ];
            for l in 0..4 {
                let dl = db[l / 2];
                let grid = IQ2S_GRID[iq2s_index(b, ib32, l)];
                let signs = b[S_SIGNS + 4 * ib32 + l];
                let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
                for j in 0..8 {
                    y[j] = dl * gbyte64(grid, j) as f32 * sign_f(signs, j);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantize (ggml `quantize_row_iq2_xxs_impl`, `quantize_row_iq2_xs_impl`,
// `quantize_row_iq2_s_impl`).

/// ggml `iq2_find_best_neighbour`.
fn find_best_neighbour(
    neighbours: &[u16],
    grid: &[[i8; 8]],
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
        for i in 0..8 {
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

/// Rounds `xval` to levels 0..=2 at inverse scale `id` (ggml's `nearest_int(0.5f*(id*x-1))`).
#[inline(always)]
fn round_levels(id: f32, xval: &[f32], out: &mut [i8]) {
    for i in 0..8 {
        let l = nearest_int(0.5f32 * (id * xval[i] - 1.0));
        out[i] = l.clamp(0, 2) as i8;
    }
}

fn weighted_sums(weight: &[f32], xval: &[f32], l: &[i8]) -> (f32, f32) {
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for i in 0..weight.len() {
        let w = weight[i];
        let q = (2 * l[i] as i32 + 1) as f32;
        sumqx += w * xval[i] * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// Signs of 8-groups with ggml's parity fix (an odd number of negatives flips the
/// least important element back), returning the 7 stored sign bits per group.
fn signs_with_parity(xb: &[f32], weight: &[f32], xval: &mut [f32], block_signs: &mut [u8]) {
    for k in 0..xb.len() / 8 {
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
}

/// ggml `make_qp_quants` (all weights given; `x >= 0`).
fn make_qp_quants(nmax: i32, x: &[f32], l_out: &mut [u8], quant_weights: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for &v in x {
        max = cmax(max, v);
    }
    if max < super::GROUP_MAX_EPS {
        l_out.fill(0);
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
        let w = quant_weights[i];
        best_mse += w * diff * diff;
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
            let w = quant_weights[i];
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        l_out[i] = l as u8;
        let w = quant_weights[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = quant_weights[i];
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l_out[i] as i32 {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
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

fn sumx2_of(xbl: &[f32]) -> f32 {
    let mut sumx2 = 0.0f32;
    for &v in xbl {
        sumx2 += v * v;
    }
    sumx2
}

/// Scale search + grid projection for one 32-group of IQ2_XXS. Returns the scale (possibly
/// negative) and the 4 grid indices.
fn search_xxs(
    lat: &Lattice<8>,
    xval: &[f32; 32],
    weight: &[f32; 32],
    waux: &[f32; 32],
) -> Option<(f32, [usize; 4])> {
    const K_MAX_Q: i32 = 3;
    let mut l = [0i8; 32];
    let mut lu = [0u8; 32];
    let mut scale = make_qp_quants(K_MAX_Q + 1, xval, &mut lu, weight);
    let eff_max = scale * K_MAX_Q as f32;
    if eff_max <= 0.0 {
        return None;
    }
    for (a, b) in l.iter_mut().zip(lu) {
        *a = b as i8;
    }
    let mut laux = [0i8; 32];
    let mut best = 0.0f32;
    for is in -6i32..=6 {
        let id = ((2 * K_MAX_Q - 1) as f32 + is as f32 * 0.1f32) / eff_max;
        let this_scale = 1.0 / id;
        for k in 0..4 {
            round_levels(id, &xval[8 * k..], &mut laux[8 * k..8 * k + 8]);
            let u = key2(&laux[8 * k..8 * k + 8]);
            if lat.map[u] < 0 {
                find_best_neighbour(
                    lat.neighbours_of(u),
                    &lat.grid,
                    &xval[8 * k..],
                    &waux[8 * k..],
                    this_scale,
                    &mut laux[8 * k..8 * k + 8],
                );
            }
        }
        let (sumqx, sumq2) = weighted_sums(weight, xval, &laux);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l = laux;
        }
    }
    if scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..4 {
            let mut lv = [0i8; 8];
            round_levels(id, &xval[8 * k..], &mut lv);
            let u = key2(&lv);
            let gi = if lat.map[u] >= 0 {
                lat.map[u] as usize
            } else {
                find_best_neighbour(
                    lat.neighbours_of(u),
                    &lat.grid,
                    &xval[8 * k..],
                    &waux[8 * k..],
                    scale,
                    &mut l[8 * k..8 * k + 8],
                )
            };
            let pg = &lat.grid[gi];
            for i in 0..8 {
                l[8 * k + i] = (pg[i] - 1) / 2;
            }
        }
        let (sumqx, sumq2) = weighted_sums(weight, xval, &l);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    Some((scale, grid_indices::<4>(lat, &l)))
}

fn grid_indices<const G: usize>(lat: &Lattice<8>, l: &[i8]) -> [usize; G] {
    std::array::from_fn(|k| {
        let u = key2(&l[8 * k..8 * k + 8]);
        let gi = lat.map[u];
        assert!(gi >= 0, "iq2: point {u} not on grid");
        gi as usize
    })
}

/// Scale search + projection for one 16-group (IQ2_XS and IQ2_S share it).
fn search16(
    lat: &Lattice<8>,
    xval: &[f32; 16],
    weight: &[f32; 16],
    waux: &[f32; 16],
    max: f32,
) -> (f32, [usize; 2]) {
    const K_MAX_Q: i32 = 3;
    let mut l = [0i8; 16];
    let mut laux = [0i8; 16];
    let mut best = 0.0f32;
    let mut scale = max / (2 * K_MAX_Q - 1) as f32;
    let mut is_on_grid = [true; 2];
    let mut is_on_grid_aux = [true; 2];
    for is in -9i32..=9 {
        let id = ((2 * K_MAX_Q - 1) as f32 + is as f32 * 0.1f32) / max;
        let this_scale = 1.0 / id;
        for k in 0..2 {
            round_levels(id, &xval[8 * k..], &mut laux[8 * k..8 * k + 8]);
            let u = key2(&laux[8 * k..8 * k + 8]);
            is_on_grid_aux[k] = true;
            if lat.map[u] < 0 {
                is_on_grid_aux[k] = false;
                find_best_neighbour(
                    lat.neighbours_of(u),
                    &lat.grid,
                    &xval[8 * k..],
                    &waux[8 * k..],
                    this_scale,
                    &mut laux[8 * k..8 * k + 8],
                );
            }
        }
        let (sumqx, sumq2) = weighted_sums(weight, xval, &laux);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l = laux;
            is_on_grid = is_on_grid_aux;
        }
    }
    if is_on_grid.iter().any(|&b| !b) && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..2 {
            if is_on_grid[k] {
                continue;
            }
            round_levels(id, &xval[8 * k..], &mut l[8 * k..8 * k + 8]);
            let u = key2(&l[8 * k..8 * k + 8]);
            if lat.map[u] < 0 {
                find_best_neighbour(
                    lat.neighbours_of(u),
                    &lat.grid,
                    &xval[8 * k..],
                    &waux[8 * k..],
                    scale,
                    &mut l[8 * k..8 * k + 8],
                );
            }
        }
        let (sumqx, sumq2) = weighted_sums(weight, xval, &l);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    (scale, grid_indices::<2>(lat, &l))
}

/// ggml `quantize_iq2_xxs`. ggml requires an imatrix; `None` means unit importance
/// (see `super::unit_weights`).
pub(crate) fn quantize_iq2_xxs(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    let qwv = super::unit_weights(imatrix, src.len());
    let lat = lattice::iq2xxs();
    for (ibl, (xbl, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(XXS_BYTES))
        .enumerate()
    {
        y.fill(0);
        let mut q2 = [0u32; 2 * (QK_K / 32)];
        let mut scales = [0.0f32; QK_K / 32];
        let mut max_scale = 0.0f32;
        let sigma2 = sumx2_of(xbl) / QK_K as f32;
        for ib in 0..QK_K / 32 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            let qw = &qwv[QK_K * ibl + 32 * ib..QK_K * ibl + 32 * ib + 32];
            let weight: [f32; 32] =
                std::array::from_fn(|i| qw[i] * (sigma2 + xb[i] * xb[i]).sqrt());
            let waux = weight.map(f32::sqrt);
            let mut xval = [0.0f32; 32];
            let mut block_signs = [0u8; 4];
            signs_with_parity(xb, &weight, &mut xval, &mut block_signs);
            let mut max = xval[0];
            for &v in &xval[1..] {
                max = cmax(max, v);
            }
            if max < super::GROUP_MAX_EPS {
                scales[ib] = 0.0;
                continue;
            }
            let Some((mut scale, gi)) = search_xxs(lat, &xval, &weight, &waux) else {
                scales[ib] = 0.0;
                continue;
            };
            if scale < 0.0 {
                scale = -scale;
                for s in block_signs.iter_mut() {
                    *s = !*s & 127;
                }
            }
            for k in 0..4 {
                q2[2 * ib] |= (gi[k] as u32) << (8 * k);
                q2[2 * ib + 1] |= (block_signs[k] as u32) << (7 * k);
            }
            scales[ib] = scale;
            max_scale = cmax(max_scale, scale);
        }
        if max_scale == 0.0 {
            continue;
        }
        let d = max_scale / 31.0;
        y[0..2].copy_from_slice(&fp16_bits(d));
        let id = 1.0 / d;
        for ib in 0..QK_K / 32 {
            let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15);
            q2[2 * ib + 1] |= (l as u32) << 28;
        }
        for (i, v) in q2.iter().enumerate() {
            y[2 + 4 * i..6 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// ggml `quantize_iq2_xs`. ggml requires an imatrix; `None` means unit importance.
pub(crate) fn quantize_iq2_xs(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    let qwv = super::unit_weights(imatrix, src.len());
    let lat = lattice::iq2xs();
    for (ibl, (xbl, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(XS_BYTES))
        .enumerate()
    {
        y.fill(0);
        let mut q2 = [0u16; 2 * (QK_K / 16)];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let sigma2 = sumx2_of(xbl) / QK_K as f32;
        for ib in 0..QK_K / 16 {
            let xb = &xbl[16 * ib..16 * ib + 16];
            let qw = &qwv[QK_K * ibl + 16 * ib..QK_K * ibl + 16 * ib + 16];
            let weight: [f32; 16] =
                std::array::from_fn(|i| qw[i] * (sigma2 + xb[i] * xb[i]).sqrt());
            let waux = weight.map(f32::sqrt);
            let mut xval = [0.0f32; 16];
            let mut block_signs = [0u8; 2];
            signs_with_parity(xb, &weight, &mut xval, &mut block_signs);
            let mut max = xval[0];
            for &v in &xval[1..] {
                max = cmax(max, v);
            }
            if max < super::GROUP_MAX_EPS {
                scales[ib] = 0.0;
                continue;
            }
            let (mut scale, gi) = search16(lat, &xval, &weight, &waux, max);
            if scale < 0.0 {
                scale = -scale;
                for s in block_signs.iter_mut() {
                    *s = !*s & 127;
                }
            }
            for k in 0..2 {
                q2[2 * ib + k] = gi[k] as u16 | (block_signs[k] as u16) << 9;
            }
            scales[ib] = scale;
            max_scale = cmax(max_scale, scale);
        }
        if max_scale == 0.0 {
            continue;
        }
        let d = max_scale / 31.0;
        y[0..2].copy_from_slice(&fp16_bits(d));
        let id = 1.0 / d;
        for ib in 0..QK_K / 16 {
            let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15) as u8;
            if ib % 2 == 0 {
                y[XS_SCALES + ib / 2] = l;
            } else {
                y[XS_SCALES + ib / 2] |= l << 4;
            }
        }
        for (i, v) in q2.iter().enumerate() {
            y[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// ggml `quantize_iq2_s` (= `quantize_row_iq2_s_ref` without imatrix).
pub(crate) fn quantize_iq2_s(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    let lat = lattice::iq2s();
    for (ibl, (xbl, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(S_BYTES))
        .enumerate()
    {
        y.fill(0);
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let sigma2 = 2.0 * sumx2_of(xbl) / QK_K as f32;
        for ib in 0..QK_K / 16 {
            let xb = &xbl[16 * ib..16 * ib + 16];
            let weight: [f32; 16] = match imatrix {
                Some(w) => {
                    let qw = &w[QK_K * ibl + 16 * ib..QK_K * ibl + 16 * ib + 16];
                    std::array::from_fn(|i| qw[i] * (sigma2 + xb[i] * xb[i]).sqrt())
                }
                None => std::array::from_fn(|i| 0.25f32 * sigma2 + xb[i] * xb[i]),
            };
            let waux = weight.map(f32::sqrt);
            let mut xval = [0.0f32; 16];
            let mut block_signs = [0u8; 2];
            for k in 0..2 {
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
            if max < super::GROUP_MAX_EPS_IQ2_S {
                scales[ib] = 0.0;
                continue;
            }
            let (mut scale, gi) = search16(lat, &xval, &weight, &waux, max);
            if scale < 0.0 {
                scale = -scale;
                for s in block_signs.iter_mut() {
                    *s = !*s;
                }
            }
            for k in 0..2 {
                let i8 = 2 * ib + k;
                y[2 + i8] = (gi[k] & 255) as u8;
                y[S_QH + i8 / 4] |= ((gi[k] >> 8) as u8) << (2 * (i8 % 4));
                y[S_SIGNS + i8] = block_signs[k];
            }
            scales[ib] = scale;
            max_scale = cmax(max_scale, scale);
        }
        if max_scale == 0.0 {
            continue;
        }
        let d = max_scale / 31.0;
        y[0..2].copy_from_slice(&fp16_bits(d * 0.9875f32));
        let id = 1.0 / d;
        for ib in 0..QK_K / 16 {
            let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15) as u8;
            if ib % 2 == 0 {
                y[S_SCALES + ib / 2] = l;
            } else {
                y[S_SCALES + ib / 2] |= l << 4;
            }
        }
    }
}

pub(crate) fn quantize_row_iq2_s(src: &[f32], dst: &mut [u8]) {
    quantize_iq2_s(src, dst, None)
}

// ---------------------------------------------------------------------------------------------
// Dot products (ggml `ggml_vec_dot_iq2_{xxs,xs,s}_q8_K_generic`).

#[inline(always)]
fn dot8(grid: u64, signs: u8, q8: &[u8]) -> i32 {
    let mut s = 0i32;
    for j in 0..8 {
        s += gbyte64(grid, j) as i32 * q8[j] as i8 as i32 * sign_i(signs, j);
    }
    s
}

pub(crate) fn vec_dot_iq2_xxs_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * XXS_BYTES..(i + 1) * XXS_BYTES];
        let (yd, q8, _) = q8k_block(act, i);
        let d = f16_at(x, 0) * yd;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let aux1 = u32_at(x, 2 + 8 * ib32 + 4);
            let ls = 2 * (aux1 >> 28) as i32 + 1;
            let mut sumi = 0i32;
            for l in 0..4 {
                let grid = IQ2XXS_GRID[x[2 + 8 * ib32 + l] as usize];
                let signs = KSIGNS_IQ2XS[((aux1 >> (7 * l)) & 127) as usize];
                sumi += dot8(grid, signs, &q8[32 * ib32 + 8 * l..]);
            }
            bsum += sumi * ls;
        }
        sumf += d * bsum as f32;
    }
    0.125f32 * sumf
}

pub(crate) fn vec_dot_iq2_xs_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * XS_BYTES..(i + 1) * XS_BYTES];
        let (yd, q8, _) = q8k_block(act, i);
        let d = f16_at(x, 0) * yd;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let sc = x[XS_SCALES + ib32];
            let ls = [2 * (sc & 0xf) as i32 + 1, 2 * (sc >> 4) as i32 + 1];
            for half in 0..2 {
                let mut sumi = 0i32;
                for l in 2 * half..2 * half + 2 {
                    let q = u16_at(x, 2 + 2 * (4 * ib32 + l));
                    let grid = IQ2XS_GRID[(q & 511) as usize];
                    let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
                    sumi += dot8(grid, signs, &q8[32 * ib32 + 8 * l..]);
                }
                bsum += sumi * ls[half];
            }
        }
        sumf += d * bsum as f32;
    }
    0.125f32 * sumf
}

pub(crate) fn vec_dot_iq2_s_q8_k(n: usize, w: &[u8], act: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for i in 0..nb {
        let x = &w[i * S_BYTES..(i + 1) * S_BYTES];
        let (yd, q8, _) = q8k_block(act, i);
        let d = f16_at(x, 0) * yd;
        let mut bsum = 0i32;
        for ib32 in 0..QK_K / 32 {
            let sc = x[S_SCALES + ib32];
            let ls1 = 1 + 2 * (sc & 0xf) as i32;
            let ls2 = 1 + 2 * (sc >> 4) as i32;
            let mut sumi = [0i32; 2];
            for l in 0..4 {
                let grid = IQ2S_GRID[iq2s_index(x, ib32, l)];
                let signs = x[S_SIGNS + 4 * ib32 + l];
                sumi[l / 2] += dot8(grid, signs, &q8[32 * ib32 + 8 * l..]);
            }
            bsum += ls1 * sumi[0] + ls2 * sumi[1];
        }
        sumf += d * bsum as f32;
    }
    0.125f32 * sumf
}
