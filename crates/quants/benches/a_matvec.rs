//! Matrix-vector dot kernels, single core, reported as throughput of weight bytes (divan's
//! `bytes/s` counter, decimal GB/s by default): the activation row stays in L1, so the figure is
//! the rate at which the kernel streams the weight matrix.
//!
//! Cases (divan names):
//! - `in_cache_64k_rows` / `in_cache_64k_single`: 64 KiB of weights (L1/L2), 4-row kernels
//!   (`vec_dot_rows`) vs one `vec_dot` per row: compute-bound speed of the kernels.
//! - `l3_64m_rows` / `l3_64m_single` / `added_l3_64m`: 64 MiB of weights. Out of L2 but *inside*
//!   L3 on CPUs with a large L3 (our Xeon has 260 MiB shared), so these are L3 figures, not DRAM.
//! - `added_in_cache_64k`, `level_in_cache_64k`: later-added types, and one SIMD level forced.
//! - `mem_read/KERNEL`: the single-core read-bandwidth reference. Streams a buffer of
//!   `FERRITE_BENCH_MEM_MIB` MiB (default 1024) once per sample with 8 independent vector
//!   accumulators (512 bytes per iteration, `vpaddq` from memory), so the loop is load-bound.
//!   KERNEL is `avx512` (zmm), `avx2` (ymm), or `portable` (plain u64 sums, compiler-vectorized
//!   for the baseline target; about what the old 256 MiB `mem_bandwidth_sum_256m` measured, which
//!   was well below the ceiling). Kernels the CPU lacks are skipped.
//! - `mem_read_prefetch/PF/KERNEL`: the same plus a `prefetcht0` per line, PF bytes ahead; a
//!   cross-check that the hardware prefetchers aren't what limits `mem_read`.
//! - `mem_matvec_rows/TYPE`: `FERRITE_BENCH_MEM_MIB` MiB of weights (one quantized row repeated;
//!   content doesn't affect speed) through `vec_dot_rows`, the 4-row path the engine uses, for
//!   the types in our real models. Same buffer size and alignment (64 B) as `mem_read`.
//! - `mem_matvec_x4/TYPE`, `in_cache_64k_x4/TYPE`: the same through `vec_dot_rows_x4`, the
//!   4-row interleaved layout (`ferrite_quants::packed`) the engine packs Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K into
//!   on AVX-512 CPUs; for those types this is the engine's matrix-vector kernel.
//!
//! Reading the ratio: memory efficiency of a type = median `mem_matvec_rows/TYPE` divided by the
//! best median among `mem_read` / `mem_read_prefetch` (the ceiling one core can pull from DRAM).
//! The target is >= 0.80 for Q4_0, Q4_1, Q4_K, Q6_K and Q8_0. Both sides count bytes read once
//! per sample over the same size, so they are directly comparable. Only meaningful when the
//! buffer is several times the last-level cache (default 1 GiB vs 260 MiB L3) and the machine is
//! otherwise idle: DRAM bandwidth is shared, so other loads lower both figures unevenly.
//!
//! `FERRITE_BENCH_RATIO=1` instead prints read/matvec ratios measured back to back (see
//! `mem_ratio`), the figure to quote on a machine whose bandwidth drifts between cases;
//! `FERRITE_BENCH_RATIO_TYPES=Q4_0,Q8_0` limits it to some types.
//!
//! Run: `cargo bench -p ferrite-quants --bench a_matvec` (set FERRITE_NO_SIMD=1 for the scalar
//! path). Only the out-of-cache comparison: `cargo bench -p ferrite-quants --bench a_matvec -- mem`
//! (optionally `FERRITE_BENCH_MEM_MIB=2048`).
use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use ferrite_quants::packed::{pack_rows, vec_dot_rows_x4, GROUP};
use ferrite_quants::simd::{dot_fn_at, Level};
use ferrite_quants::{kernels, quantize_row, row_bytes, vec_dot, vec_dot_rows, GgmlType};

fn main() {
    if std::env::var_os("FERRITE_BENCH_RATIO").is_some() {
        mem_ratio();
        return;
    }
    divan::main();
}

/// `FERRITE_BENCH_RATIO=1 cargo bench -p ferrite-quants --bench a_matvec`: the memory
/// efficiency directly, robust to a machine whose DRAM bandwidth drifts (shared hosts): each
/// sample times the two read references and then the matvec back to back, and the ratio
/// best-read / matvec is taken per sample (median of 9). Same buffers as the `mem_*` cases.
fn mem_ratio() {
    #[cfg(target_arch = "x86_64")]
    {
        if !is_x86_feature_detected!("avx512f") {
            println!("mem_ratio: needs AVX-512 (the read reference)");
            return;
        }
        let time = |f: &mut dyn FnMut()| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        };
        let buf = mem_buf();
        let bytes = mem_bytes();
        println!("| type | layout | best read ms | matvec ms | read / matvec (median of 9) |");
        println!("|---|---|---:|---:|---:|");
        let only = std::env::var("FERRITE_BENCH_RATIO_TYPES").unwrap_or_default();
        let mut names: Vec<&str> = TYPES.to_vec();
        names.extend(X4.iter().filter(|t| !TYPES.contains(t)));
        for name in names {
            if !only.is_empty() && !only.split(',').any(|t| t == name) {
                continue;
            }
            let c = make(name, 1 << 16);
            let rb = row_bytes(c.ty, N).unwrap();
            let rows = bytes / rb / GROUP * GROUP;
            let mut layouts = vec![("rows", Aligned::repeat(&c.w.as_slice()[..rb], rows * rb))];
            if X4.contains(&name) {
                layouts.push(("x4", x4_weights(&c, rows)));
            }
            let mut out = vec![0f32; rows];
            for (layout, w) in &layouts {
                let w = w.as_slice();
                let mut s = Vec::new();
                for _ in 0..9 {
                    // SAFETY: AVX-512 F checked above.
                    let r0 = time(&mut || {
                        black_box(unsafe { stream::read_avx512::<0>(black_box(buf)) });
                    });
                    let r1 = time(&mut || {
                        black_box(unsafe { stream::read_avx512::<4096>(black_box(buf)) });
                    });
                    let m = time(&mut || {
                        if *layout == "x4" {
                            vec_dot_rows_x4(c.ty, N, black_box(w), &c.a, &mut out).unwrap();
                        } else {
                            vec_dot_rows(c.ty, N, black_box(w), &c.a, &mut out).unwrap();
                        }
                        black_box(&out);
                    });
                    s.push((r0.min(r1), m));
                }
                let med = |mut v: Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let ratio = med(s.iter().map(|(r, m)| r / m).collect());
                let (r, m) = (
                    med(s.iter().map(|x| x.0).collect()),
                    med(s.iter().map(|x| x.1).collect()),
                );
                println!("| {name} | {layout} | {r:.1} | {m:.1} | {ratio:.3} |");
            }
        }
    }
}

const TYPES: &[&str] = &["Q4_0", "Q4_1", "Q4_K", "Q6_K", "Q8_0"];
/// Types whose SIMD kernels were added later (AVX2 low-bit kernels, 512-bit F16/BF16).
const ADDED: &[&str] = &[
    "IQ2_XS", "IQ3_S", "IQ2_S", "IQ1_S", "IQ1_M", "TQ1_0", "F16", "BF16",
];
/// `TYPE/level` pairs: one kernel level forced (`dot_fn_at`), 64 KiB in cache, to compare
/// scalar / AVX2 / AVX-512 on the same data.
const LEVELS: &[&str] = &[
    "IQ2_XS/scalar",
    "IQ2_XS/avx2",
    "IQ2_XS/avx512",
    "IQ3_S/scalar",
    "IQ3_S/avx2",
    "IQ3_S/avx512",
    "IQ2_S/scalar",
    "IQ2_S/avx2",
    "IQ2_S/avx512",
    "IQ1_S/scalar",
    "IQ1_S/avx2",
    "IQ1_S/avx512",
    "IQ1_M/scalar",
    "IQ1_M/avx2",
    "IQ1_M/avx512",
    "TQ1_0/scalar",
    "TQ1_0/avx2",
    "TQ1_0/avx512",
    "F16/avx2",
    "F16/avx512",
    "BF16/avx2",
    "BF16/avx512",
    "Q2_K/avx2",
    "Q2_K/avx512",
    "Q3_K/avx2",
    "Q3_K/avx512",
    "Q5_1/avx2",
    "Q5_1/avx512",
    "IQ4_NL/scalar",
    "IQ4_NL/avx2",
    "IQ4_NL/avx512",
    "IQ4_XS/scalar",
    "IQ4_XS/avx2",
    "IQ4_XS/avx512",
    "MXFP4/scalar",
    "MXFP4/avx2",
    "MXFP4/avx512",
    "TQ2_0/scalar",
    "TQ2_0/avx2",
    "TQ2_0/avx512",
    "IQ2_XXS/avx2",
    "IQ2_XXS/avx512",
    "IQ3_XXS/avx2",
    "IQ3_XXS/avx512",
    "Q4_K/avx2",
    "Q4_K/avx512",
];
/// Types with the 4-row interleaved layout (`ferrite_quants::packed`): `*_x4` cases.
const X4: &[&str] = &["Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K"];
const N: usize = 4096; // elements per row

/// Bytes at a 64-byte (cache line) aligned start, so streaming loads never split lines.
struct Aligned {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    /// `len` bytes, filled by repeating `pattern` (every page is written, so touched, here).
    fn repeat(pattern: &[u8], len: usize) -> Self {
        let mut buf: Vec<u8> = Vec::with_capacity(len + 64);
        let off = buf.as_ptr().align_offset(64);
        buf.resize(off, 0);
        while buf.len() < off + len {
            let take = pattern.len().min(off + len - buf.len());
            buf.extend_from_slice(&pattern[..take]);
        }
        Aligned { buf, off, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
}

struct Case {
    ty: GgmlType,
    rows: usize,
    w: Aligned,
    a: Vec<u8>,
}

fn make(name: &str, weight_bytes: usize) -> Case {
    let ty = GgmlType::from_name(name).unwrap();
    let k = kernels(ty).unwrap();
    let rb = row_bytes(ty, N).unwrap();
    let rows = (weight_bytes / rb).max(1);
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let x: Vec<f32> = (0..N).map(|_| rnd()).collect();
    let mut one = vec![0u8; rb];
    quantize_row(ty, &x, &mut one).unwrap();
    // Same quantized row repeated (content doesn't affect speed); fresh bytes per row in memory.
    // Built once per case (type), before any sample runs.
    let w = Aligned::repeat(&one, rows * rb);
    let y: Vec<f32> = (0..N).map(|_| rnd()).collect();
    let mut a = vec![0u8; row_bytes(k.vec_dot_type, N).unwrap()];
    quantize_row(k.vec_dot_type, &y, &mut a).unwrap();
    Case { ty, rows, w, a }
}

fn run_rows(b: Bencher, name: &str, bytes: usize) {
    let c = make(name, bytes);
    let mut out = vec![0f32; c.rows];
    let w = c.w.as_slice();
    b.counter(BytesCount::new(w.len())).bench_local(|| {
        vec_dot_rows(c.ty, N, black_box(w), black_box(&c.a), &mut out).unwrap();
        black_box(&out);
    });
}

/// As `run_rows`, the weights in the x4 layout through `vec_dot_rows_x4` (rows rounded down
/// to whole groups of 4).
fn run_x4(b: Bencher, name: &str, bytes: usize) {
    let c = make(name, bytes.min(1 << 16));
    let rb = row_bytes(c.ty, N).unwrap();
    let rows = ((bytes / rb) / GROUP * GROUP).max(GROUP);
    let w = x4_weights(&c, rows);
    let w = w.as_slice();
    let mut out = vec![0f32; rows];
    b.counter(BytesCount::new(w.len())).bench_local(|| {
        vec_dot_rows_x4(c.ty, N, black_box(w), black_box(&c.a), &mut out).unwrap();
        black_box(&out);
    });
}

/// `rows` (a multiple of 4) copies of the case's first row, in the x4 layout.
fn x4_weights(c: &Case, rows: usize) -> Aligned {
    let rb = row_bytes(c.ty, N).unwrap();
    let four = c.w.as_slice()[..rb].repeat(GROUP);
    let mut packed = vec![0u8; four.len()];
    pack_rows(c.ty, N, &four, &mut packed).unwrap();
    Aligned::repeat(&packed, rows * rb)
}

fn run_single(b: Bencher, name: &str, bytes: usize) {
    let c = make(name, bytes);
    let rb = row_bytes(c.ty, N).unwrap();
    let w = c.w.as_slice();
    b.counter(BytesCount::new(w.len())).bench_local(|| {
        let mut s = 0f32;
        for r in w.chunks_exact(rb) {
            s += vec_dot(c.ty, N, black_box(r), black_box(&c.a)).unwrap();
        }
        black_box(s);
    });
}

/// 64 KiB of weights, 4-row kernels where available (`vec_dot_rows`).
#[divan::bench(args = TYPES)]
fn in_cache_64k_rows(b: Bencher, name: &str) {
    run_rows(b, name, 64 << 10);
}

/// 64 KiB of weights in the x4 layout (`vec_dot_rows_x4`).
#[divan::bench(args = X4)]
fn in_cache_64k_x4(b: Bencher, name: &str) {
    run_x4(b, name, 64 << 10);
}

/// 64 KiB of weights, one `vec_dot` call per row.
#[divan::bench(args = TYPES)]
fn in_cache_64k_single(b: Bencher, name: &str) {
    run_single(b, name, 64 << 10);
}

/// 64 MiB of weights, 4-row kernels where available. Not out of cache on CPUs with a large
/// L3 (e.g. 260 MiB on our Xeon): this is an L3-resident figure, see `mem_matvec_rows`.
#[divan::bench(args = TYPES, sample_count = 20, sample_size = 1)]
fn l3_64m_rows(b: Bencher, name: &str) {
    run_rows(b, name, 64 << 20);
}

/// 64 MiB of weights, one `vec_dot` call per row (L3-resident on large-L3 CPUs).
#[divan::bench(args = TYPES, sample_count = 20, sample_size = 1)]
fn l3_64m_single(b: Bencher, name: &str) {
    run_single(b, name, 64 << 20);
}

/// Added types, 64 KiB of weights, one `vec_dot` per row (they have no 4-row kernels).
#[divan::bench(args = ADDED)]
fn added_in_cache_64k(b: Bencher, name: &str) {
    run_single(b, name, 64 << 10);
}

/// Added types, 64 MiB of weights (L3-resident on large-L3 CPUs).
#[divan::bench(args = ADDED, sample_count = 20, sample_size = 1)]
fn added_l3_64m(b: Bencher, name: &str) {
    run_single(b, name, 64 << 20);
}

/// One level forced (`TYPE/level`), 64 KiB of weights in cache, one dot per row.
#[divan::bench(args = LEVELS)]
fn level_in_cache_64k(b: Bencher, arg: &str) {
    let (name, lvl) = arg.split_once('/').unwrap();
    let level = match lvl {
        "scalar" => Level::Scalar,
        "avx2" => Level::Avx2,
        _ => Level::Avx512,
    };
    let c = make(name, 64 << 10);
    let rb = row_bytes(c.ty, N).unwrap();
    let Some(f) = dot_fn_at(level, c.ty) else {
        return; // level not on this CPU
    };
    let w = c.w.as_slice();
    b.counter(BytesCount::new(w.len())).bench_local(|| {
        let mut s = 0f32;
        for r in w.chunks_exact(rb) {
            s += f(N, black_box(r), black_box(&c.a));
        }
        black_box(s);
    });
}

/// Size of the out-of-cache buffers (read reference and matvec weights): `FERRITE_BENCH_MEM_MIB`
/// MiB, default 1024. Keep it well above the last-level cache (260 MiB L3 on our Xeon).
fn mem_bytes() -> usize {
    let mib = std::env::var("FERRITE_BENCH_MEM_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&m| m > 0)
        .unwrap_or(1024);
    mib << 20
}

/// The read-reference buffer, built once and shared by all `mem_read*` cases.
fn mem_buf() -> &'static [u8] {
    static BUF: std::sync::OnceLock<Aligned> = std::sync::OnceLock::new();
    BUF.get_or_init(|| {
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 1) as u8).collect();
        Aligned::repeat(&pattern, mem_bytes())
    })
    .as_slice()
}

/// Streaming read kernels: every byte is loaded once into one of 8 independent accumulators
/// (512 bytes per iteration, 8 x 64-byte lines), so the loop is bound by loads, not by adds.
/// `PF` > 0 also issues one `prefetcht0` per line, `PF` bytes ahead; 0 leaves it to the
/// hardware prefetchers. A tail shorter than 512 bytes is ignored (buffers are MiB multiples).
#[cfg(target_arch = "x86_64")]
mod stream {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn prefetch_lines<const PF: usize>(q: *const u8) {
        if PF > 0 {
            for l in 0..8 {
                // A prefetch never faults; `wrapping_add` keeps the pointer math defined past the end.
                _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(PF + l * 64) as *const i8);
            }
        }
    }

    /// AVX-512: 8 zmm accumulators (`vpaddq zmm, zmm, [mem]`).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn read_avx512<const PF: usize>(buf: &[u8]) -> u64 {
        let p = buf.as_ptr();
        let mut acc = [_mm512_setzero_si512(); 8];
        for i in 0..buf.len() / 512 {
            let q = p.add(i * 512);
            prefetch_lines::<PF>(q);
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_epi64(*a, _mm512_loadu_si512(q.add(k * 64) as *const _));
            }
        }
        let mut s = _mm512_setzero_si512();
        for a in acc {
            s = _mm512_add_epi64(s, a);
        }
        _mm512_reduce_add_epi64(s) as u64
    }

    /// AVX2: 8 ymm accumulators, two loads into each per iteration.
    #[target_feature(enable = "avx2")]
    pub unsafe fn read_avx2<const PF: usize>(buf: &[u8]) -> u64 {
        let p = buf.as_ptr();
        let mut acc = [_mm256_setzero_si256(); 8];
        for i in 0..buf.len() / 512 {
            let q = p.add(i * 512);
            prefetch_lines::<PF>(q);
            for (k, a) in acc.iter_mut().enumerate() {
                let lo = _mm256_loadu_si256(q.add(k * 64) as *const __m256i);
                let hi = _mm256_loadu_si256(q.add(k * 64 + 32) as *const __m256i);
                *a = _mm256_add_epi64(*a, _mm256_add_epi64(lo, hi));
            }
        }
        let mut s = _mm256_setzero_si256();
        for a in acc {
            s = _mm256_add_epi64(s, a);
        }
        let v: [u64; 4] = std::mem::transmute(s);
        v.iter().fold(0u64, |x, &y| x.wrapping_add(y))
    }
}

/// Portable: 8 u64 accumulators over 64-byte chunks (the compiler vectorizes this for the
/// baseline target, SSE2 on x86-64). Roughly what the old `mem_bandwidth_sum_256m` measured.
fn read_portable(buf: &[u8]) -> u64 {
    let mut acc = [0u64; 8];
    for c in buf.chunks_exact(64) {
        for (k, a) in acc.iter_mut().enumerate() {
            let v = u64::from_le_bytes(c[k * 8..k * 8 + 8].try_into().unwrap());
            *a = a.wrapping_add(v);
        }
    }
    acc.iter().fold(0u64, |x, &y| x.wrapping_add(y))
}

/// A streaming read kernel; unsafe because the SIMD ones need their CPU feature.
type ReadFn = unsafe fn(&[u8]) -> u64;

/// The streaming read kernel named `kernel` with prefetch distance `PF`, if this CPU has it.
fn read_kernel<const PF: usize>(kernel: &str) -> Option<ReadFn> {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        "avx512" if is_x86_feature_detected!("avx512f") => Some(stream::read_avx512::<PF>),
        #[cfg(target_arch = "x86_64")]
        "avx2" if is_x86_feature_detected!("avx2") => Some(stream::read_avx2::<PF>),
        "portable" if PF == 0 => Some(read_portable),
        _ => None,
    }
}

fn run_read<const PF: usize>(b: Bencher, kernel: &str) {
    let Some(f) = read_kernel::<PF>(kernel) else {
        return; // kernel not on this CPU (or no prefetch variant)
    };
    let buf = mem_buf();
    // SAFETY: `read_kernel` only returns a SIMD kernel after detecting its feature.
    b.counter(BytesCount::new(buf.len()))
        .bench_local(|| black_box(unsafe { f(black_box(buf)) }));
}

/// Single-core read-bandwidth reference (the ceiling for `mem_matvec_rows`): stream
/// `FERRITE_BENCH_MEM_MIB` (default 1 GiB) once per sample, hardware prefetch only.
#[divan::bench(args = ["avx512", "avx2", "portable"], sample_count = 5, sample_size = 1)]
fn mem_read(b: Bencher, kernel: &str) {
    run_read::<0>(b, kernel);
}

/// Same as `mem_read`, plus a software prefetch of every line `PF` bytes ahead: a cross-check
/// that the reference isn't held back by the hardware prefetchers (1024 B was no better).
#[divan::bench(
    args = ["avx512", "avx2"],
    consts = [4096],
    sample_count = 5,
    sample_size = 1
)]
fn mem_read_prefetch<const PF: usize>(b: Bencher, kernel: &str) {
    run_read::<PF>(b, kernel);
}

/// Matvec out of cache: `FERRITE_BENCH_MEM_MIB` (default 1 GiB) of weights through the 4-row
/// kernels the engine uses (`vec_dot_rows`), one pass per sample. Compare with `mem_read`.
#[divan::bench(args = TYPES, sample_count = 5, sample_size = 1)]
fn mem_matvec_rows(b: Bencher, name: &str) {
    run_rows(b, name, mem_bytes());
}

/// As `mem_matvec_rows`, the weights in the x4 layout (`vec_dot_rows_x4`): what the engine
/// streams for these types on AVX-512 CPUs.
#[divan::bench(args = X4, sample_count = 5, sample_size = 1)]
fn mem_matvec_x4(b: Bencher, name: &str) {
    run_x4(b, name, mem_bytes());
}
