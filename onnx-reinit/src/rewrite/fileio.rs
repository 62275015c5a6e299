//! Positional file I/O for the rewrite: in-kernel range copies and early writeback.
//!
//! Both are Linux fast paths with portable fallbacks; neither changes what ends up in a file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Which side of a copy failed, so the error can name the right file.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading the source failed (or it ended early).
    Read(io::Error),
    /// Writing the destination failed.
    Write(io::Error),
}

/// Copies `len` bytes at `src_off` of `src` to `dst_off` of `dst`, which must read as zeros
/// there (a fresh file sized with `set_len`, as every rewrite output is): holes of a sparse
/// source (`SEEK_DATA`/`SEEK_HOLE`) are skipped, so they stay holes in the output instead of
/// becoming allocated zeros. Where the source cannot tell its holes, everything is copied.
pub(crate) fn copy_range_sparse(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
    buf: &mut Vec<u8>,
) -> Result<(), CopyError> {
    let end = src_off + len;
    let mut pos = src_off;
    while pos < end {
        let Some((data, hole)) = next_data(src, pos) else {
            // No hole information: a plain copy of the rest.
            return copy_range(src, pos, dst, dst_off + (pos - src_off), end - pos, buf);
        };
        if data >= end {
            // Only a hole is left: the destination already reads zeros there.
            return Ok(());
        }
        let stop = hole.min(end);
        copy_range(src, data, dst, dst_off + (data - src_off), stop - data, buf)?;
        pos = stop;
    }
    Ok(())
}

/// The data run at or after `pos` of `f`: `(start, end)`, with `start = u64::MAX` when only a
/// hole follows; `None` if the file system cannot say (then it is all data).
fn next_data(f: &File, pos: u64) -> Option<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let at = i64::try_from(pos).ok()?;
        // SAFETY: lseek on an open descriptor, integer arguments only. The descriptor's own
        // offset moves, but every other read of it is positional.
        let data = unsafe { libc::lseek(f.as_raw_fd(), at, libc::SEEK_DATA) };
        if data < 0 {
            return (io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO))
                .then_some((u64::MAX, u64::MAX));
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), data, libc::SEEK_HOLE) };
        if hole < 0 {
            return None;
        }
        Some((data as u64, hole as u64))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (f, pos);
        None
    }
}

/// Copies `len` bytes at `src_off` of `src` to `dst_off` of `dst`.
///
/// On Linux this is `copy_file_range(2)`: the bytes move inside the kernel (page cache to page
/// cache, or a reflink/server-side copy where the file system offers one) instead of through a
/// user-space buffer. Whatever the kernel refuses or leaves undone (another file system, an old
/// kernel, a short source, a full disk) is done again by `pread`/`pwrite` through `buf`, which
/// also gives the precise error.
pub(crate) fn copy_range(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
    buf: &mut Vec<u8>,
) -> Result<(), CopyError> {
    let done = kernel_copy(src, src_off, dst, dst_off, len);
    if done == len {
        return Ok(());
    }
    let rest = usize::try_from(len - done).map_err(|_| {
        CopyError::Read(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range too long",
        ))
    })?;
    buf.resize(rest, 0);
    src.read_exact_at(buf, src_off + done)
        .map_err(CopyError::Read)?;
    dst.write_all_at(buf, dst_off + done)
        .map_err(CopyError::Write)
}

/// Bytes copied by `copy_file_range` before it stopped (0 where it is unavailable).
#[cfg(target_os = "linux")]
fn kernel_copy(src: &File, src_off: u64, dst: &File, dst_off: u64, len: u64) -> u64 {
    use std::os::fd::AsRawFd;
    let (Ok(mut off_in), Ok(mut off_out)) = (i64::try_from(src_off), i64::try_from(dst_off)) else {
        return 0;
    };
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        // SAFETY: plain syscall on two open descriptors; the kernel reads and writes the
        // offsets through the two valid pointers and touches no other user memory.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &raw mut off_in,
                dst.as_raw_fd(),
                &raw mut off_out,
                want,
                0,
            )
        };
        match u64::try_from(n) {
            Ok(n) if n > 0 => done += n,
            // 0: the source ended; < 0: refused or failed. Either way the fallback takes over
            // from here and reports what is wrong.
            _ => break,
        }
    }
    done
}

#[cfg(not(target_os = "linux"))]
fn kernel_copy(_: &File, _: u64, _: &File, _: u64, _: u64) -> u64 {
    0
}

/// Starts writing `len` bytes at `off` of `file` to disk without waiting for them
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux; nothing elsewhere).
///
/// The rewrite `fsync`s its outputs before renaming them; started piece by piece while the
/// rest is still being generated, the writeback overlaps the work instead of all of it waiting
/// for the final flush. Durability still comes from that `fsync` alone, so a failure here is
/// ignored.
pub(crate) fn start_writeback(file: &File, off: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) {
            // SAFETY: a syscall on an open descriptor with integer arguments only.
            let _ = unsafe {
                libc::sync_file_range(file.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE)
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, off, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn copy_range_moves_exactly_the_range() {
        let src: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let s = file_with(&src);
        let d = file_with(&vec![0xEE; 300_000]);
        let mut buf = Vec::new();
        copy_range(s.as_file(), 1234, d.as_file(), 50_001, 150_000, &mut buf).unwrap();
        let out = std::fs::read(d.path()).unwrap();
        assert_eq!(out.len(), 300_000);
        assert!(out[..50_001].iter().all(|&b| b == 0xEE));
        assert_eq!(&out[50_001..200_001], &src[1234..151_234]);
        assert!(out[200_001..].iter().all(|&b| b == 0xEE));
    }

    #[test]
    fn a_short_source_is_a_read_error() {
        let s = file_with(&[1; 1000]);
        let d = file_with(&[]);
        let mut buf = Vec::new();
        match copy_range(s.as_file(), 500, d.as_file(), 0, 1000, &mut buf) {
            Err(CopyError::Read(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn an_unwritable_destination_is_a_write_error() {
        let s = file_with(&[1; 1000]);
        let d = file_with(&[]);
        let read_only = File::open(d.path()).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(
            copy_range(s.as_file(), 0, &read_only, 0, 1000, &mut buf),
            Err(CopyError::Write(_))
        ));
        // Early writeback of a range it cannot write is harmless.
        start_writeback(&read_only, 0, 1000);
    }
}
