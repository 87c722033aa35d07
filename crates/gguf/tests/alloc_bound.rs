//! No allocation is sized by an unchecked field: while parsing hostile headers (huge counts,
//! huge string and array lengths), no single allocation exceeds the input size plus a small
//! constant. Oracle: a counting global allocator recording the largest request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

fn parse_bounded(input: Vec<u8>) {
    let len = input.len();
    let bytes = input.clone();
    LARGEST.store(0, Ordering::Relaxed);
    let r = ferrite_gguf::GgufFile::from_bytes(bytes);
    let largest = LARGEST.load(Ordering::Relaxed);
    // The error message itself and hash-map buckets are small; 64 KiB covers them.
    assert!(
        largest <= len + 65536,
        "largest allocation {largest} for a {len}-byte input"
    );
    assert!(r.is_err());
}

#[test]
fn hostile_sizes_allocate_nothing_big() {
    // Counts just under the "fits in the file" bound, with a 1 MiB file of zeros.
    let mut b = header(0, (1 << 20) / 13);
    b.resize(1 << 20, 0);
    parse_bounded(b);
    let mut b = header((1 << 20) / 32, 0);
    b.resize(1 << 20, 0xff);
    parse_bounded(b);
    parse_bounded(header(u64::MAX, u64::MAX));
    // Key length 2^62, string value 2^40, array of 2^61 strings.
    let mut b = header(0, 1);
    b.extend_from_slice(&(1u64 << 62).to_le_bytes());
    b.resize(4096, 0);
    parse_bounded(b);
    let mut b = header(0, 1);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    parse_bounded(b);
    let mut b = header(0, 1);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 61).to_le_bytes());
    b.resize(4096, 0);
    parse_bounded(b);
}
