// SPDX-License-Identifier: AGPL-3.0-or-later
//! A capture file mapped into memory, so its records are read where the page cache holds
//! them instead of being copied out by `read` first (the copy was a twentieth of a run).
//!
//! The mapping is read front to back through a window: the next few MiB are paged in ahead
//! with one call, and the pages behind are let go, so the resident size stays a few MiB
//! whatever the file's size.
//!
//! A mapped file that shrinks underneath (a log rotation truncating it in place) would kill
//! the process with SIGBUS at the first page past the new end. A handler catches that fault
//! for the mappings made here, puts zero pages where the vanished part of the file was and
//! marks the mapping: the read goes on, and the reader reports the file as cut short, as it
//! would with `read`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Paged in ahead of the reader, and let go behind it, this many bytes at a time.
const WINDOW: usize = 4 << 20;
/// `madvise` advice that pages a range in (Linux 5.14); older kernels refuse it, and the
/// pages then come in on first touch.
const MADV_POPULATE_READ: libc::c_int = 22;
/// Mappings guarded at once; past this, files are read with `read`.
const GUARDS: usize = 64;

/// One guarded mapping's address range (`start` 0 when the guard is free), and whether a
/// fault found the file shorter than the range.
struct Guard {
    start: AtomicUsize,
    end: AtomicUsize,
    shrank: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // the initialiser of each array element
const FREE: Guard = Guard {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    shrank: AtomicBool::new(false),
};
static GUARDED: [Guard; GUARDS] = [FREE; GUARDS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
/// Whether the handler is in place; if installing it failed, nothing is mapped.
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The SIGBUS action before ours, put back for faults outside our mappings.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// A read-only mapping of a whole regular file.
#[derive(Debug)]
pub(crate) struct Mapping {
    start: NonNull<u8>,
    len: usize,
    guard: usize,
    /// Bytes before this are let go; bytes from it to `ahead` are paged in.
    behind: usize,
    ahead: usize,
}

// SAFETY: the mapping is plain read-only memory owned by this value.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `file` if it is a non-empty regular file and a guard is free; `None` otherwise,
    /// and the caller reads it with `read`.
    pub(crate) fn of(file: &File) -> Option<Self> {
        let meta = file.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 {
            return None;
        }
        INSTALL.call_once(install_handler);
        if !INSTALLED.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of the whole file; the kernel picks the
        // address. The file may change underneath: the guard handles it shrinking.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return None;
        }
        let Some(guard) = guard_range(start as usize, start as usize + len) else {
            // SAFETY: unmapping the mapping just made, which nothing else has seen.
            unsafe { libc::munmap(start, len) };
            return None;
        };
        // SAFETY: advice on our own mapping; failure only loses the advice.
        unsafe { libc::madvise(start, len, libc::MADV_SEQUENTIAL) };
        let mut mapping = Self {
            start: NonNull::new(start.cast())?,
            len,
            guard,
            behind: 0,
            ahead: 0,
        };
        mapping.reading_at(0);
        Some(mapping)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes are mapped readable at `start` for as long as `self` lives;
        // if the file shrinks, the guard puts zero pages in its place.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }

    /// The reader has moved on to `pos`: pages the next window in once it gets close, and
    /// lets go of the pages before `pos`, which no frame refers to any more.
    pub(crate) fn reading_at(&mut self, pos: usize) {
        if pos + WINDOW / 2 < self.ahead || self.ahead == self.len {
            return;
        }
        let page = PAGE.load(Ordering::Relaxed);
        let behind = pos / page * page;
        if behind > self.behind {
            // SAFETY: dropping our own pages of an unwritten private file mapping: touching
            // them again pages them back in from the file.
            unsafe { self.advise(self.behind, behind, libc::MADV_DONTNEED) };
            self.behind = behind;
        }
        let ahead = (self.ahead.max(pos) + WINDOW).min(self.len);
        // SAFETY: paging in our own mapping.
        unsafe { self.advise(self.ahead, ahead, MADV_POPULATE_READ) };
        self.ahead = ahead;
    }

    /// Whether the file turned out shorter than when it was mapped.
    pub(crate) fn shrank(&self) -> bool {
        GUARDED[self.guard].shrank.load(Ordering::Relaxed)
    }

    /// # Safety
    /// The advice must not discard data the program still needs.
    unsafe fn advise(&self, from: usize, to: usize, advice: libc::c_int) {
        if to > from {
            let at = self.start.as_ptr().wrapping_add(from);
            // SAFETY: the range lies within the mapping; the caller vouches for the advice.
            unsafe { libc::madvise(at.cast(), to - from, advice) };
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let guard = &GUARDED[self.guard];
        guard.end.store(0, Ordering::Release);
        guard.start.store(0, Ordering::Release);
        // SAFETY: the whole mapping, ours alone, no longer referred to.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.len) };
    }
}

/// Takes a free guard for `[start, end)`.
fn guard_range(start: usize, end: usize) -> Option<usize> {
    GUARDED.iter().position(|guard| {
        if guard
            .start
            .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        guard.shrank.store(false, Ordering::Relaxed);
        guard.end.store(end, Ordering::Release);
        guard.start.store(start, Ordering::Release);
        true
    })
}

fn install_handler() {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if let Ok(page) = usize::try_from(page) {
        if page.is_power_of_two() {
            PAGE.store(page, Ordering::Relaxed);
        }
    }
    // SAFETY: installs `on_sigbus` with SA_SIGINFO (the signature it has), keeping the
    // previous action in PREVIOUS, which is written here once, before any fault can read it.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        let previous = (&raw mut PREVIOUS).cast::<libc::sigaction>();
        if libc::sigaction(libc::SIGBUS, &action, previous) == 0 {
            INSTALLED.store(true, Ordering::Release);
        }
    }
}

/// A fault inside a guarded mapping means the file shrank: zero pages go where the rest of
/// it was, the mapping is marked, and the faulting read goes on (reading zeros). A fault
/// anywhere else puts the previous action back, under which it repeats. Only atomics and
/// system calls here, as a signal handler must.
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands a SIGBUS handler a valid siginfo.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for guard in &GUARDED {
        let (start, end) = (
            guard.start.load(Ordering::Acquire),
            guard.end.load(Ordering::Acquire),
        );
        if start == 0 || start == usize::MAX || !(start..end).contains(&addr) {
            continue;
        }
        let from = addr / page * page;
        // SAFETY: replaces, within our own mapping, the pages from the fault to its end
        // with anonymous zero pages; nothing else lives in that range.
        let zeros = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                end - from,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        guard.shrank.store(true, Ordering::Release);
        if zeros != libc::MAP_FAILED {
            return;
        }
        break;
    }
    // SAFETY: PREVIOUS was written before the handler was installed.
    unsafe {
        libc::sigaction(
            libc::SIGBUS,
            (&raw const PREVIOUS).cast::<libc::sigaction>(),
            std::ptr::null_mut(),
        )
    };
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn temp_file(name: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("spycraft-{}-{name}", std::process::id()));
        let mut file = File::create(&path).expect("temp file");
        file.write_all(bytes).expect("written");
        let file = File::open(&path).expect("reopened");
        (path, file)
    }

    #[test]
    fn maps_the_whole_file_and_reads_it_through_the_window() {
        let bytes: Vec<u8> = (0..3 * WINDOW + 123).map(|i| (i % 251) as u8).collect();
        let (path, file) = temp_file("window", &bytes);
        let mut mapping = Mapping::of(&file).expect("mapped");
        let mut at = 0;
        while at < bytes.len() {
            mapping.reading_at(at);
            let to = (at + 100_000).min(bytes.len());
            assert_eq!(&mapping.bytes()[at..to], &bytes[at..to]);
            at = to;
        }
        assert!(!mapping.shrank());
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn an_empty_file_or_a_directory_is_not_mapped() {
        let (path, file) = temp_file("empty", b"");
        assert!(Mapping::of(&file).is_none());
        std::fs::remove_file(path).ok();
        let dir = File::open(std::env::temp_dir()).expect("directory");
        assert!(Mapping::of(&dir).is_none());
    }

    #[test]
    fn a_file_cut_short_underneath_reads_as_zeros_and_says_so() {
        let bytes = vec![0xabu8; 2 * WINDOW];
        let (path, file) = temp_file("shrinks", &bytes);
        let mut mapping = Mapping::of(&file).expect("mapped");
        mapping.reading_at(0);
        assert_eq!(mapping.bytes()[WINDOW + 10], 0xab);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("writable")
            .set_len(4096)
            .expect("truncated");
        // Past the new end: without the guard this read is a SIGBUS.
        assert_eq!(mapping.bytes()[WINDOW + 10], 0);
        assert_eq!(mapping.bytes()[2 * WINDOW - 1], 0);
        assert!(mapping.shrank());
        assert_eq!(
            mapping.bytes()[10],
            0xab,
            "what is left of the file reads as before"
        );
        drop(mapping);
        // The guard is free again, and a new mapping starts unmarked.
        let mapping = Mapping::of(&File::open(&path).expect("open")).expect("mapped");
        assert!(!mapping.shrank());
        std::fs::remove_file(path).ok();
    }
}
