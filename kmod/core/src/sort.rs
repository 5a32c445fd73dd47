// SPDX-License-Identifier: GPL-2.0
//! An in-place heap sort for the module.
//!
//! Why not `slice::sort_unstable_by_key`: core's sorts call
//! `panic_on_ord_violation`, which the objtool of Linux 6.12 does not know
//! as a function that never returns, so the module's build warns that code
//! "falls through to next function" and its ORC data is wrong there. This
//! sort panics at most through bounds checks, which objtool knows.

/// Sorts `v` by `key`, ascending; not stable. O(n log n), no allocation.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    let len = v.len();
    for start in (0..len / 2).rev() {
        sift_down(v, start, len, &mut key);
    }
    for end in (1..len).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &mut key);
    }
}

/// Restores the max-heap property of `v[..end]` below `node`.
fn sift_down<T, K: Ord>(v: &mut [T], mut node: usize, end: usize, key: &mut impl FnMut(&T) -> K) {
    loop {
        let left = 2 * node + 1;
        if left >= end {
            return;
        }
        let right = left + 1;
        let child = if right < end && key(&v[right]) > key(&v[left]) {
            right
        } else {
            left
        };
        if key(&v[node]) >= key(&v[child]) {
            return;
        }
        v.swap(node, child);
        node = child;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn sorts_like_the_standard_library() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..200 {
            let v: Vec<u32> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 50) as u32
                })
                .collect();
            let mut ours = v.clone();
            sort_by_key(&mut ours, |&x| core::cmp::Reverse(x));
            let mut std_sorted = v;
            std_sorted.sort_by_key(|&x| core::cmp::Reverse(x));
            assert_eq!(ours, std_sorted);
        }
    }
}
