// SPDX-License-Identifier: AGPL-3.0-or-later
//! Splitting a message head into lines: the parser's innermost loop.

use crate::simd;

/// The lines of a message head, read front to back. Line ends are found 64 bytes at a time,
/// as a bit mask per block, so a head's dozen short lines cost a few compares each rather
/// than a search (and its set-up) each.
pub(super) struct Lines<'b> {
    buf: &'b [u8],
    /// Where the block `ends` describes begins.
    block: usize,
    /// Line ends in the block not yet handed out, bit `i` for `buf[block + i]`.
    ends: u64,
}

impl<'b> Lines<'b> {
    pub(super) fn new(buf: &'b [u8]) -> Self {
        Self {
            buf,
            block: 0,
            ends: newline_mask(buf),
        }
    }

    /// The next line end, if any.
    #[inline]
    fn next_end(&mut self) -> Option<usize> {
        while self.ends == 0 {
            self.block += 64;
            if self.block >= self.buf.len() {
                return None;
            }
            self.ends = newline_mask(&self.buf[self.block..]);
        }
        let at = self.block + self.ends.trailing_zeros() as usize;
        self.ends &= self.ends - 1;
        Some(at)
    }

    /// The line starting at `pos` (never before the last line asked for): its bytes without
    /// CR/LF, and where the next line starts. Bare LF is accepted as a line end, as tolerant
    /// stacks do.
    #[inline]
    pub(super) fn at(&mut self, pos: usize) -> Option<(&'b [u8], usize)> {
        let nl = loop {
            let nl = self.next_end()?;
            if nl >= pos {
                break nl;
            }
        };
        let line = &self.buf[pos..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some((line, nl + 1))
    }
}

/// Bit `i` set where `bytes[i]` is a line feed, for the first 64 bytes; a short tail is
/// padded.
#[inline]
fn newline_mask(bytes: &[u8]) -> u64 {
    simd::newline_mask(simd::first_block(bytes, &mut [0; 64]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::tests::varied;

    /// Every line end, the slow way.
    fn ends_bytewise(buf: &[u8]) -> Vec<usize> {
        (0..buf.len()).filter(|&i| buf[i] == b'\n').collect()
    }

    fn ends_by_lines(buf: &[u8]) -> Vec<usize> {
        let mut lines = Lines::new(buf);
        std::iter::from_fn(|| lines.next_end()).collect()
    }

    #[test]
    fn every_line_end_is_found_across_blocks_and_in_a_short_tail() {
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 300, 1000] {
            for seed in 0..20 {
                let buf = varied(len, seed);
                assert_eq!(ends_by_lines(&buf), ends_bytewise(&buf), "len {len}");
            }
        }
        // Lines longer than a block, and none at all.
        let mut long = vec![b'x'; 200];
        long[150] = b'\n';
        long.push(b'\n');
        assert_eq!(ends_by_lines(&long), vec![150, 200]);
        assert_eq!(ends_by_lines(&[b'x'; 500]), Vec::<usize>::new());
    }

    #[test]
    fn a_line_is_cut_at_its_end_without_the_carriage_return() {
        let buf = b"INVITE sip:b SIP/2.0\r\nVia: x\nTo: y\r\n\r\nbody";
        let mut lines = Lines::new(buf);
        assert_eq!(lines.at(0), Some((&b"INVITE sip:b SIP/2.0"[..], 22)));
        assert_eq!(lines.at(22), Some((&b"Via: x"[..], 29)));
        assert_eq!(lines.at(29), Some((&b"To: y"[..], 36)));
        assert_eq!(lines.at(36), Some((&b""[..], 38)));
        assert_eq!(lines.at(38), None, "the body has no line end");
    }

    #[test]
    fn asking_past_earlier_ends_skips_them() {
        let buf = b"a\nb\nc\nd\n";
        let mut lines = Lines::new(buf);
        assert_eq!(lines.at(4), Some((&b"c"[..], 6)));
        assert_eq!(lines.at(6), Some((&b"d"[..], 8)));
    }
}
