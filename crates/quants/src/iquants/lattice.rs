//! ggml's grid-neighbour tables for the IQ1/IQ2/IQ3 quantizers (`iq2xs_init_impl`,
//! `iq3xs_init_impl`), built lazily once per grid.
//!
//! Each grid point is an `N`-vector of levels `l` (2 bits each for the 8-wide IQ1/IQ2 grids, 3
//! bits each for the 4-wide IQ3 grids), stored as the odd integers `2l+1`. `map[u]` for a packed
//! level vector `u` is the grid index when `u` is on the grid; otherwise it is `-(off+1)` where
//! `neighbours[off]` is a count `n` followed by `n` grid indices: all grid points at the
//! `nwant` smallest distinct squared distances from `u`, ordered by (distance, index) exactly as
//! ggml's `qsort` with `iq2_compare_func` orders them.

use super::grids::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID};
use std::sync::OnceLock;

pub(crate) struct Lattice<const N: usize> {
    /// Grid points as `2l+1` per coordinate (ggml's `kgrid_q2xs` / `kgrid_q3xs`).
    pub grid: Vec<[i8; N]>,
    pub map: Vec<i32>,
    pub neighbours: Vec<u16>,
}

impl<const N: usize> Lattice<N> {
    /// `levels[k]` = the level vector of grid point `k`; `bits` per coordinate in the packed key.
    fn build(levels: Vec<[u8; N]>, bits: u32, nwant: usize) -> Self {
        let kmap_size: usize = if bits == 2 { 43692 } else { 4096 };
        let grid: Vec<[i8; N]> = levels.iter().map(|l| l.map(|v| 2 * v as i8 + 1)).collect();
        let mut map = vec![-1i32; kmap_size];
        for (i, l) in levels.iter().enumerate() {
            let mut index = 0usize;
            for (k, &v) in l.iter().enumerate() {
                index |= (v as usize) << (bits as usize * k);
            }
            map[index] = i as i32;
        }
        let mask = (1usize << bits) - 1;
        let mut neighbours: Vec<u16> = Vec::new();
        let mut dist2 = vec![0i32; grid.len()];
        for i in 0..kmap_size {
            if map[i] >= 0 {
                continue;
            }
            let mut pos = [0i32; N];
            for (k, p) in pos.iter_mut().enumerate() {
                *p = 2 * ((i >> (bits as usize * k)) & mask) as i32 + 1;
            }
            for (d, g) in dist2.iter_mut().zip(&grid) {
                let mut s = 0i32;
                for k in 0..N {
                    let t = g[k] as i32 - pos[k];
                    s += t * t;
                }
                *d = s;
            }
            // The nwant smallest distinct distances, ascending.
            let mut levels_d: Vec<i32> = Vec::with_capacity(nwant);
            for &d in &dist2 {
                if levels_d.contains(&d) {
                    continue;
                }
                if levels_d.len() < nwant {
                    levels_d.push(d);
                    levels_d.sort_unstable();
                } else if d < levels_d[nwant - 1] {
                    levels_d[nwant - 1] = d;
                    levels_d.sort_unstable();
                }
            }
            let off = neighbours.len();
            map[i] = -(off as i32 + 1);
            neighbours.push(0);
            let mut n = 0u16;
            for &ld in &levels_d {
                for (j, &d) in dist2.iter().enumerate() {
                    if d == ld {
                        neighbours.push(j as u16);
                        n += 1;
                    }
                }
            }
            neighbours[off] = n;
        }
        Lattice {
            grid,
            map,
            neighbours,
        }
    }

    /// The neighbour list (count first) for an off-grid key `u` (`map[u] < 0`).
    #[inline]
    pub fn neighbours_of(&self, u: usize) -> &[u16] {
        let off = (-self.map[u] - 1) as usize;
        let n = self.neighbours[off] as usize;
        &self.neighbours[off..off + 1 + n]
    }
}

fn levels2(grid: &[u64], level_of: impl Fn(u8) -> u8) -> Vec<[u8; 8]> {
    grid.iter()
        .map(|&g| std::array::from_fn(|k| level_of((g >> (8 * k)) as u8)))
        .collect()
}

fn levels3(grid: &[u32], level_of: impl Fn(u8) -> u8) -> Vec<[u8; 4]> {
    grid.iter()
        .map(|&g| std::array::from_fn(|k| level_of((g >> (8 * k)) as u8)))
        .collect()
}

/// IQ2 grid bytes 0x08, 0x19, 0x2b are levels 0, 1, 2.
fn iq2_level(b: u8) -> u8 {
    match b {
        0x08 => 0,
        0x19 => 1,
        0x2b => 2,
        _ => unreachable!("byte {b:#x} is not an iq2 grid value"),
    }
}

pub(crate) fn iq2xxs() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(levels2(&IQ2XXS_GRID, iq2_level), 2, 2))
}

pub(crate) fn iq2xs() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(levels2(&IQ2XS_GRID, iq2_level), 2, 2))
}

pub(crate) fn iq2s() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(levels2(&IQ2S_GRID, iq2_level), 2, 1))
}

/// IQ1_S and IQ1_M share one table (grid bytes -1, 0, 1 are levels 0, 1, 2; `nwant = 3`).
pub(crate) fn iq1s() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(levels2(&IQ1S_GRID, |b| (b as i8 + 1) as u8), 2, 3))
}

/// IQ3_XXS: grid bytes 4, 12, .., 52, 62 are levels 0..8 (`nwant = 2`).
pub(crate) fn iq3xxs() -> &'static Lattice<4> {
    static L: OnceLock<Lattice<4>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(levels3(&IQ3XXS_GRID, |b| (b - 4) / 8), 3, 2))
}

/// IQ3_S: grid bytes 1, 3, .., 15 are levels 0..8 (`nwant = 3`).
pub(crate) fn iq3s() -> &'static Lattice<4> {
    static L: OnceLock<Lattice<4>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(levels3(&IQ3S_GRID, |b| (b - 1) / 2), 3, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kgrid<const N: usize>(l: &Lattice<N>, bits: u32) -> Vec<u16> {
        l.grid
            .iter()
            .map(|g| {
                g.iter().enumerate().fold(0u16, |acc, (k, &p)| {
                    acc | ((((p - 1) / 2) as u16) << (bits as usize * k))
                })
            })
            .collect()
    }

    // Oracle: ggml-quants.c's literal kgrid_* tables (first and last entries copied by hand).
    #[test]
    fn kgrids_match_ggml_tables() {
        let k = kgrid(iq2xxs(), 2);
        assert_eq!(&k[..8], &[0, 2, 5, 8, 10, 17, 20, 32]);
        assert_eq!(&k[252..], &[41472, 42008, 43088, 43268]);
        let k = kgrid(iq2xs(), 2);
        assert_eq!(&k[..8], &[0, 2, 5, 8, 10, 17, 20, 22]);
        assert_eq!(&k[508..], &[43560, 43562, 43665, 43690]);
        let k = kgrid(iq2s(), 2);
        assert_eq!(&k[..8], &[0, 2, 5, 8, 10, 17, 20, 22]);
        assert_eq!(&k[1020..], &[43554, 43560, 43656, 43690]);
        let k = kgrid(iq1s(), 2);
        assert_eq!(&k[..8], &[0, 2, 5, 8, 10, 17, 21, 32]);
        assert_eq!(&k[2044..], &[43680, 43682, 43688, 43690]);
        let k = kgrid(iq3xxs(), 3);
        assert_eq!(&k[..8], &[0, 2, 4, 9, 11, 15, 16, 18]);
        assert_eq!(&k[252..], &[3857, 3873, 3904, 3906, 3924, 3992][2..]);
        let k = kgrid(iq3s(), 3);
        assert_eq!(&k[..8], &[0, 1, 2, 5, 7, 8, 9, 10]);
        assert_eq!(&k[508..], &[3922, 3938, 3970, 3993, 4032][1..]);
    }

    // Oracle: ggml's definition — every off-grid key lists exactly the grid points at its
    // nwant smallest distances, sorted by (distance, index).
    #[test]
    fn neighbour_lists_are_the_nearest_shells() {
        let l = iq3s();
        let mut checked = 0;
        for u in (0..4096).step_by(37) {
            if l.map[u] >= 0 {
                assert_eq!(kgrid(l, 3)[l.map[u] as usize] as usize, u);
                continue;
            }
            let nb = l.neighbours_of(u);
            let pos: [i32; 4] = std::array::from_fn(|k| 2 * ((u >> (3 * k)) & 7) as i32 + 1);
            let d =
                |j: usize| -> i32 { (0..4).map(|k| (l.grid[j][k] as i32 - pos[k]).pow(2)).sum() };
            let mut all: Vec<(i32, usize)> = (0..l.grid.len()).map(|j| (d(j), j)).collect();
            all.sort();
            let mut shells = all.iter().map(|x| x.0).collect::<Vec<_>>();
            shells.dedup();
            let want: Vec<u16> = all
                .iter()
                .filter(|x| x.0 <= shells[2])
                .map(|x| x.1 as u16)
                .collect();
            assert_eq!(&nb[1..], &want[..], "key {u}");
            checked += 1;
        }
        assert!(checked > 50);
    }
}
