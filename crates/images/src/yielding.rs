//! A source read through [`Yielding`] offers the core to another thread every
//! [`BYTES_BETWEEN_YIELDS`] bytes its decoder takes, as the PNG row loop does every so many
//! samples (`png_rows`): renders run at the lowest priority, yet a request thread woken on the core
//! a render holds waits for the render's time slice to end, up to a 4 ms tick, even with the other
//! core idle. Counting what the decoder reads reaches into decoders whose loops are not Cabinet's.
//! How much work a byte stands for is the codec's: JPEG's entropy decoding reads its input a byte
//! at a time and spends about the same on each, so for the JPEG path (every photo) the yields come
//! evenly; a decoder that reads its whole input before it starts yields only then.

use std::io::{BufRead, Read, Result, Seek, SeekFrom};

/// Bytes of a source between two offers of the core: ~100 µs of baseline JPEG decoding at 1/8
/// scale, and a yield costs about a microsecond when nobody waits.
const BYTES_BETWEEN_YIELDS: usize = 16 * 1024;

/// A reader that yields the core every [`BYTES_BETWEEN_YIELDS`] bytes read or consumed.
pub(crate) struct Yielding<R> {
    inner: R,
    since_yield: usize,
}

impl<R> Yielding<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, since_yield: 0 }
    }

    fn count(&mut self, bytes: usize) {
        self.since_yield += bytes;
        if self.since_yield >= BYTES_BETWEEN_YIELDS {
            self.since_yield = 0;
            std::thread::yield_now();
        }
    }
}

impl<R: Read> Read for Yielding<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let read = self.inner.read(buf)?;
        self.count(read);
        Ok(read)
    }
}

impl<R: BufRead> BufRead for Yielding<R> {
    fn fill_buf(&mut self) -> Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.count(amount);
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
