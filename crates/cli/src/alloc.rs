//! The process allocator.

use std::os::raw::c_int;

/// mimalloc keeps freed memory for reuse: the decoder allocates the same
/// large activation and logit buffers at every step, which the system
/// allocator returns to the kernel and faults back in each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_e` of mimalloc 2 and 3 (the
/// Rust bindings name only the older options).
const PURGE_DELAY: c_int = 15;

/// Keeps freed pages in the process instead of returning them to the kernel
/// a while after the free (mimalloc 3: one second). A training step frees
/// and allocates the same hundreds of megabytes of activations; returned
/// pages come back zeroed by the kernel, which took 12 % of a step
/// (`clear_page_erms`). Costs about one step's working set in resident
/// memory, which training holds anyway at its peak. Left alone under a
/// mimalloc whose option table may differ (not major version 2 or 3).
pub fn keep_freed_memory() {
    // SAFETY: mimalloc's version and option calls are thread-safe and take
    // any option index; the version is checked so the index means the same.
    unsafe {
        if matches!(libmimalloc_sys::mi_version() / 10_000, 2 | 3) {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
        }
    }
}
