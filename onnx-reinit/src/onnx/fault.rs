//! Surviving a model file truncated while it is mapped.
//!
//! Reading a page of a file mapping past the file's current end raises `SIGBUS`, whose default
//! action kills the process: another process truncating the model (a re-export, a download
//! restarted) would crash a scan or an `inspect` half-way. Every [`LoadedModel`] mapping is
//! registered here, and a `SIGBUS` handler that finds the faulting address inside a registered
//! mapping replaces the pages from there to the mapping's end by zero pages
//! (`mmap(MAP_FIXED | MAP_ANONYMOUS)`, one system call, async-signal-safe on Linux), records the
//! fault and returns: the faulting read is retried and reads zeros. The reader carries on with
//! meaningless bytes, so every consumer checks [`Guard::faulted`] (through
//! [`LoadedModel::check_unchanged`]) before trusting what it read: loading, reading values,
//! `inspect` and the rewrite's commit point turn a fault into [`Error::InputChanged`].
//!
//! A `SIGBUS` at any other address is not ours: the handler restores the disposition it
//! replaced and returns, so the fault repeats and is delivered as it would have been without it.
//!
//! [`LoadedModel`]: crate::onnx::model::LoadedModel
//! [`LoadedModel::check_unchanged`]: crate::onnx::model::LoadedModel::check_unchanged
//! [`Error::InputChanged`]: crate::error::Error::InputChanged

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Mappings that can be registered at once; a mapping that finds no free slot is simply not
/// protected (a truncation then crashes as it did before), which a process would need more
/// than this many models open at the same time to see.
const SLOTS: usize = 256;

/// One registered mapping: `[start, start + len)`, `len == 0` when free.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
    /// Taken by a registration (set before `start`/`len` are published).
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
    taken: AtomicBool::new(false),
};

static REGIONS: [Slot; SLOTS] = [FREE; SLOTS];

static INSTALL: Once = Once::new();

/// The disposition the handler replaced, restored for a fault that is not ours. Written once,
/// before the handler is installed.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// A registered mapping; unregisters it on drop (which must come before the mapping is unmapped:
/// [`LoadedModel`](crate::onnx::model::LoadedModel) declares it before the mapping).
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

impl Guard {
    /// Registers `[ptr, ptr + len)` and installs the handler on first use.
    pub(crate) fn register(ptr: *const u8, len: usize) -> Guard {
        install();
        if len == 0 {
            return Guard { slot: None };
        }
        for (i, s) in REGIONS.iter().enumerate() {
            if s.taken
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                s.faulted.store(false, Ordering::Relaxed);
                s.start.store(ptr as usize, Ordering::Relaxed);
                s.len.store(len, Ordering::Release);
                return Guard { slot: Some(i) };
            }
        }
        Guard { slot: None }
    }

    /// Whether a read of the mapping faulted (the file was truncated under it): what was read
    /// since contains zeros instead of the file's bytes.
    pub(crate) fn faulted(&self) -> bool {
        self.slot
            .is_some_and(|i| REGIONS[i].faulted.load(Ordering::Acquire))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let s = &REGIONS[i];
            s.len.store(0, Ordering::Release);
            s.start.store(0, Ordering::Relaxed);
            s.taken.store(false, Ordering::Release);
        }
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sigaction with a zeroed struct filled with a valid handler and flags; the
        // previous disposition is stored before the new one can run (sigaction writes `old`
        // first), and nothing else writes PREVIOUS.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&raw mut act.sa_mask);
            let previous = (&raw mut PREVIOUS).cast::<libc::sigaction>();
            libc::sigaction(libc::SIGBUS, &raw const act, previous);
        }
    });
}

/// The `SIGBUS` handler: see the module documentation. Only atomics and two system calls.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    // SAFETY: sysconf is a plain query.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    for s in &REGIONS {
        let len = s.len.load(Ordering::Acquire);
        let start = s.start.load(Ordering::Relaxed);
        if len == 0 || addr < start || addr - start >= len {
            continue;
        }
        let from = addr - addr % page;
        let end = (start + len).next_multiple_of(page);
        // SAFETY: [from, end) lies inside a live read-only mapping this process owns (it is
        // registered, and unregistered before it is unmapped); replacing its pages by private
        // zero pages changes only what later reads of it return.
        let p = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                end - from,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            s.faulted.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours (or the pages could not be replaced): the previous disposition takes the repeated
    // fault.
    // SAFETY: PREVIOUS was filled by sigaction before this handler was installed.
    unsafe {
        libc::sigaction(
            libc::SIGBUS,
            (&raw const PREVIOUS).cast::<libc::sigaction>(),
            std::ptr::null_mut(),
        );
    }
}
