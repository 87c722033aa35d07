//! Allocation-free lookup tables over byte strings kept in one buffer: token text -> id, and
//! merge pair -> rank. Entries are ids into the buffers, so building them does not copy or
//! allocate per entry, and a lookup touches the table and the key bytes only.

use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(b);
    h.write_usize(b.len());
    h.finish()
}

fn hash_pair(a: &[u8], b: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(a);
    h.write_usize(a.len());
    h.write(b);
    h.write_usize(b.len());
    h.finish()
}

/// Strings stored back to back: string `i` is `buf[offs[i]..offs[i + 1]]`.
#[derive(Default)]
pub(crate) struct Strings {
    pub buf: Vec<u8>,
    pub offs: Vec<u32>,
}

impl Strings {
    pub fn with_capacity(n: usize) -> Strings {
        let mut offs = Vec::with_capacity(n + 1);
        offs.push(0);
        Strings {
            buf: Vec::new(),
            offs,
        }
    }
    pub fn get(&self, i: u32) -> &[u8] {
        let i = i as usize;
        if i + 1 >= self.offs.len() {
            return &[];
        }
        &self.buf[self.offs[i] as usize..self.offs[i + 1] as usize]
    }
    /// Append a string; `false` when the buffer would pass 4 GiB.
    pub fn push(&mut self, s: &[u8]) -> bool {
        if self.buf.len() + s.len() > u32::MAX as usize {
            return false;
        }
        self.buf.extend_from_slice(s);
        self.offs.push(self.buf.len() as u32);
        true
    }
}

/// Text -> id over a [`Strings`].
#[derive(Default)]
pub(crate) struct TextIndex {
    table: HashTable<u32>,
}

impl TextIndex {
    pub fn with_capacity(n: usize) -> TextIndex {
        TextIndex {
            table: HashTable::with_capacity(n),
        }
    }

    pub fn find(&self, strings: &Strings, key: &[u8]) -> Option<u32> {
        self.table
            .find(hash_bytes(key), |&id| strings.get(id) == key)
            .copied()
    }

    /// Index string `id` of `strings`; `Err(existing)` when its text is already indexed.
    pub fn insert(&mut self, strings: &Strings, id: u32) -> Result<(), u32> {
        let key = strings.get(id);
        let h = hash_bytes(key);
        if let Some(&existing) = self.table.find(h, |&x| strings.get(x) == key) {
            return Err(existing);
        }
        self.table
            .insert_unique(h, id, |&x| hash_bytes(strings.get(x)));
        Ok(())
    }
}

/// BPE merges: `(left, right)` text pair -> rank (the first occurrence wins, as llama.cpp's
/// `emplace`).
#[derive(Default)]
pub(crate) struct MergeTable {
    buf: Vec<u8>,
    /// Per rank: left start, left end, right start, right end in `buf`.
    spans: Vec<[u32; 4]>,
    table: HashTable<u32>,
    n_unique: usize,
}

impl MergeTable {
    pub fn with_capacity(n: usize) -> MergeTable {
        MergeTable {
            buf: Vec::new(),
            spans: Vec::with_capacity(n),
            table: HashTable::with_capacity(n),
            n_unique: 0,
        }
    }

    fn pair(&self, r: u32) -> (&[u8], &[u8]) {
        let [a, b, c, d] = self.spans[r as usize];
        (
            &self.buf[a as usize..b as usize],
            &self.buf[c as usize..d as usize],
        )
    }

    /// Add the merge of the next rank; `false` when the buffer would pass 4 GiB.
    pub fn push(&mut self, left: &[u8], right: &[u8]) -> bool {
        if self.buf.len() + left.len() + right.len() > u32::MAX as usize {
            return false;
        }
        let a = self.buf.len() as u32;
        self.buf.extend_from_slice(left);
        let b = self.buf.len() as u32;
        self.buf.extend_from_slice(right);
        let d = self.buf.len() as u32;
        let rank = self.spans.len() as u32;
        self.spans.push([a, b, b, d]);
        let h = hash_pair(left, right);
        if self
            .table
            .find(h, |&r| self.pair(r) == (left, right))
            .is_none()
        {
            let (buf, spans) = (&self.buf, &self.spans);
            self.table.insert_unique(h, rank, |&r| {
                let [a, b, c, d] = spans[r as usize];
                hash_pair(&buf[a as usize..b as usize], &buf[c as usize..d as usize])
            });
            self.n_unique += 1;
        }
        true
    }

    pub fn rank(&self, left: &[u8], right: &[u8]) -> Option<u32> {
        self.table
            .find(hash_pair(left, right), |&r| self.pair(r) == (left, right))
            .copied()
    }

    /// Distinct merge pairs.
    pub fn len(&self) -> usize {
        self.n_unique
    }
}
