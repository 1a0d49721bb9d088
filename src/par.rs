//! A small order-keeping parallel map over a slice, on scoped threads ([`map`]): the
//! fleet-scale reads (inventory files, codebases, status files, site
//! observations) are independent per item and spend their time in parsing
//! and system calls, which spread well over the machine's cores. And
//! [`ReadAhead`]: a reader whose source is read on a thread of its own.

/// `items.iter().map(f).collect()`, computed on up to
/// [`std::thread::available_parallelism`] threads; the results keep the
/// order of `items`. Threads take small batches from a shared counter, so
/// a slow stretch of items (big files, one slow database) does not leave
/// the other threads idle. Few items run on the caller's thread alone.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const MIN_PER_THREAD: usize = 16;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len() / MIN_PER_THREAD)
        .max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let batch = (items.len() / (threads * 16)).clamp(1, 256);
    let next = AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut parts: Vec<(usize, Vec<R>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let start = next.fetch_add(batch, Ordering::Relaxed);
                        if start >= items.len() {
                            break done;
                        }
                        let end = (start + batch).min(items.len());
                        done.push((start, items[start..end].iter().map(f).collect()));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a parallel map worker panicked"))
            .collect()
    });
    parts.sort_unstable_by_key(|(start, _)| *start);
    parts.into_iter().flat_map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order() {
        let v: Vec<u32> = (0..1000).collect();
        assert_eq!(
            super::map(&v, |x| x * 2),
            v.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert_eq!(super::map(&v[..3], |x| x + 1), vec![1, 2, 3]);
        // Uneven work still comes back in order.
        let uneven = super::map(&v, |x| {
            if x % 97 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            x + 1
        });
        assert_eq!(uneven, (1..=1000).collect::<Vec<_>>());
    }
}

/// A reader whose source is read on a thread of its own, up to `depth`
/// chunks ahead: a decompressor running beside the code that consumes
/// its output (as `tar -xz` runs `gzip -d` in a process beside it), so
/// inflating an archive and writing what it holds share two cores.
///
/// An error of the source is returned once, where it happened in the
/// stream; dropping the reader stops the thread at its next chunk.
pub struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ReadAhead {
    /// Reads `src` on a new thread, in chunks of `chunk` bytes, at most
    /// `depth` of them waiting.
    pub fn new<R: std::io::Read + Send + 'static>(
        mut src: R,
        chunk: usize,
        depth: usize,
    ) -> ReadAhead {
        let (tx, rx) = std::sync::mpsc::sync_channel(depth);
        std::thread::spawn(move || loop {
            let mut buf = vec![0u8; chunk];
            let mut filled = 0;
            // Whole chunks (but for the last): fewer hand-overs.
            let r = loop {
                match src.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(filled);
            let last = filled == 0;
            let sent = match r {
                Ok(()) if last => break,
                Ok(()) => tx.send(Ok(buf)),
                Err(e) => {
                    // What was read before the error comes first.
                    if !buf.is_empty() && tx.send(Ok(buf)).is_err() {
                        break;
                    }
                    let _ = tx.send(Err(e)); // the reader may be gone: nothing to tell
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        });
        ReadAhead {
            chunks: rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl std::io::Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The thread ended: the source is exhausted.
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod read_ahead_tests {
    use super::ReadAhead;
    use std::io::Read;

    #[test]
    fn read_ahead_gives_the_same_bytes_and_the_error_where_it_was() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = Vec::new();
        ReadAhead::new(std::io::Cursor::new(data.clone()), 4096, 2)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk gone"));
                }
                let n = b.len().min(self.0);
                b[..n].fill(1);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut r = ReadAhead::new(Fails(10_000), 4096, 2);
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        assert_eq!(e.to_string(), "disk gone");
        assert_eq!(got.len(), 10_000, "everything before the error first");
    }
}
