// SPDX-License-Identifier: AGPL-3.0-or-later
//! A read buffer that hands out a file's records in place: one large read at a time, and a
//! partial record moved to the front when the next read needs room for the whole of it.

use std::io::Read;

/// Bytes read from the input at a time.
pub(crate) const CHUNK: usize = 1 << 20;

/// The unconsumed part of an input, `buf[pos..end]`.
#[derive(Debug)]
pub(crate) struct Window<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    at_eof: bool,
}

impl<R: Read> Window<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            at_eof: false,
        }
    }

    /// Makes `want` unconsumed bytes available; false when the input ends first.
    pub(crate) fn fill(&mut self, want: usize) -> Result<bool, String> {
        if self.end - self.pos >= want {
            return Ok(true);
        }
        // Move the partial record to the front, and make room for the whole of it.
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.end < want && !self.at_eof {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => self.at_eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(self.end >= want)
    }

    /// Bytes the buffer holds room for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Unconsumed bytes available now.
    pub(crate) fn available(&self) -> usize {
        self.end - self.pos
    }

    /// Where the unconsumed bytes start in the buffer (for [`Window::slice`]).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The unconsumed bytes.
    pub(crate) fn ahead(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Bytes at a buffer position taken from [`Window::pos`] since the last `fill`.
    pub(crate) fn slice(&self, start: usize, len: usize) -> &[u8] {
        &self.buf[start..start + len]
    }
}
