//! A small order-keeping parallel map over a slice, on scoped threads: the
//! fleet-scale reads (inventory files, codebases, status files, site
//! observations) are independent per item and spend their time in parsing
//! and system calls, which spread well over the machine's cores.

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
