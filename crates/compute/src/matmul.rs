//! Quantized weight × f32 activations, ggml's `mul_mat`: the activations are quantized once to
//! the weight type's `vec_dot_type`, then the weight rows are split across threads and each
//! row, once loaded, is dotted with every token of the batch (prompt processing reuses each
//! weight row from cache; generation streams the weights once: memory-bound).

use crate::pool::{SendPtr, ThreadPool};
use crate::ComputeError;
use ferrite_quants::packed::GROUP;
use ferrite_quants::{kernels, row_bytes, GgmlType};

/// A 2-D weight: `rows` rows of `cols` elements of type `ty`, `data` in place (the mmap), or
/// in the 4-row interleaved layout (`packed`, see `ferrite_quants::packed`).
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
    /// `data` is in the x4 layout (`rows` a multiple of 4): matrix-vector products run the
    /// x4 kernels, GEMM tiles unpack 16 rows at a time. Same bytes per row either way.
    pub packed: bool,
}

impl<'a> WeightView<'a> {
    pub fn new(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: &'a [u8],
    ) -> Result<Self, ComputeError> {
        let rb = row_bytes(ty, cols)?;
        if data.len() != rb * rows {
            return Err(ComputeError::Shape {
                what: "weight bytes",
                expected: rb * rows,
                got: data.len(),
            });
        }
        Ok(WeightView {
            ty,
            rows,
            cols,
            data,
            packed: false,
        })
    }

    /// A weight in the x4 layout (`ferrite_quants::packed::pack_rows`).
    pub fn new_packed(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: &'a [u8],
    ) -> Result<Self, ComputeError> {
        let mut w = Self::new(ty, rows, cols, data)?;
        if !ferrite_quants::packed::has_layout(ty) || !rows.is_multiple_of(GROUP) {
            return Err(ComputeError::Shape {
                what: "x4 weight rows (a multiple of 4, of a type with the x4 layout)",
                expected: rows.next_multiple_of(GROUP),
                got: rows,
            });
        }
        w.packed = true;
        Ok(w)
    }

    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }

    /// Rows `start..start+n` as their own view (e.g. one expert of a stacked 3-D tensor).
    /// Packed views split at whole groups only (a caller bug otherwise).
    pub fn rows_view(&self, start: usize, n: usize) -> WeightView<'a> {
        assert!(
            !self.packed || (start.is_multiple_of(GROUP) && n.is_multiple_of(GROUP)),
            "x4 weight split inside a 4-row group"
        );
        let rb = self.row_bytes();
        WeightView {
            ty: self.ty,
            rows: n,
            cols: self.cols,
            data: &self.data[start * rb..(start + n) * rb],
            packed: self.packed,
        }
    }
}

/// Reusable buffer for the quantized activations (sized once per context).
#[derive(Default)]
pub struct MatmulScratch {
    act: Vec<u8>,
    /// Per-thread output tiles of the GEMM path (`TILE_ROWS × n_tokens`), grown once.
    tiles: Vec<Vec<f32>>,
    /// Per token, which of llama.cpp's batched kernels it would go through ([`BATCHED_GEMM4`],
    /// [`BATCHED_GE8`]); empty: none (every token summed as alone).
    batched: Vec<u8>,
    /// Per (weight, token) of the current op: the batched order applies.
    alt: Vec<bool>,
    /// Per-thread plain-layout copies of `TILE_ROWS` packed weight rows (GEMM path).
    unpacked: Vec<Vec<u8>>,
}

/// The token is in the first `n − n % 4` of its sequence's `n` tokens in the batch: llama.cpp
/// runs repacked Q4_K (rows a multiple of 8) through its 4-column GEMM there, the GEMV on the
/// rest.
pub const BATCHED_GEMM4: u8 = 1;
/// The token's sequence has ≥ 8 tokens in the batch: llama.cpp runs Q6_K through its tiled
/// K-quant GEMM then, `vec_dot` below.
pub const BATCHED_GE8: u8 = 2;
/// The token's sequence has ≥ 64 tokens in the batch: llama.cpp's tiled flash attention
/// (`crate::attention_tiled`); matmuls ignore it.
pub const BATCHED_GE64: u8 = 4;

impl MatmulScratch {
    /// Room for `n_tokens` rows of `cols` elements in any vec_dot type (Q8_K/F32 are the
    /// largest per element: F32 at 4 bytes).
    pub fn with_capacity(n_tokens: usize, cols: usize) -> Self {
        MatmulScratch {
            act: vec![0u8; n_tokens * cols * 4 + 1024],
            ..Default::default()
        }
    }

    /// Sum the next products' tokens in llama.cpp's batch-dependent float order: `flags[t]`
    /// (`BATCHED_*` bits) for token `t` (see `ferrite_quants::vec_dot_tile_batched`). Callers
    /// derive the flags per sequence, so a sequence's numbers never depend on other
    /// sequences in the batch. An empty slice turns it off.
    pub fn set_batched(&mut self, flags: &[u8]) {
        self.batched.clear();
        self.batched.extend_from_slice(flags);
    }
}

/// The `BATCHED_*` bit that selects a batched order for weights of type `ty` with `rows` rows.
fn batched_bit(ty: GgmlType, rows: usize) -> u8 {
    match ty {
        GgmlType::Q4_K if rows.is_multiple_of(8) => BATCHED_GEMM4,
        GgmlType::Q6_K => BATCHED_GE8,
        _ => 0,
    }
}

/// Quantize one activation row with the fastest quantizer the quants crate offers.
fn quantize_act(vdt: GgmlType, src: &[f32], dst: &mut [u8]) {
    match vdt {
        GgmlType::Q8_0 => ferrite_quants::q8::quantize_bytes_q8_0(src, dst),
        GgmlType::Q8_1 => ferrite_quants::q8::quantize_bytes_q8_1(src, dst),
        GgmlType::Q8_K => ferrite_quants::q8::quantize_bytes_q8_k(src, dst),
        _ => {
            let k = kernels(vdt).expect("vec_dot_type has kernels");
            let q = k.quantize_row.expect("vec_dot_type has a quantizer");
            q(src, dst)
        }
    }
}

/// Rows handled together: their bytes stay in L1 while every token of the batch passes.
const ROW_BLOCK: usize = 16;

/// Rows per chunk of the GEMM (tile) path: decoded once, then dotted with every token.
const TILE_ROWS: usize = 16;

// Packed weights are cut into chunks of whole 4-row groups.
const _: () = assert!(ROW_BLOCK.is_multiple_of(GROUP) && TILE_ROWS.is_multiple_of(GROUP));

/// `out[t, r] = Σ_c w[r, c] · x[t, c]`: x is `(n_tokens, cols)`, out is `(n_tokens, rows)`.
pub fn matmul(
    pool: &ThreadPool,
    w: &WeightView<'_>,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<(), ComputeError> {
    matmul_many(pool, [w], x, n_tokens, [out], scratch)
}

/// Several weights applied to the same input (Q/K/V, gate/up): `outs[i] = x · ws[i]ᵀ`, as
/// [`matmul`] each, but the input is quantized once when the weights share a `vec_dot_type`
/// and all products run as one pool op (one barrier instead of N).
pub fn matmul_many<const N: usize>(
    pool: &ThreadPool,
    ws: [&WeightView<'_>; N],
    x: &[f32],
    n_tokens: usize,
    outs: [&mut [f32]; N],
    scratch: &mut MatmulScratch,
) -> Result<(), ComputeError> {
    if N == 0 {
        return Ok(());
    }
    let cols = ws[0].cols;
    check(x.len(), n_tokens * cols, "matmul input")?;
    let vdt = kernels(ws[0].ty)?.vec_dot_type;
    let mut same_vdt = true;
    for (w, o) in ws.iter().zip(outs.iter()) {
        check(w.cols, cols, "matmul_many weight columns")?;
        check(o.len(), n_tokens * w.rows, "matmul output")?;
        same_vdt &= kernels(w.ty)?.vec_dot_type == vdt;
    }
    if !same_vdt {
        for (w, o) in ws.into_iter().zip(outs) {
            matmul_many(pool, [w], x, n_tokens, [o], scratch)?;
        }
        return Ok(());
    }
    let arb = row_bytes(vdt, cols)?;
    let act: &[u8] = if vdt == GgmlType::F32 {
        crate::f32_bytes(x)
    } else {
        let need = arb * n_tokens;
        if scratch.act.len() < need {
            // Only reached when the scratch was undersized: grow once, then reuse.
            scratch.act.resize(need, 0);
        }
        let buf = &mut scratch.act[..need];
        if n_tokens == 1 || pool.n_threads() == 1 {
            for t in 0..n_tokens {
                quantize_act(
                    vdt,
                    &x[t * cols..(t + 1) * cols],
                    &mut buf[t * arb..(t + 1) * arb],
                );
            }
        } else {
            let p = SendPtr::new(buf);
            pool.for_each(n_tokens, &|t, _| {
                // SAFETY: each token's row is written by exactly one chunk.
                let dst = unsafe { p.slice(t * arb, arb) };
                quantize_act(vdt, &x[t * cols..(t + 1) * cols], dst);
            });
        }
        &scratch.act[..need]
    };
    // Per weight and token: llama.cpp's batched order or not (only with the tile kernels).
    let flags = &scratch.batched;
    scratch.alt.clear();
    let mut any_alt = [false; N];
    for (i, w) in ws.iter().enumerate() {
        let bit = batched_bit(w.ty, w.rows);
        if bit == 0 || flags.is_empty() {
            continue;
        }
        scratch.alt.resize(i * n_tokens, false);
        for t in 0..n_tokens {
            let a = flags.get(t).is_some_and(|&f| f & bit != 0);
            any_alt[i] |= a;
            scratch.alt.push(a);
        }
    }
    // Per weight: GEMM (tile) path or not, and where its chunks start in the joint op.
    let tiled: [bool; N] = std::array::from_fn(|i| {
        (n_tokens >= ferrite_quants::simd::TILE_MIN_COLS || any_alt[i])
            && ferrite_quants::simd::has_tile_kernel(ws[i].ty, cols)
    });
    let alt = &scratch.alt;
    let mut first = [0usize; N];
    let mut total = 0;
    for i in 0..N {
        first[i] = total;
        total += ws[i]
            .rows
            .div_ceil(if tiled[i] { TILE_ROWS } else { ROW_BLOCK });
    }
    let nth = pool.n_threads();
    if tiled.iter().any(|&t| t) {
        if scratch.tiles.len() < nth {
            scratch.tiles.resize_with(nth, Vec::new);
        }
        for t in &mut scratch.tiles[..nth] {
            if t.len() < TILE_ROWS * n_tokens {
                t.resize(TILE_ROWS * n_tokens, 0.0);
            }
        }
    }
    if (0..N).any(|i| tiled[i] && ws[i].packed) {
        if scratch.unpacked.len() < nth {
            scratch.unpacked.resize_with(nth, Vec::new);
        }
        let need = (0..N)
            .map(|i| TILE_ROWS * ws[i].row_bytes())
            .max()
            .unwrap_or(0);
        for u in &mut scratch.unpacked[..nth] {
            if u.len() < need {
                u.resize(need, 0);
            }
        }
    }
    let tptr = SendPtr::new(&mut scratch.tiles[..]);
    let uptr = SendPtr::new(&mut scratch.unpacked[..]);
    let optrs: [SendPtr<f32>; N] = outs.map(SendPtr::new);
    pool.for_each(total, &|chunk, ith| {
        let i = (0..N).rev().find(|&i| first[i] <= chunk).unwrap_or(0);
        let (w, c) = (ws[i], chunk - first[i]);
        let (rows, rb, optr) = (w.rows, w.row_bytes(), optrs[i]);
        if tiled[i] {
            // GEMM path: TILE_ROWS weight rows decoded once and multiplied with every token by
            // the quants crate's micro-kernels into a per-thread tile, then copied out.
            let r0 = c * TILE_ROWS;
            let nr = (r0 + TILE_ROWS).min(rows) - r0;
            // SAFETY: thread `ith` alone uses its tile buffer during the op.
            let tile = unsafe { &mut tptr.slice(ith, 1)[0] };
            let tile = &mut tile[..nr * n_tokens];
            let mut wr = &w.data[r0 * rb..(r0 + nr) * rb];
            if w.packed {
                // SAFETY: thread `ith` alone uses its unpack buffer during the op.
                let u = unsafe { &mut uptr.slice(ith, 1)[0][..nr * rb] };
                ferrite_quants::packed::unpack_rows(w.ty, cols, wr, u).expect("whole groups");
                wr = u;
            }
            ferrite_quants::vec_dot_tile_batched(
                w.ty,
                cols,
                wr,
                nr,
                act,
                n_tokens,
                tile,
                nr,
                alt.get(i * n_tokens..(i + 1) * n_tokens).unwrap_or(&[]),
            )
            .expect("sizes checked above");
            for t in 0..n_tokens {
                // SAFETY: this chunk alone writes rows r0..r0+nr of every token's output row.
                let o = unsafe { optr.slice(t * rows + r0, nr) };
                o.copy_from_slice(&tile[t * nr..(t + 1) * nr]);
            }
        } else {
            // ROW_BLOCK weight rows against every token: the rows are loaded once and stay in
            // L1 while the (L2-resident) activations stream past.
            let r0 = c * ROW_BLOCK;
            let r1 = (r0 + ROW_BLOCK).min(rows);
            let wr = &w.data[r0 * rb..r1 * rb];
            for t in 0..n_tokens {
                let a = &act[t * arb..(t + 1) * arb];
                // SAFETY: this chunk alone writes rows r0..r1 of every token's output row.
                let o = unsafe { optr.slice(t * rows + r0, r1 - r0) };
                if w.packed {
                    ferrite_quants::packed::vec_dot_rows_x4(w.ty, cols, wr, a, o)
                } else {
                    ferrite_quants::vec_dot_rows(w.ty, cols, wr, a, o)
                }
                .expect("sizes checked above");
            }
        }
    });
    Ok(())
}

/// The plain twin of [`matmul`]: dequantize each weight row to f32 and take an f64 dot.
pub fn matmul_ref(
    w: &WeightView<'_>,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) -> Result<(), ComputeError> {
    check(x.len(), n_tokens * w.cols, "matmul input")?;
    check(out.len(), n_tokens * w.rows, "matmul output")?;
    let data = if w.packed {
        let mut u = vec![0u8; w.data.len()];
        ferrite_quants::packed::unpack_rows(w.ty, w.cols, w.data, &mut u)?;
        std::borrow::Cow::Owned(u)
    } else {
        std::borrow::Cow::Borrowed(w.data)
    };
    let rb = w.row_bytes();
    let mut row = vec![0f32; w.cols];
    for r in 0..w.rows {
        ferrite_quants::dequantize_row(w.ty, &data[r * rb..(r + 1) * rb], &mut row)?;
        for t in 0..n_tokens {
            let xs = &x[t * w.cols..(t + 1) * w.cols];
            let s: f64 = row.iter().zip(xs).map(|(&a, &b)| a as f64 * b as f64).sum();
            out[t * w.rows + r] = s as f32;
        }
    }
    Ok(())
}

fn check(got: usize, expected: usize, what: &'static str) -> Result<(), ComputeError> {
    if got == expected {
        Ok(())
    } else {
        Err(ComputeError::Shape {
            what,
            expected,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Oracle: `matmul_ref` (f32 dequantized weights, f64 sums). Tolerance: the activation
    /// quantization error of the vec_dot type, relative to Σ|w·x| (Q8 ≈ 1/127 per element).
    #[test]
    fn matmul_matches_reference_for_every_wired_type() {
        let (rows, cols) = (37, 512);
        let mut seed = 7u64;
        let wf: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed)).collect();
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::BF16,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ] {
            let Ok(k) = kernels(ty) else {
                panic!("{ty:?} has no kernels")
            };
            let Some(q) = k.quantize_row.or(None) else {
                continue;
            };
            let rb = row_bytes(ty, cols).unwrap();
            let mut data = vec![0u8; rb * rows];
            for r in 0..rows {
                q(
                    &wf[r * cols..(r + 1) * cols],
                    &mut data[r * rb..(r + 1) * rb],
                );
            }
            let w = WeightView::new(ty, rows, cols, &data).unwrap();
            for n_tokens in [1, 3, 17, 70] {
                let x: Vec<f32> = (0..n_tokens * cols).map(|_| lcg(&mut seed)).collect();
                let mut want = vec![0f32; n_tokens * rows];
                matmul_ref(&w, &x, n_tokens, &mut want).unwrap();
                for nth in [1, 2, 3] {
                    let pool = ThreadPool::new(nth);
                    let mut got = vec![0f32; n_tokens * rows];
                    let mut s = MatmulScratch::default();
                    matmul(&pool, &w, &x, n_tokens, &mut got, &mut s).unwrap();
                    let tol = match k.vec_dot_type {
                        GgmlType::F32 => 1e-4,
                        // f16/bf16 activations: 2^-11 / 2^-8 relative per element.
                        GgmlType::F16 => 0.02,
                        GgmlType::BF16 => 0.2,
                        _ => 0.25,
                    };
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - e).abs() < tol,
                            "{ty:?} n={n_tokens} nth={nth} [{i}]: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    /// Packed (x4) weights give the plain weights' bits on every path: GEMV (x4 kernels), GEMM
    /// tiles (unpacked per chunk), with llama.cpp's batched flags, in `matmul_many`.
    /// Oracle: the same matmul on the unpacked bytes; tolerance 0.
    #[test]
    fn packed_weights_match_plain_bitwise() {
        let mut seed = 5u64;
        for (ty, cols, rows) in [
            (GgmlType::Q4_0, 576, 40),
            (GgmlType::Q4_1, 576, 36),
            (GgmlType::Q5_0, 640, 20),
            (GgmlType::Q5_1, 576, 12),
            (GgmlType::Q8_0, 576, 24),
            (GgmlType::Q4_K, 768, 52),
        ] {
            let rb = row_bytes(ty, cols).unwrap();
            let mut plain = vec![0u8; rb * rows];
            for r in 0..rows {
                let x: Vec<f32> = (0..cols).map(|_| lcg(&mut seed)).collect();
                ferrite_quants::quantize_row(ty, &x, &mut plain[r * rb..(r + 1) * rb]).unwrap();
            }
            let mut packed = vec![0u8; plain.len()];
            ferrite_quants::packed::pack_rows(ty, cols, &plain, &mut packed).unwrap();
            let wp = WeightView::new(ty, rows, cols, &plain).unwrap();
            let wx = WeightView::new_packed(ty, rows, cols, &packed).unwrap();
            assert!(
                WeightView::new_packed(ty, rows - 1, cols, &packed[..rb * (rows - 1)]).is_err()
            );
            for n in [1, 2, 5, 16, 37] {
                let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
                for nth in [1, 2, 3] {
                    let pool = ThreadPool::new(nth);
                    for flags in [vec![], vec![BATCHED_GEMM4 | BATCHED_GE8; n]] {
                        let mut s = MatmulScratch::default();
                        s.set_batched(&flags);
                        let (mut want, mut got) = (vec![0f32; n * rows], vec![0f32; n * rows]);
                        matmul(&pool, &wp, &x, n, &mut want, &mut s).unwrap();
                        matmul(&pool, &wx, &x, n, &mut got, &mut s).unwrap();
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&got), bits(&want), "{ty:?} n={n} nth={nth} {flags:?}");
                        let mut got2 = vec![0f32; n * rows];
                        matmul_many(&pool, [&wx, &wx], &x, n, [&mut got, &mut got2], &mut s)
                            .unwrap();
                        assert_eq!(bits(&got2), bits(&want), "many {ty:?} n={n} nth={nth}");
                    }
                }
                let mut r = vec![0f32; n * rows];
                let mut rp = vec![0f32; n * rows];
                matmul_ref(&wp, &x, n, &mut r).unwrap();
                matmul_ref(&wx, &x, n, &mut rp).unwrap();
                assert_eq!(r, rp, "matmul_ref reads packed weights");
            }
        }
    }

    /// Oracle: separate `matmul` calls. Tolerance: bit-identical (same kernels, same input
    /// quantization), for weights sharing a vec_dot_type (one quantization) and not.
    #[test]
    fn matmul_many_equals_separate_matmuls() {
        let cols = 256;
        let mut seed = 11u64;
        let mk = |ty: GgmlType, rows: usize, seed: &mut u64| {
            let rb = row_bytes(ty, cols).unwrap();
            let mut d = vec![0u8; rb * rows];
            for r in 0..rows {
                let x: Vec<f32> = (0..cols).map(|_| lcg(seed)).collect();
                ferrite_quants::quantize_row(ty, &x, &mut d[r * rb..(r + 1) * rb]).unwrap();
            }
            d
        };
        let (d1, d2, d3) = (
            mk(GgmlType::Q4_K, 40, &mut seed),
            mk(GgmlType::Q6_K, 17, &mut seed),
            mk(GgmlType::Q8_0, 33, &mut seed),
        );
        let w1 = WeightView::new(GgmlType::Q4_K, 40, cols, &d1).unwrap();
        let w2 = WeightView::new(GgmlType::Q6_K, 17, cols, &d2).unwrap();
        let w3 = WeightView::new(GgmlType::Q8_0, 33, cols, &d3).unwrap();
        for n in [1, 5, 20] {
            let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
            for nth in [1, 2] {
                let pool = ThreadPool::new(nth);
                let mut s = MatmulScratch::default();
                let mut want = [vec![0f32; n * 40], vec![0f32; n * 17], vec![0f32; n * 33]];
                for (w, o) in [&w1, &w2, &w3].into_iter().zip(want.iter_mut()) {
                    matmul(&pool, w, &x, n, o, &mut s).unwrap();
                }
                let (mut a, mut b) = (vec![0f32; n * 40], vec![0f32; n * 17]);
                matmul_many(&pool, [&w1, &w2], &x, n, [&mut a, &mut b], &mut s).unwrap();
                assert_eq!((&a, &b), (&want[0], &want[1]), "n={n} nth={nth}");
                let (mut a, mut c) = (vec![0f32; n * 40], vec![0f32; n * 33]);
                matmul_many(&pool, [&w1, &w3], &x, n, [&mut a, &mut c], &mut s).unwrap();
                assert_eq!((&a, &c), (&want[0], &want[2]), "mixed n={n} nth={nth}");
            }
        }
    }

    /// Batch invariance: token t's output row is bit-identical whether t is multiplied alone or
    /// among n_tokens (row kernels below `TILE_MIN_COLS`, GEMM tiles above) and for any thread
    /// count. Oracle: the same token alone, 1 thread; tolerance 0. 576 columns = 18 blocks of
    /// 32 (SmolLM2's n_embd), 768 = 3 superblocks.
    #[test]
    fn token_output_does_not_depend_on_n_tokens() {
        let mut seed = 5u64;
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ] {
            for cols in [576, 768] {
                let Ok(rb) = row_bytes(ty, cols) else {
                    continue;
                };
                let rows = 37;
                let mut data = vec![0u8; rb * rows];
                for r in 0..rows {
                    let x: Vec<f32> = (0..cols).map(|_| lcg(&mut seed)).collect();
                    ferrite_quants::quantize_row(ty, &x, &mut data[r * rb..(r + 1) * rb]).unwrap();
                }
                let w = WeightView::new(ty, rows, cols, &data).unwrap();
                let x: Vec<f32> = (0..64 * cols).map(|_| lcg(&mut seed)).collect();
                let one = ThreadPool::new(1);
                let mut s = MatmulScratch::default();
                let alone: Vec<Vec<f32>> = (0..64)
                    .map(|t| {
                        let mut o = vec![0f32; rows];
                        matmul(&one, &w, &x[t * cols..(t + 1) * cols], 1, &mut o, &mut s).unwrap();
                        o
                    })
                    .collect();
                for nth in [1, 2, 3] {
                    let pool = ThreadPool::new(nth);
                    for n in [1, 3, 4, 15, 16, 17, 64] {
                        let mut got = vec![0f32; n * rows];
                        matmul(&pool, &w, &x[..n * cols], n, &mut got, &mut s).unwrap();
                        for (t, want) in alone[..n].iter().enumerate() {
                            let g = &got[t * rows..(t + 1) * rows];
                            let same = g.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{ty:?} cols={cols} n={n} nth={nth} token {t}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shape_errors_are_reported() {
        let data = vec![0u8; 4 * 8];
        assert!(WeightView::new(GgmlType::F32, 2, 8, &data).is_err());
        let w = WeightView::new(GgmlType::F32, 1, 8, &data).unwrap();
        let pool = ThreadPool::new(1);
        let mut out = vec![0f32; 2];
        let err = matmul(
            &pool,
            &w,
            &[0.0; 7],
            1,
            &mut out,
            &mut MatmulScratch::default(),
        );
        assert!(matches!(
            err,
            Err(ComputeError::Shape {
                what: "matmul input",
                ..
            })
        ));
    }
}
