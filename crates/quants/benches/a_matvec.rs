//! Matrix-vector dot kernels, single core, reported as GB/s of weight bytes (divan's
//! `bytes/s` counter): in-cache (64 KiB of weights) and out-of-cache (64 MiB, iterating rows),
//! plus a memory-bandwidth reference (sum of a 256 MiB u64 slice) to state the ratio.
//!
//! Run: `cargo bench -p ferrite-quants` (set FERRITE_NO_SIMD=1 for the scalar path).
use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use ferrite_quants::simd::{dot_fn_at, Level};
use ferrite_quants::{kernels, quantize_row, row_bytes, vec_dot, vec_dot_rows, GgmlType};

fn main() {
    divan::main();
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
    "IQ3_S/scalar",
    "IQ3_S/avx2",
    "IQ2_S/scalar",
    "IQ2_S/avx2",
    "IQ1_S/scalar",
    "IQ1_S/avx2",
    "IQ1_M/scalar",
    "IQ1_M/avx2",
    "TQ1_0/scalar",
    "TQ1_0/avx2",
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
    "IQ4_XS/scalar",
    "IQ4_XS/avx2",
    "MXFP4/scalar",
    "MXFP4/avx2",
    "TQ2_0/scalar",
    "TQ2_0/avx2",
    "Q4_K/avx2",
    "Q4_K/avx512",
];
const N: usize = 4096; // elements per row

struct Case {
    ty: GgmlType,
    rows: usize,
    w: Vec<u8>,
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
    let mut w = Vec::with_capacity(rows * rb);
    for _ in 0..rows {
        w.extend_from_slice(&one);
    }
    let y: Vec<f32> = (0..N).map(|_| rnd()).collect();
    let mut a = vec![0u8; row_bytes(k.vec_dot_type, N).unwrap()];
    quantize_row(k.vec_dot_type, &y, &mut a).unwrap();
    Case { ty, rows, w, a }
}

fn run_rows(b: Bencher, name: &str, bytes: usize) {
    let c = make(name, bytes);
    let mut out = vec![0f32; c.rows];
    b.counter(BytesCount::new(c.w.len())).bench_local(|| {
        vec_dot_rows(c.ty, N, black_box(&c.w), black_box(&c.a), &mut out).unwrap();
        black_box(&out);
    });
}

fn run_single(b: Bencher, name: &str, bytes: usize) {
    let c = make(name, bytes);
    let rb = row_bytes(c.ty, N).unwrap();
    b.counter(BytesCount::new(c.w.len())).bench_local(|| {
        let mut s = 0f32;
        for r in c.w.chunks_exact(rb) {
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

/// 64 KiB of weights, one `vec_dot` call per row.
#[divan::bench(args = TYPES)]
fn in_cache_64k_single(b: Bencher, name: &str) {
    run_single(b, name, 64 << 10);
}

/// 64 MiB of weights (out of cache), 4-row kernels where available.
#[divan::bench(args = TYPES, sample_count = 20, sample_size = 1)]
fn out_of_cache_64m_rows(b: Bencher, name: &str) {
    run_rows(b, name, 64 << 20);
}

/// 64 MiB of weights, one `vec_dot` call per row.
#[divan::bench(args = TYPES, sample_count = 20, sample_size = 1)]
fn out_of_cache_64m_single(b: Bencher, name: &str) {
    run_single(b, name, 64 << 20);
}

/// Added types, 64 KiB of weights, one `vec_dot` per row (they have no 4-row kernels).
#[divan::bench(args = ADDED)]
fn added_in_cache_64k(b: Bencher, name: &str) {
    run_single(b, name, 64 << 10);
}

/// Added types, 64 MiB of weights (out of cache).
#[divan::bench(args = ADDED, sample_count = 20, sample_size = 1)]
fn added_out_of_cache_64m(b: Bencher, name: &str) {
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
    b.counter(BytesCount::new(c.w.len())).bench_local(|| {
        let mut s = 0f32;
        for r in c.w.chunks_exact(rb) {
            s += f(N, black_box(r), black_box(&c.a));
        }
        black_box(s);
    });
}

/// Memory-bandwidth reference: sum of a 256 MiB u64 slice.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn mem_bandwidth_sum_256m(b: Bencher) {
    let v: Vec<u64> = (0..(256usize << 20) / 8).map(|i| i as u64).collect();
    b.counter(BytesCount::new(v.len() * 8)).bench_local(|| {
        let mut s = [0u64; 4];
        for c in black_box(&v).chunks_exact(4) {
            for k in 0..4 {
                s[k] = s[k].wrapping_add(c[k]);
            }
        }
        black_box(s);
    });
}
