//! A source read through [`Yielding`] offers the core to another thread every
//! [`BYTES_BETWEEN_YIELDS`] bytes its decoder takes, as the PNG row loop does every so many
//! samples (`png_rows`). Renders run under the idle scheduling policy, which should hand the core
//! to any thread that wakes on it, yet another tenant's requests still waited on them: with the
//! policy and without these yields, a tenant's worst p99 under another's image renders was 3.0× its
//! quiet p99 (three runs: 2.98, 3.01, 3.22), with them 1.8× (1.85, 1.63, 1.84); at nice 19
//! alone, before the policy, a woken thread waited out the render's time slice, up to a 4 ms tick.
//! Counting what the decoder reads reaches into decoders whose loops are not Cabinet's. How much
//! work a byte stands for is the codec's: JPEG's entropy decoding reads its input a byte at a time
//! and spends about the same on each, so for the JPEG path (every photo) the yields come evenly; a
//! decoder that reads its whole input before it starts yields only then.

use std::io::{BufRead, Read, Result, Seek, SeekFrom};

/// Bytes of a source between two offers of the core: ~100 µs of baseline JPEG decoding at 1/8
/// scale, and a yield costs about a microsecond when nobody waits.
const BYTES_BETWEEN_YIELDS: usize = 16 * 1024;

/// Offers the core to another thread each time `every` units of work (bytes, samples) are done.
pub(crate) struct YieldEvery {
    every: usize,
    since_yield: usize,
}

impl YieldEvery {
    pub(crate) fn new(every: usize) -> Self {
        Self { every, since_yield: 0 }
    }

    pub(crate) fn advance(&mut self, amount: usize) {
        self.since_yield += amount;
        if self.since_yield >= self.every {
            self.since_yield = 0;
            std::thread::yield_now();
        }
    }
}

/// A reader that yields the core every [`BYTES_BETWEEN_YIELDS`] bytes read or consumed.
pub(crate) struct Yielding<R> {
    inner: R,
    yields: YieldEvery,
}

impl<R> Yielding<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, yields: YieldEvery::new(BYTES_BETWEEN_YIELDS) }
    }
}

impl<R: Read> Read for Yielding<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let read = self.inner.read(buf)?;
        self.yields.advance(read);
        Ok(read)
    }
}

impl<R: BufRead> BufRead for Yielding<R> {
    fn fill_buf(&mut self) -> Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.yields.advance(amount);
    }
}

impl<R: Seek> Seek for Yielding<R> {
    fn seek(&mut self, position: SeekFrom) -> Result<u64> {
        self.inner.seek(position)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn what_is_read_through_it_is_the_source_unchanged() {
        let source: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
        let mut read = Vec::new();
        Yielding::new(Cursor::new(&source)).read_to_end(&mut read).unwrap();
        assert_eq!(read, source);

        let mut buffered = Yielding::new(Cursor::new(&source));
        buffered.seek(SeekFrom::Start(99_990)).unwrap();
        assert_eq!(buffered.fill_buf().unwrap(), &source[99_990..]);
        buffered.consume(4);
        let mut rest = Vec::new();
        buffered.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &source[99_994..]);
    }
}
