//! Keeps the monitor's resident set to what its loop touches. Starting a process maps (and the kernel's
//! fault-around maps 64 KiB around each touched page) much more program text than the steady state needs:
//! argument parsing, process spawning, the dynamic loader's work. Once running, the monitor drops those page
//! table entries for its executable file mappings; the pages stay in the page cache (shared with every other
//! monitor) and come back on the next touch.
//!
//! This is the only unsafe code of the crate.

/// Drops the resident pages of every private, read-only, executable file mapping (`r-xp` in
/// `/proc/self/maps`). Best effort: a failure leaves the pages mapped, which is harmless.
pub fn drop_startup_text() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
        // offset, device, inode, then the path: only mappings of files
        let file_backed = f.nth(3).is_some_and(|p| p.starts_with('/'));
        if perms != "r-xp" || !file_backed {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else { continue };
        if end <= start {
            continue;
        }
        // SAFETY: the range is one whole mapping of this process as the kernel listed it, mapped private,
        // readable and executable but not writable, so its pages were never written (no copy-on-write
        // copies exist to lose): MADV_DONTNEED only unmaps clean pages of the file, and the next access
        // faults the same bytes back in from the page cache. No Rust reference points into program text.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}
