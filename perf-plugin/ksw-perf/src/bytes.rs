// SPDX-License-Identifier: GPL-2.0
//! A bounds-checked reader over a byte slice that knows the file offset of
//! every byte it hands out, so every error can say where it happened.

use crate::read::ReadError;

/// Reads numbers and strings from `buf`, whose first byte is at file offset
/// `base`. Every read is checked; nothing here can panic.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    big_endian: bool,
}

impl<'a> Cursor<'a> {
    /// A little-endian cursor.
    pub(crate) fn new(buf: &'a [u8], base: u64) -> Cursor<'a> {
        Cursor {
            buf,
            pos: 0,
            base,
            big_endian: false,
        }
    }

    /// Switch the byte order of the numbers read from now on.
    pub(crate) fn set_big_endian(&mut self, big_endian: bool) {
        self.big_endian = big_endian;
    }

    /// File offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// Bytes not yet read.
    pub(crate) fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Take `n` bytes, or fail saying what needed them.
    pub(crate) fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], ReadError> {
        let left = self.left();
        let Some(end) = usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .and_then(|n| self.pos.checked_add(n))
        else {
            return Err(ReadError::Truncated {
                what,
                offset: self.offset(),
                need: n,
                left: left as u64,
            });
        };
        let out = self.buf.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(out)
    }

    /// Skip `n` bytes.
    pub(crate) fn skip(&mut self, n: u64, what: &'static str) -> Result<(), ReadError> {
        self.take(n, what).map(|_| ())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ReadError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Read a `u8`.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ReadError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Read a `u16` in the cursor's byte order.
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, ReadError> {
        let a = self.array(what)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    /// Read a `u32` in the cursor's byte order.
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, ReadError> {
        let a = self.array(what)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    /// Read a `u64` in the cursor's byte order.
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, ReadError> {
        let a = self.array(what)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }

    /// Read bytes up to and including a NUL; returns them without the NUL.
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<&'a [u8], ReadError> {
        let rest = self.rest();
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                let s = self.take(n as u64, what)?;
                self.pos = self.pos.saturating_add(1);
                Ok(s)
            }
            None => Err(ReadError::Invalid {
                what,
                offset: self.offset(),
                msg: format!("no NUL terminator in the {} bytes left", rest.len()),
            }),
        }
    }
}

/// The bytes of `s` before its first NUL (all of it if there is none).
pub(crate) fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(n) => s.get(..n).unwrap_or(s),
        None => s,
    }
}

/// Lossy UTF-8 of the bytes before the first NUL.
pub(crate) fn nul_str(s: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(until_nul(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_errors() {
        let data = [1u8, 0, 2, 0, 0, 0, b'h', b'i', 0, 9];
        let mut c = Cursor::new(&data, 0x100);
        assert_eq!(c.u16("a").unwrap(), 1);
        assert_eq!(c.u32("b").unwrap(), 2);
        assert_eq!(c.cstr("s").unwrap(), b"hi");
        assert_eq!(c.offset(), 0x109);
        let e = c.u64("tail").unwrap_err().to_string();
        assert!(e.contains("offset 0x109"), "{e}");
        assert!(e.contains("needs 8 bytes, only 1 left"), "{e}");
        let e = c.take(u64::MAX, "huge").unwrap_err().to_string();
        assert!(e.contains("offset 0x109"), "{e}");
        let e = c.cstr("str").unwrap_err().to_string();
        assert!(e.contains("NUL"), "{e}");
        c.set_big_endian(true);
        assert_eq!(c.u8("x").unwrap(), 9);
        assert_eq!(c.left(), 0);
    }
}
