//! The 4-row interleaved weight layout ("x4") for matrix-vector products.
//!
//! A one-token product streams every weight byte once from DRAM, and with four rows in four
//! separate streams the kernels spend their time gathering each block's scale and quants
//! from four places (inserts and shuffles on the one shuffle port) rather than multiplying.
//! Packed, the four rows of a group sit side by side block by block: one 64-byte load holds
//! the quants of four rows, one 8–16-byte load their scales. llama.cpp repacks Q4_0/Q4_K the
//! same way for the same reason (`block_q4_0x8`, `block_q4_Kx8`, 8 rows); we interleave 4
//! rows because a 512-bit register holds 4 × 16 bytes.
//!
//! Layout: rows are taken in groups of 4; group `g` occupies exactly the bytes rows
//! `4g..4g+4` occupy unpacked, so a packed tensor has the same size and any 4-aligned run of
//! rows is still a contiguous byte range. Inside a group, block `b` of the four rows becomes
//! one group block of `4 × block bytes`: each field of the block (scale, scales, quants) in
//! turn, cut into `unit`-byte pieces, piece `k` of rows 0, 1, 2, 3, then piece `k + 1`:
//!
//! | type | block fields (bytes: unit) | group block |
//! |---|---|---|
//! | Q4_0 | d (2: 2), qs (16: 16) | d0 d1 d2 d3 · qs0 qs1 qs2 qs3 (72 B) |
//! | Q4_1 | d+m (4: 4), qs (16: 16) | dm0..dm3 · qs0..qs3 (80 B) |
//! | Q5_0 | d (2: 2), qh (4: 4), qs (16: 16) | d0..d3 · qh0..qh3 · qs0..qs3 (88 B) |
//! | Q5_1 | d+m (4: 4), qh (4: 4), qs (16: 16) | dm0..dm3 · qh0..qh3 · qs0..qs3 (96 B) |
//! | Q8_0 | d (2: 2), qs (32: 16) | d0..d3 · qs0[..16]..qs3[..16] · qs0[16..]..qs3[16..] (136 B) |
//! | Q4_K | d+dmin (4: 4), scales (12: 12), qs (128: 16) | dm0..dm3 · sc0..sc3 · 8 × (qs0..qs3 16 B each) (576 B) |
//!
//! The kernels ([`vec_dot_rows_x4`]) compute exactly the bits of the unpacked kernels
//! (`vec_dot_rows`): ggml's float order per output does not depend on where the bytes sit.

use crate::{check_len, kernels, row_bytes, GgmlType, QuantError};

/// Rows per interleaved group.
pub const GROUP: usize = 4;

/// Fields of one block as `(offset, len, unit)`: bytes `offset..offset + len` of each row's
/// block are interleaved across the group in `unit`-byte pieces.
type Fields = &'static [(usize, usize, usize)];

fn fields(ty: GgmlType) -> Option<Fields> {
    match ty {
        GgmlType::Q4_0 => Some(&[(0, 2, 2), (2, 16, 16)]),
        GgmlType::Q4_1 => Some(&[(0, 4, 4), (4, 16, 16)]),
        GgmlType::Q5_0 => Some(&[(0, 2, 2), (2, 4, 4), (6, 16, 16)]),
        GgmlType::Q5_1 => Some(&[(0, 4, 4), (4, 4, 4), (8, 16, 16)]),
        GgmlType::Q8_0 => Some(&[(0, 2, 2), (2, 32, 16)]),
        GgmlType::Q4_K => Some(&[(0, 4, 4), (4, 12, 12), (16, 128, 16)]),
        _ => None,
    }
}

/// Whether `ty` has the x4 layout (independent of the CPU; see [`has_kernels`]).
pub fn has_layout(ty: GgmlType) -> bool {
    fields(ty).is_some()
}

/// Whether this CPU has x4 kernels for `ty`: only then is packing a tensor worth it (other
/// CPUs run the packed rows through a copy back to the plain layout).
pub fn has_kernels(ty: GgmlType) -> bool {
    has_layout(ty) && crate::simd::has_x4_kernel(ty)
}

fn check_rows(
    ty: GgmlType,
    n: usize,
    src: &[u8],
    dst: &[u8],
) -> Result<(Fields, usize, usize), QuantError> {
    let f = fields(ty).ok_or(QuantError::Unsupported(ty))?;
    let rb = row_bytes(ty, n)?;
    let bs = ty.type_size();
    check_len(ty, "x4 destination", dst.len(), src.len())?;
    if rb == 0 || !src.len().is_multiple_of(rb * GROUP) {
        return Err(QuantError::BadLength {
            ty,
            what: "x4 rows (a multiple of 4 rows)",
            got: src.len(),
            expected: src.len().next_multiple_of((rb * GROUP).max(1)),
        });
    }
    Ok((f, rb, bs))
}

/// Interleave `src` (whole groups of 4 rows of `n` elements of `ty`, plain layout) into `dst`
/// (same size).
pub fn pack_rows(ty: GgmlType, n: usize, src: &[u8], dst: &mut [u8]) -> Result<(), QuantError> {
    interleave(ty, n, src, dst, true)
}

/// The inverse of [`pack_rows`].
pub fn unpack_rows(ty: GgmlType, n: usize, src: &[u8], dst: &mut [u8]) -> Result<(), QuantError> {
    interleave(ty, n, src, dst, false)
}

/// Both directions of the layout: `pack` moves plain bytes to their x4 place, else back.
fn interleave(
    ty: GgmlType,
    n: usize,
    src: &[u8],
    dst: &mut [u8],
    pack: bool,
) -> Result<(), QuantError> {
    let (f, rb, bs) = check_rows(ty, n, src, dst)?;
    for (gs, gd) in src
        .chunks_exact(rb * GROUP)
        .zip(dst.chunks_exact_mut(rb * GROUP))
    {
        for b in 0..rb / bs {
            let mut x = b * bs * GROUP;
            for &(off, len, unit) in f {
                for k in 0..len / unit {
                    for r in 0..GROUP {
                        let p = r * rb + b * bs + off + k * unit;
                        let (s, d) = if pack { (p, x) } else { (x, p) };
                        gd[d..d + unit].copy_from_slice(&gs[s..s + unit]);
                        x += unit;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Row `r` of packed rows `w_rows` (`n` elements of `ty` per row) in the plain layout, into
/// `dst` (one row's bytes): lookups (`get_rows`) straight from a packed tensor.
pub fn copy_row(
    ty: GgmlType,
    n: usize,
    w_rows: &[u8],
    r: usize,
    dst: &mut [u8],
) -> Result<(), QuantError> {
    let f = fields(ty).ok_or(QuantError::Unsupported(ty))?;
    let rb = row_bytes(ty, n)?;
    check_len(ty, "row", dst.len(), rb)?;
    let (g, j) = (r / GROUP, r % GROUP);
    let Some(group) = w_rows.get(g * rb * GROUP..(g + 1) * rb * GROUP) else {
        return Err(QuantError::BadLength {
            ty,
            what: "x4 rows (row index past the end)",
            got: w_rows.len(),
            expected: (g + 1) * rb * GROUP,
        });
    };
    let bs = ty.type_size();
    for b in 0..rb / bs {
        // Field `off` starts at `GROUP·off` in the group block (fields are contiguous).
        for &(off, len, unit) in f {
            for k in 0..len / unit {
                let s = b * bs * GROUP + GROUP * off + (k * GROUP + j) * unit;
                let d = b * bs + off + k * unit;
                dst[d..d + unit].copy_from_slice(&group[s..s + unit]);
            }
        }
    }
    Ok(())
}

/// `out[r]` = packed weight row `r` · `act`, for `out.len()` rows (a multiple of 4) of `n`
/// elements in the x4 layout: the same bits as [`crate::vec_dot_rows`] on the unpacked rows.
pub fn vec_dot_rows_x4(
    ty: GgmlType,
    n: usize,
    w_rows: &[u8],
    act: &[u8],
    out: &mut [f32],
) -> Result<(), QuantError> {
    let k = kernels(ty)?;
    if fields(ty).is_none() {
        return Err(QuantError::Unsupported(ty));
    }
    let rb = row_bytes(ty, n)?;
    check_len(ty, "x4 weight rows", w_rows.len(), rb * out.len())?;
    if !out.len().is_multiple_of(GROUP) {
        return Err(QuantError::BadLength {
            ty,
            what: "x4 rows (a multiple of 4 rows)",
            got: out.len(),
            expected: out.len().next_multiple_of(GROUP),
        });
    }
    check_len(
        k.vec_dot_type,
        "activation",
        act.len(),
        row_bytes(k.vec_dot_type, n)?,
    )?;
    if crate::simd::vec_dot_rows_x4(ty, n, rb, w_rows, act, out) {
        return Ok(());
    }
    // No kernels for this layout here: unpack one group at a time.
    let mut tmp = vec![0u8; rb * GROUP];
    for (g, o) in w_rows
        .chunks_exact(rb * GROUP)
        .zip(out.chunks_exact_mut(GROUP))
    {
        unpack_rows(ty, n, g, &mut tmp)?;
        crate::simd::vec_dot_rows(ty, n, rb, &tmp, act, o);
    }
    Ok(())
}
