//! The AVX-512 dot kernels reproduce llama.cpp's floating-point evaluation order bit for bit.
//!
//! Oracle: plain-Rust scalar emulations (f32 arithmetic, `f32::mul_add` wherever ggml fuses)
//! of ggml's x86 kernels at llama.cpp commit 0c1e570:
//! - `ggml_vec_dot_q4_0_q8_0`, `ggml_vec_dot_q4_1_q8_1`, `ggml_vec_dot_q5_0_q8_0`,
//!   `ggml_vec_dot_q5_1_q8_1`, `ggml_vec_dot_q8_0_q8_0` (AVX2, `arch/x86/quants.c`): 8 f32
//!   lanes, one fma per 32-block of `d·dy` × the block's 4-element i32 sums, a scalar
//!   `summs = fma(m, s, summs)` per block for the types with a min, `hsum_float_8(acc) + summs`;
//! - `ggml_gemv_q4_K_8x8_q8_K` (single token: one fma pair per superblock) and
//!   `ggml_gemm_q4_K_8x8_q8_K` (batched: one fma pair per 64-element step), `arch/x86/repack.cpp`;
//! - `ggml_vec_dot_q6_K_q8_K` (AVX2: 8 i32 lanes per superblock, 8-lane fma by `d·dy`,
//!   `hsum_float_8`) and the tiled K-quant GEMM `tiled_run_microtile` (batched:
//!   `acc = fma(S·d, dy, acc)` per superblock), `tiled/tiled-kernel.cpp`.
//!
//! Checked paths: `vec_dot`, `vec_dot_rows` (4-row kernels and their single-row tail),
//! `vec_dot_tile` (AVX-512 GEMM tiles with ≥ 16 columns, odd column counts, padded output
//! stride; and the column-by-column path below 16 columns) and `vec_dot_tile_batched` with mixed
//! per-column flags (Q4_K/Q6_K: batched order where set, single-token order elsewhere; legacy
//! types: flags ignored). Data: several seeds and row lengths; weight rows both from the
//! reference quantizer (per-block amplitudes from 0 through f16-subnormal scales to 3e4) and raw
//! random bytes with random finite f16 scales (zero, subnormal, up to 65504); activations
//! quantized with the type's `vec_dot_type`, including all-zero blocks.
//!
//! Tolerance: none — bit-exact (`f32::to_bits` equality) for every (row, column) pair.
//! Skipped (with a message) where the CPU has no AVX-512 tile kernels.
#![allow(clippy::needless_range_loop)] // (row, column) indices name the pairs in messages

use ferrite_quants::simd::has_tile_kernel;
use ferrite_quants::{
    kernels, quantize_row, row_bytes, vec_dot, vec_dot_rows, vec_dot_tile, vec_dot_tile_batched,
    GgmlType,
};

/// xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Per-32-block amplitudes: zero blocks, f16-subnormal scales, small to large.
const AMPS: [f32; 7] = [0.0, 1e-5, 1e-2, 0.3, 1.0, 100.0, 3e4];

/// `n` values, each 32-block at an amplitude drawn from [`AMPS`] (heavy-tailed within).
fn gen_f32(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n / 32 {
        let a = AMPS[rng.below(AMPS.len() as u64) as usize];
        for _ in 0..32 {
            let u = rng.unit();
            v.push(a * u * u * u.signum() + a * 0.5 * rng.unit());
        }
    }
    v
}

/// A random finite f16 (any sign, zero and subnormals included), little-endian.
fn rand_f16(rng: &mut Rng) -> [u8; 2] {
    if rng.below(8) == 0 {
        return [0, 0];
    }
    let exp = rng.below(31) as u16; // 0..=30: never Inf/NaN
    let bits = ((rng.below(2) as u16) << 15) | (exp << 10) | (rng.below(1024) as u16);
    bits.to_le_bytes()
}

/// Block size in bytes and the offsets of the f16 fields of a weight block.
fn f16_fields(ty: GgmlType) -> (usize, &'static [usize]) {
    match ty {
        GgmlType::Q4_0 => (18, &[0]),
        GgmlType::Q4_1 => (20, &[0, 2]),
        GgmlType::Q5_0 => (22, &[0]),
        GgmlType::Q5_1 => (24, &[0, 2]),
        GgmlType::Q8_0 => (34, &[0]),
        GgmlType::Q4_K => (144, &[0, 2]),
        GgmlType::Q6_K => (210, &[208]),
        _ => unreachable!("{ty:?}"),
    }
}

/// `nrows` weight rows of `ty`: every third row raw random bytes with random finite f16
/// scales, the others from the reference quantizer.
fn gen_weights(rng: &mut Rng, ty: GgmlType, n: usize, nrows: usize) -> Vec<u8> {
    let rb = row_bytes(ty, n).unwrap();
    let mut w = vec![0u8; rb * nrows];
    for (r, row) in w.chunks_exact_mut(rb).enumerate() {
        if r % 3 == 2 {
            let (bsz, fields) = f16_fields(ty);
            for b in row.iter_mut() {
                *b = rng.u64() as u8;
            }
            for blk in row.chunks_exact_mut(bsz) {
                for &f in fields {
                    blk[f..f + 2].copy_from_slice(&rand_f16(rng));
                }
            }
        } else {
            quantize_row(ty, &gen_f32(rng, n), row).unwrap();
        }
    }
    w
}

fn gen_acts(rng: &mut Rng, ty: GgmlType, n: usize, ncols: usize) -> Vec<u8> {
    let at = kernels(ty).unwrap().vec_dot_type;
    let arb = row_bytes(at, n).unwrap();
    let mut a = vec![0u8; arb * ncols];
    for col in a.chunks_exact_mut(arb) {
        quantize_row(at, &gen_f32(rng, n), col).unwrap();
    }
    a
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i16_at(b: &[u8], at: usize) -> i32 {
    i16::from_le_bytes([b[at], b[at + 1]]) as i32
}

/// ggml's `hsum_float_8`: halves added lane-wise, then (0+2, 1+3), then the two.
fn hsum8(a: [f32; 8]) -> f32 {
    let t = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    let u0 = t[0] + t[2];
    let u1 = t[1] + t[3];
    u0 + u1
}

// ------------------------------------------------------------------ legacy emulation

/// One legacy weight block: (d, m, the 32 signed quant values).
fn legacy_block(ty: GgmlType, b: &[u8]) -> (f32, f32, [i32; 32]) {
    let mut q = [0i32; 32];
    let nib = |q: &mut [i32; 32], qs: &[u8], off: i32| {
        for j in 0..16 {
            q[j] = (qs[j] & 15) as i32 - off;
            q[j + 16] = (qs[j] >> 4) as i32 - off;
        }
    };
    let qh = |q: &mut [i32; 32], h: u32, off: i32| {
        for (j, v) in q.iter_mut().enumerate() {
            *v += (((h >> j) & 1) as i32) << 4;
            *v -= off;
        }
    };
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    match ty {
        GgmlType::Q4_0 => {
            nib(&mut q, &b[2..18], 8);
            (f16_at(b, 0), 0.0, q)
        }
        GgmlType::Q4_1 => {
            nib(&mut q, &b[4..20], 0);
            (f16_at(b, 0), f16_at(b, 2), q)
        }
        GgmlType::Q5_0 => {
            nib(&mut q, &b[6..22], 0);
            qh(&mut q, u32_at(2), 16);
            (f16_at(b, 0), 0.0, q)
        }
        GgmlType::Q5_1 => {
            nib(&mut q, &b[8..24], 0);
            qh(&mut q, u32_at(4), 0);
            (f16_at(b, 0), f16_at(b, 2), q)
        }
        GgmlType::Q8_0 => {
            for j in 0..32 {
                q[j] = b[2 + j] as i8 as i32;
            }
            (f16_at(b, 0), 0.0, q)
        }
        _ => unreachable!("{ty:?}"),
    }
}

/// ggml's AVX2 `ggml_vec_dot_<legacy>_q8_{0,1}` order.
fn emu_legacy(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (wsz, _) = f16_fields(ty);
    let min = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
    // Q8_1: f16 d, f16 s, 32 i8; Q8_0: f16 d, 32 i8.
    let (asz, aq) = if min { (36, 4) } else { (34, 2) };
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for blk in 0..n / 32 {
        let (dx, mx, xq) = legacy_block(ty, &w[blk * wsz..(blk + 1) * wsz]);
        let yb = &a[blk * asz..(blk + 1) * asz];
        let dy = f16_at(yb, 0);
        let dd = dx * dy;
        for (j, lane) in acc.iter_mut().enumerate() {
            let isum: i32 = (4 * j..4 * j + 4)
                .map(|e| xq[e] * yb[aq + e] as i8 as i32)
                .sum();
            *lane = dd.mul_add(isum as f32, *lane);
        }
        if min {
            summs = mx.mul_add(f16_at(yb, 2), summs);
        }
    }
    if min {
        hsum8(acc) + summs
    } else {
        hsum8(acc)
    }
}

// ------------------------------------------------------------------ K-quant emulation

/// ggml's `get_scale_min_k4`.
fn scale_min_k4(j: usize, q: &[u8]) -> (i32, i32) {
    if j < 4 {
        ((q[j] & 63) as i32, (q[j + 4] & 63) as i32)
    } else {
        (
            ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4)) as i32,
            ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32,
        )
    }
}

/// Q8_K block: (d, the 256 quants, the 16 bsums).
fn q8k_block(y: &[u8]) -> (f32, Vec<i32>, Vec<i32>) {
    let q = (0..256).map(|e| y[4 + e] as i8 as i32).collect();
    let bs = (0..16).map(|j| i16_at(y, 260 + 2 * j)).collect();
    (f32_at(y, 0), q, bs)
}

/// Q4_K × Q8_K: `ggml_gemv_q4_K_8x8_q8_K` (`batched = false`: one fma pair per superblock) or
/// `ggml_gemm_q4_K_8x8_q8_K` (`batched`: one fma pair per 64-element step).
fn emu_q4_k(n: usize, w: &[u8], a: &[u8], batched: bool) -> f32 {
    let mut acc = 0f32;
    let mut accm = 0f32;
    for sb in 0..n / 256 {
        let x = &w[sb * 144..(sb + 1) * 144];
        let (yd, yq, bs) = q8k_block(&a[sb * 292..(sb + 1) * 292]);
        let dd = f16_at(x, 0) * yd;
        let dm = f16_at(x, 2) * yd;
        let (mut s_sb, mut m_sb) = (0i32, 0i32);
        for k in 0..4 {
            let (mut s, mut m) = (0i32, 0i32);
            for h in 0..2 {
                let sub = 2 * k + h;
                let (sc, mn) = scale_min_k4(sub, &x[4..16]);
                let dot: i32 = (0..32)
                    .map(|l| {
                        let byte = x[16 + 32 * k + l];
                        let q = if h == 0 { byte & 15 } else { byte >> 4 };
                        q as i32 * yq[32 * sub + l]
                    })
                    .sum();
                s += sc * dot;
                m += mn * (bs[2 * sub] + bs[2 * sub + 1]);
            }
            if batched {
                acc = (s as f32).mul_add(dd, acc);
                accm = (m as f32).mul_add(dm, accm);
            }
            s_sb += s;
            m_sb += m;
        }
        if !batched {
            acc = (s_sb as f32).mul_add(dd, acc);
            accm = (m_sb as f32).mul_add(dm, accm);
        }
    }
    acc - accm
}

/// Q6_K × Q8_K: `ggml_vec_dot_q6_K_q8_K` (AVX2, `batched = false`) or the tiled GEMM's
/// `acc = fma(S·d, dy, acc)` per superblock (`batched`).
fn emu_q6_k(n: usize, w: &[u8], a: &[u8], batched: bool) -> f32 {
    let mut acc8 = [0f32; 8];
    let mut acc = 0f32;
    for sb in 0..n / 256 {
        let x = &w[sb * 210..(sb + 1) * 210];
        let (yd, yq, bs) = q8k_block(&a[sb * 292..(sb + 1) * 292]);
        // Unsigned 6-bit quants in element order (ggml's dequantize_row_q6_K).
        let mut q6 = [0i32; 256];
        for half in 0..2 {
            let ql = &x[64 * half..64 * half + 64];
            let qh = &x[128 + 32 * half..128 + 32 * half + 32];
            let e0 = 128 * half;
            for l in 0..32 {
                q6[e0 + l] = ((ql[l] & 15) | ((qh[l] & 3) << 4)) as i32;
                q6[e0 + l + 32] = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) as i32;
                q6[e0 + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32;
                q6[e0 + l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32;
            }
        }
        let sc: Vec<i32> = (0..16).map(|j| x[192 + j] as i8 as i32).collect();
        let mut lanes = [0i32; 8];
        for (k, lane) in lanes.iter_mut().enumerate() {
            for c in 0..8 {
                for e in 32 * c + 4 * k..32 * c + 4 * k + 4 {
                    *lane += sc[e / 16] * q6[e] * yq[e];
                }
            }
            *lane -= 32 * (sc[2 * k] * bs[2 * k] + sc[2 * k + 1] * bs[2 * k + 1]);
        }
        let xd = f16_at(x, 208);
        if batched {
            let s: i32 = lanes.iter().sum();
            acc = ((s as f32) * xd).mul_add(yd, acc);
        } else {
            let d = yd * xd;
            for k in 0..8 {
                acc8[k] = d.mul_add(lanes[k] as f32, acc8[k]);
            }
        }
    }
    if batched {
        acc
    } else {
        hsum8(acc8)
    }
}

/// The emulated ggml result for (weight row, activation row); `batched` selects the batched
/// GEMM order (K-quants only).
fn emulate(ty: GgmlType, n: usize, w: &[u8], a: &[u8], batched: bool) -> f32 {
    match ty {
        GgmlType::Q4_K => emu_q4_k(n, w, a, batched),
        GgmlType::Q6_K => emu_q6_k(n, w, a, batched),
        _ => emu_legacy(ty, n, w, a),
    }
}

// ------------------------------------------------------------------ the checks

struct Mismatches {
    count: usize,
    checked: usize,
    first: Vec<String>,
}

impl Mismatches {
    fn check(&mut self, got: f32, want: f32, what: impl FnOnce() -> String) {
        self.checked += 1;
        if got.to_bits() != want.to_bits() {
            self.count += 1;
            if self.first.len() < 12 {
                self.first.push(format!(
                    "{}: kernel {got:e} ({:#010x}) vs ggml order {want:e} ({:#010x})",
                    what(),
                    got.to_bits(),
                    want.to_bits()
                ));
            }
        }
    }
}

const NROWS: usize = 13; // 4-row groups plus a single-row tail; partial tile groups
const NCOLS: usize = 19;
const SEEDS: [u64; 3] = [1, 0x5eed_0002, 0xdead_beef_0003];

fn run_type(ty: GgmlType, lens: &[usize], mm: &mut Mismatches) {
    let k = kernels(ty).unwrap();
    let is_k = matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K);
    for &seed in &SEEDS {
        for &n in lens {
            let mut rng = Rng::new(seed ^ (n as u64) << 20 ^ ty as u64);
            let rb = row_bytes(ty, n).unwrap();
            let arb = row_bytes(k.vec_dot_type, n).unwrap();
            let w = gen_weights(&mut rng, ty, n, NROWS);
            let a = gen_acts(&mut rng, ty, n, NCOLS);
            let wr = |r: usize| &w[r * rb..(r + 1) * rb];
            let ac = |c: usize| &a[c * arb..(c + 1) * arb];
            // Expected results, [c][r].
            let single: Vec<Vec<f32>> = (0..NCOLS)
                .map(|c| {
                    (0..NROWS)
                        .map(|r| emulate(ty, n, wr(r), ac(c), false))
                        .collect()
                })
                .collect();
            let batched: Vec<Vec<f32>> = if is_k {
                (0..NCOLS)
                    .map(|c| {
                        (0..NROWS)
                            .map(|r| emulate(ty, n, wr(r), ac(c), true))
                            .collect()
                    })
                    .collect()
            } else {
                single.clone()
            };
            let tag = |path: &str, r: usize, c: usize| {
                format!("{ty:?} n={n} seed={seed:#x} {path} row {r} col {c}")
            };

            // vec_dot: every pair.
            for c in 0..NCOLS {
                for r in 0..NROWS {
                    let got = vec_dot(ty, n, wr(r), ac(c)).unwrap();
                    mm.check(got, single[c][r], || tag("vec_dot", r, c));
                }
            }
            // vec_dot_rows: 4 rows exactly, and all 13 (4-row groups + a lone row).
            for c in 0..NCOLS {
                let mut out4 = [0f32; 4];
                vec_dot_rows(ty, n, &w[..4 * rb], ac(c), &mut out4).unwrap();
                for r in 0..4 {
                    mm.check(out4[r], single[c][r], || tag("vec_dot_rows(4)", r, c));
                }
                let mut out = [0f32; NROWS];
                vec_dot_rows(ty, n, &w, ac(c), &mut out).unwrap();
                for r in 0..NROWS {
                    mm.check(out[r], single[c][r], || tag("vec_dot_rows(13)", r, c));
                }
            }
            // vec_dot_tile: GEMM tiles (17 and 19 columns, padded stride) where the kernel
            // exists for this n, and the column-by-column path (3 columns).
            let tiles: &[usize] = if has_tile_kernel(ty, n) {
                &[17, NCOLS, 3]
            } else {
                &[3]
            };
            for &ncols in tiles {
                for nrows in [NROWS, 8] {
                    let stride = nrows + 3;
                    let mut out = vec![f32::NAN; (ncols - 1) * stride + nrows];
                    vec_dot_tile(
                        ty,
                        n,
                        &w[..nrows * rb],
                        nrows,
                        &a[..ncols * arb],
                        ncols,
                        &mut out,
                        stride,
                    )
                    .unwrap();
                    for c in 0..ncols {
                        for r in 0..nrows {
                            mm.check(out[c * stride + r], single[c][r], || {
                                tag(&format!("vec_dot_tile({nrows}x{ncols})"), r, c)
                            });
                        }
                    }
                }
            }
            // vec_dot_tile_batched: mixed flags on the GEMM tiles (odd columns batched; then
            // every column batched except one).
            if has_tile_kernel(ty, n) {
                let patterns: [Vec<bool>; 2] = [
                    (0..NCOLS).map(|c| c % 2 == 1).collect(),
                    (0..NCOLS).map(|c| c != 5).collect(),
                ];
                for (p, flags) in patterns.iter().enumerate() {
                    let stride = NROWS + 1;
                    let mut out = vec![f32::NAN; (NCOLS - 1) * stride + NROWS];
                    vec_dot_tile_batched(ty, n, &w, NROWS, &a, NCOLS, &mut out, stride, flags)
                        .unwrap();
                    for c in 0..NCOLS {
                        let want = if flags[c] { &batched[c] } else { &single[c] };
                        for r in 0..NROWS {
                            mm.check(out[c * stride + r], want[r], || {
                                tag(
                                    &format!("vec_dot_tile_batched(pattern {p}, {})", flags[c]),
                                    r,
                                    c,
                                )
                            });
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn kernels_match_ggml_order_bit_for_bit() {
    if !has_tile_kernel(GgmlType::Q4_K, 256) {
        eprintln!("a_ggml_order: no AVX-512 tile kernels on this CPU; skipped");
        return;
    }
    let mut mm = Mismatches {
        count: 0,
        checked: 0,
        first: Vec::new(),
    };
    // Legacy: multiples of 64 (tiles take two blocks per step); 96 = odd block count
    // (vec_dot / vec_dot_rows / column-by-column only).
    let legacy_lens = [64, 96, 320, 1024, 4096];
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ] {
        run_type(ty, &legacy_lens, &mut mm);
    }
    let k_lens = [256, 768, 2304, 4096];
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        run_type(ty, &k_lens, &mut mm);
    }
    assert!(
        mm.count == 0,
        "{} of {} results differ from ggml's order; first:\n{}",
        mm.count,
        mm.checked,
        mm.first.join("\n")
    );
    eprintln!("a_ggml_order: {} results bit-exact", mm.checked);
}
