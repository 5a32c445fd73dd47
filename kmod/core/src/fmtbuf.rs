// SPDX-License-Identifier: GPL-2.0
//! `core::fmt` into a fixed buffer, for text the kernel hands to userspace
//! (procfs reads) without allocating. What does not fit is dropped.

use core::fmt;

/// A byte buffer (`[u8; N]` or `&mut [u8]`) plus how much of it is used.
#[derive(Debug)]
pub struct Truncating<B> {
    buf: B,
    len: usize,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Truncating<B> {
    pub const fn new(buf: B) -> Truncating<B> {
        Truncating { buf, len: 0 }
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> fmt::Write for Truncating<B> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let buf = self.buf.as_mut();
        let n = s.len().min(buf.len() - self.len);
        buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn keeps_what_fits() {
        let mut w = Truncating::new([0u8; 8]);
        write!(w, "abc{}", 12).unwrap();
        assert_eq!(w.as_bytes(), b"abc12");
        write!(w, "345678").unwrap();
        assert_eq!(w.as_bytes(), b"abc12345");
        w.clear();
        assert!(w.is_empty());
        let mut backing = [0u8; 4];
        let mut s = Truncating::new(&mut backing[..]);
        s.write_str("hello").unwrap();
        assert_eq!(s.len(), 4);
    }
}
