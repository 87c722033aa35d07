//! A persistent thread pool in the style of ggml's: workers are created once, each op is one
//! call whose chunks are claimed dynamically from an atomic counter by whichever threads are
//! running (the caller is thread 0), and the call returns only when every chunk is done and no
//! worker is still inside the op (the per-op barrier). Idle workers spin briefly, then park, so
//! back-to-back ops of a forward pass cost no syscalls and no allocation; and a worker that the
//! OS has descheduled (a loaded machine) never stalls an op: the others take its chunks, and a
//! worker that arrives after the op is closed skips it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A task: called as `f(chunk, ith)` for every chunk, `ith` the running thread's slot.
pub type Task<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// Spin iterations before a worker parks (a few microseconds: long enough to bridge the gap
/// between consecutive ops of one forward pass).
const SPIN_ITERS: u32 = 20_000;

/// `state` bit: the current op accepts no more workers.
const CLOSED: usize = 1 << (usize::BITS - 1);

struct Shared {
    /// Bumped for every new op; workers compare against the last one they saw.
    generation: AtomicUsize,
    /// Workers inside the current op, plus the CLOSED bit.
    state: AtomicUsize,
    /// Next chunk to claim.
    next: AtomicUsize,
    n_chunks: AtomicUsize,
    /// The current task, lifetime-erased; only dereferenced by workers inside the op.
    task: Mutex<Option<TaskPtr>>,
    stop: AtomicBool,
    /// Workers parked (or about to park) on `wake`; `for_each` skips the wake-up syscall when
    /// none is, so back-to-back ops with spinning workers cost no syscall at all.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    n_threads: usize,
}

#[derive(Clone, Copy)]
struct TaskPtr(*const Task<'static>);
// SAFETY: the pointee is `Sync` and outlives every use (see `ThreadPool::run`).
unsafe impl Send for TaskPtr {}

/// Persistent workers; `n_threads` includes the calling thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes `run` calls from different threads sharing one pool.
    run_lock: Mutex<()>,
}

impl ThreadPool {
    /// A pool running ops on `n_threads` threads (at least 1; the caller counts as one).
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            state: AtomicUsize::new(CLOSED),
            next: AtomicUsize::new(0),
            n_chunks: AtomicUsize::new(0),
            task: Mutex::new(None),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            n_threads,
        });
        let workers = (1..n_threads)
            .map(|ith| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("ferrite-worker-{ith}"))
                    .spawn(move || worker_loop(&shared, ith))
                    .expect("spawning a pool worker")
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Run `f(chunk, ith)` for every `chunk` in `0..n_chunks`, spread over the threads, and
    /// return when all are done. `ith < n_threads()` identifies the thread (per-thread scratch).
    pub fn for_each(&self, n_chunks: usize, f: &Task<'_>) {
        let nth = self.shared.n_threads;
        if nth == 1 || n_chunks <= 1 {
            (0..n_chunks).for_each(|c| f(c, 0));
            return;
        }
        let _guard = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let sh = &*self.shared;
        // SAFETY: the erased reference is only used by workers that entered the op (state
        // count > 0), and we return only after closing the op and seeing the count reach 0.
        let ptr: *const Task<'static> = unsafe { std::mem::transmute(f as *const Task<'_>) };
        *sh.task.lock().unwrap() = Some(TaskPtr(ptr));
        sh.next.store(0, Ordering::SeqCst);
        sh.n_chunks.store(n_chunks, Ordering::SeqCst);
        sh.state.store(0, Ordering::SeqCst);
        // No lost wake-up: a worker registers in `sleepers` (SeqCst) before re-checking
        // `generation` under `lock`, so either it sees this bump or we see it and notify (under
        // the lock it holds from that check until it waits).
        sh.generation.fetch_add(1, Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = sh.lock.lock().unwrap();
            sh.wake.notify_all();
        }
        run_chunks(sh, f, 0);
        sh.state.fetch_or(CLOSED, Ordering::SeqCst);
        let mut spins = 0u32;
        while sh.state.load(Ordering::Acquire) != CLOSED {
            spins += 1;
            if spins < SPIN_ITERS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        *sh.task.lock().unwrap() = None;
    }

    /// Split `0..n` into `nth` contiguous chunks and return chunk `ith`.
    pub fn chunk(n: usize, ith: usize, nth: usize) -> std::ops::Range<usize> {
        let per = n.div_ceil(nth);
        let start = (ith * per).min(n);
        start..(start + per).min(n)
    }
}

fn worker_loop(shared: &Shared, ith: usize) {
    let mut seen = 0usize;
    loop {
        // Spin, then park until a new generation or stop.
        let mut spins = 0u32;
        loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            let g = shared.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins += 1;
            if spins < SPIN_ITERS {
                std::hint::spin_loop();
            } else {
                let l = shared.lock.lock().unwrap();
                shared.sleepers.fetch_add(1, Ordering::SeqCst);
                let _l = shared
                    .wake
                    .wait_while(l, |_| {
                        shared.generation.load(Ordering::SeqCst) == seen
                            && !shared.stop.load(Ordering::Acquire)
                    })
                    .unwrap();
                shared.sleepers.fetch_sub(1, Ordering::SeqCst);
                spins = 0;
            }
        }
        // Enter the op unless it is already closed.
        let mut s = shared.state.load(Ordering::Acquire);
        let entered = loop {
            if s & CLOSED != 0 {
                break false;
            }
            match shared
                .state
                .compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break true,
                Err(x) => s = x,
            }
        };
        if !entered {
            continue;
        }
        let task = *shared.task.lock().unwrap();
        if let Some(TaskPtr(p)) = task {
            // SAFETY: `for_each` keeps the task alive while a worker is inside the op.
            let f: &Task<'static> = unsafe { &*p };
            run_chunks(shared, f, ith);
        }
        shared.state.fetch_sub(1, Ordering::AcqRel);
    }
}

fn run_chunks(shared: &Shared, f: &Task<'_>, ith: usize) {
    let n = shared.n_chunks.load(Ordering::Acquire);
    loop {
        let c = shared.next.fetch_add(1, Ordering::AcqRel);
        if c >= n {
            break;
        }
        f(c, ith);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let _l = self.shared.lock.lock().unwrap();
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A raw pointer that threads of one op may share to write disjoint parts of a buffer.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    pub fn new(s: &mut [T]) -> SendPtr<T> {
        SendPtr(s.as_mut_ptr())
    }
    /// # Safety
    /// `start..start+len` must lie in the original slice and not overlap any range another
    /// thread accesses during the op.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_exactly_once() {
        let pool = ThreadPool::new(3);
        for round in 0..300 {
            let n = round % 37;
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.for_each(n, &|c, ith| {
                assert!(ith < 3);
                hits[c].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "round {round}"
            );
        }
    }

    #[test]
    fn workers_wake_after_parking() {
        let pool = ThreadPool::new(2);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let sum = AtomicUsize::new(0);
        pool.for_each(100, &|c, _| {
            sum.fetch_add(c, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 4950);
    }

    #[test]
    fn chunks_cover_range() {
        for n in 0..20 {
            for nth in 1..5 {
                let mut covered = vec![0; n];
                for ith in 0..nth {
                    for i in ThreadPool::chunk(n, ith, nth) {
                        covered[i] += 1;
                    }
                }
                assert!(covered.iter().all(|&c| c == 1));
            }
        }
    }
}
