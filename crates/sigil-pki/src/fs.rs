//! Reading the files a manifest names, safely: only regular files, never
//! more than a size cap per kind, and never blocking (a path that names a
//! FIFO, a device such as `/dev/zero`, or a directory is refused at once).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest manifest Sigil reads.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest PEM file (certificate chain, key, CA bundle) Sigil reads.
pub const MAX_PEM_BYTES: u64 = 16 << 20;
/// Largest CRL file Sigil reads.
pub const MAX_CRL_BYTES: u64 = 64 << 20;
/// Largest wasm module Sigil reads.
pub const MAX_MODULE_BYTES: u64 = 256 << 20;

/// What kind of file something is, in words, for a refusal.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Open `path` without blocking (a FIFO with no writer would otherwise block
/// `open` itself) and without acquiring a controlling terminal.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
}

/// The whole contents of `path`, which must be a regular file of at most
/// `max_bytes` bytes (symbolic links are followed). The error says in words
/// what the path is instead, or how large it is (callers name the path).
pub fn read_regular(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", kind_of(&meta)),
        ));
    }
    let too_large = |size: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is {size} bytes; the most Sigil reads for this kind of file is {max_bytes} bytes"
            ),
        )
    };
    if meta.len() > max_bytes {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cap_is_too_large() {
        // Before: a cap of u64::MAX (`max_module_mb` saturated) overflowed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(read_regular(&path, u64::MAX).unwrap(), b"abc");
    }

    #[test]
    fn only_regular_files_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.pem");
        std::fs::write(&ok, b"hello").unwrap();
        assert_eq!(read_regular(&ok, 5).unwrap(), b"hello");
        let err = read_regular(&ok, 4).unwrap_err().to_string();
        assert!(
            err.contains("is 5 bytes") && err.contains("4 bytes"),
            "{err}"
        );
        let err = read_regular(dir.path(), 5).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a character device"), "{err}");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Returns at once (no writer): open does not block.
        let err = read_regular(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("is a FIFO"), "{err}");
    }
}
