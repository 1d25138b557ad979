//! Reading the files a configuration names without ever blocking.
//!
//! A named pipe, a device or a socket where a config file or a prompt
//! belongs would make a plain `open` + `read` wait forever (for a writer
//! that never comes), hanging `check`, a reload and everything queued
//! behind it. So files are opened with `O_NONBLOCK` (opening a FIFO then
//! returns at once), checked on the open handle to be regular files (no
//! race with a rename between a `stat` and the `open`), and read up to a
//! size limit, so a huge or sparse file cannot take the memory either.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Largest configuration file read (a big contact center is a few MB).
pub const CONFIG_LIMIT: u64 = 16 * 1024 * 1024;

/// Largest prompt file: 16 MiB is about 17 minutes of 16-bit PCM or 35 of
/// G.711, and a played prompt costs about twice its size in memory.
pub const PROMPT_LIMIT: u64 = 16 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(String),
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
}

/// Opens `path` for reading if it is a regular file, without blocking.
pub fn open_regular(path: &Path) -> Result<(File, u64), FileError> {
    let file = open_nonblocking(path).map_err(|e| FileError::Io(e.to_string()))?;
    let meta = file.metadata().map_err(|e| FileError::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(kind(&meta.file_type())));
    }
    Ok((file, meta.len()))
}

/// The whole of a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let (file, size) = open_regular(path)?;
    if size > limit {
        return Err(FileError::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // `take` guards against a file that grows between the stat and the read.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Io(e.to_string()))?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > limit {
        return Err(FileError::TooLarge { size: read, limit });
    }
    Ok(bytes)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK only matters for the open of a FIFO or a device; reads
    // of a regular file are not affected by it.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(unix)]
fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "named pipe (FIFO)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_regular(&p, 5).unwrap(), b"12345");
        assert_eq!(
            read_regular(&p, 4),
            Err(FileError::TooLarge { size: 5, limit: 4 })
        );
        assert!(matches!(
            read_regular(&dir.path().join("missing"), 5),
            Err(FileError::Io(_))
        ));
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_regular(dir.path(), 5).unwrap_err();
        assert_eq!(e, FileError::NotRegular("directory"));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&p).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        // No writer ever opens the pipe: a blocking open would hang here.
        let e = read_regular(&p, 5).unwrap_err();
        assert_eq!(e, FileError::NotRegular("named pipe (FIFO)"));
        assert!(e.to_string().contains("not a regular file"));
    }
}
