//! Keeps a long-lived process's resident set to what it still touches. Starting a process maps (and the
//! kernel's fault-around maps 64 KiB around each touched page) much more of its files than the steady state
//! needs: argument parsing, process spawning, relocation by the dynamic loader. Once running, the monitor
//! drops the page-table entries of its clean file mappings; the pages stay in the page cache (shared with
//! every other monitor) and come back on the next touch.
//!
//! The runtime's pause process does the same (`rkube_runtime::sys::drop_clean_file_pages`). The other unsafe
//! code of the crate is two calls in `attach` (TIOCSWINSZ, taking a received descriptor).

/// Mappings of files that are private, not writable, and hold no copy-on-write page (`Anonymous: 0 kB` in
/// `/proc/self/smaps`): dropping their pages loses nothing. Returns (start, length) pairs.
pub fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    clean_file_mappings_of(smaps, None)
}

/// [`clean_file_mappings`], only of the file at `path` when given.
pub fn clean_file_mappings_of(smaps: &str, path: Option<&str>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut anon_free = false;
    let mut flush = |current: &mut Option<(usize, usize)>, anon_free: bool| {
        if let Some(m) = current.take() {
            if anon_free {
                out.push(m);
            }
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            flush(&mut current, anon_free);
            anon_free = false;
            let perms = f.next().unwrap_or("");
            // offset, device, inode, then the path: only mappings of files
            let file_backed = f.nth(3).is_some_and(|p| p.starts_with('/') && path.is_none_or(|want| p == want));
            let private_ro = perms.len() == 4 && perms.as_bytes()[1] == b'-' && perms.ends_with('p');
            if let (true, true, Ok(s), Ok(e)) =
                (file_backed, private_ro, usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
            {
                current = (e > s).then_some((s, e - s));
            }
        } else if first == "Anonymous:" {
            anon_free = f.next() == Some("0");
        }
    }
    flush(&mut current, anon_free);
    out
}

/// Drops the resident pages of every clean file mapping (see [`clean_file_mappings`]). Best effort: a
/// failure leaves the pages mapped, which is harmless. Call it only while the process is single-threaded.
pub fn drop_startup_text() {
    // SAFETY: the caller is single-threaded (this function's contract), so nothing changes a mapping between
    // the read of smaps and the madvise.
    unsafe { drop_clean_pages(None) }
}

/// [`drop_startup_text`] for a multi-threaded process (the kubelet): only the mappings of the running executable
/// itself, which stay mapped at the same addresses until exit, so no other thread can unmap one and reuse its
/// addresses between the read of smaps and the madvise. Once a node runs, most of what startup touched
/// (argument parsing, the apiserver's and clients' setup) is not needed again.
pub fn drop_executable_startup_text() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return };
    let Some(exe) = exe.to_str() else { return };
    // SAFETY: an executable's segments are never unmapped, remapped or made writable after startup, whatever
    // the other threads do.
    unsafe { drop_clean_pages(Some(exe)) }
}

/// MADV_DONTNEED on each clean file mapping (of `path` only, when given) as /proc/self/smaps lists them.
///
/// # Safety
/// No mapping it picks may be unmapped, remapped or made writable between the read of smaps and the madvise:
/// the process is single-threaded, or `path` names mappings that never change (the executable's).
unsafe fn drop_clean_pages(path: Option<&str>) {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    for (start, len) in clean_file_mappings_of(&smaps, path) {
        // SAFETY: the range is one whole mapping as the kernel listed it: private, not writable, of a file, with
        // no anonymous (copy-on-write) page, so every resident page is an unmodified page of the file, and the
        // caller guarantees it is still that mapping. MADV_DONTNEED only unmaps the pages; the next access faults
        // the same bytes back in from the page cache.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_filter_keeps_only_that_file() {
        let smaps = "\
5555aaaa0000-5555aaab0000 r-xp 00000000 08:01 123 /usr/bin/x
Anonymous:             0 kB
7f0000000000-7f0000001000 r-xp 00000000 08:01 9 /usr/lib/libc.so.6
Anonymous:             0 kB
";
        assert_eq!(clean_file_mappings_of(smaps, Some("/usr/bin/x")), vec![(0x5555aaaa0000, 0x10000)]);
        assert_eq!(clean_file_mappings_of(smaps, None).len(), 2);
    }

    #[test]
    fn only_private_read_only_file_mappings_without_cow_pages() {
        let smaps = "\
5555aaaa0000-5555aaab0000 r--p 00000000 08:01 123 /usr/bin/x
Rss:                  64 kB
Anonymous:             0 kB
5555aaab0000-5555aaac0000 r-xp 00010000 08:01 123 /usr/bin/x
Anonymous:             0 kB
5555aaac0000-5555aaac1000 r--p 00020000 08:01 123 /usr/bin/x
Anonymous:             4 kB
5555aaac1000-5555aaac2000 rw-p 00021000 08:01 123 /usr/bin/x
Anonymous:             0 kB
7f0000000000-7f0000001000 r--s 00000000 08:01 9 /dev/shm/y
Anonymous:             0 kB
7f0000002000-7f0000003000 r-xp 00000000 00:00 0
Anonymous:             0 kB
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(clean_file_mappings(smaps), vec![(0x5555aaaa0000, 0x10000), (0x5555aaab0000, 0x10000)]);
    }

    #[test]
    fn own_smaps_parses() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        // this test binary's text is a clean file mapping
        assert!(!clean_file_mappings(&smaps).is_empty());
    }
}
