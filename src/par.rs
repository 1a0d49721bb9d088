//! A small order-keeping parallel map over a slice, on scoped threads: the
//! fleet-scale reads (inventory files, codebases, status files, site
//! observations) are independent per item and spend their time in parsing
//! and system calls, which spread well over the machine's cores.

/// `items.iter().map(f).collect()`, computed on up to
/// [`std::thread::available_parallelism`] threads in contiguous chunks;
/// the results keep the order of `items`. Few items run on the caller's
/// thread alone.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const MIN_PER_THREAD: usize = 16;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len() / MIN_PER_THREAD)
        .max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a parallel map worker panicked"))
            .collect()
    })
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
    }
}
