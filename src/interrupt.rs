//! SIGINT and SIGTERM during `hoist apply`: instead of killing the process
//! mid-task (a site left in maintenance until some later command recovers
//! it), the first signal sets the apply's cancel flag: the running step
//! finishes, each running task is undone (or finished, past its point of no
//! return) and no new one starts. Further signals are ignored, and said so:
//! honouring them would leave the half state the first one avoids.
//!
//! The handler only stores to an atomic and calls `write(2)`, both
//! async-signal-safe. (`hoist watch` has its own handling on its runtime.)

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

/// The flag the handler sets: leaked, as the handler may run until the
/// process ends.
static FLAG: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

const FIRST: &[u8] = b"hoist: interrupted: the running step finishes, each running task is undone (or finished past its point of no return), and nothing new starts\n";
const AGAIN: &[u8] =
    b"hoist: already stopping; this signal is ignored so that nothing is left half done\n";

extern "C" fn on_signal(_sig: libc::c_int) {
    let p = FLAG.load(Ordering::SeqCst);
    if p.is_null() {
        return;
    }
    // SAFETY: FLAG only ever holds a pointer leaked from an Arc, never freed.
    let flag = unsafe { &*p };
    let msg = if flag.swap(true, Ordering::SeqCst) {
        AGAIN
    } else {
        FIRST
    };
    // SAFETY: write(2) is async-signal-safe; errno is put back for the code
    // the signal interrupted.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(2, msg.as_ptr().cast(), msg.len());
        *libc::__errno_location() = errno;
    }
}

/// Handles SIGINT and SIGTERM from now on by setting the returned flag
/// (the same one on every call). System calls they interrupt are restarted.
pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    let mut p = FLAG.load(Ordering::SeqCst);
    if p.is_null() {
        let fresh = Arc::into_raw(Arc::new(AtomicBool::new(false))) as *mut AtomicBool;
        p = match FLAG.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => fresh,
            Err(other) => {
                // SAFETY: `fresh` was never published.
                drop(unsafe { Arc::from_raw(fresh) });
                other
            }
        };
    }
    // SAFETY: `p` came from Arc::into_raw and that reference is never given
    // back, so one more strong count keeps it valid for the returned Arc.
    let flag = unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    };
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler is an extern "C"
        // fn that only does async-signal-safe work.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(flag)
}
