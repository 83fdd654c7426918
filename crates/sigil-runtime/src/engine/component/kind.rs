//! Which kind of worker a `.wasm` file holds, read from its header: a core
//! module speaks Sigil's SDK ABI, a component the `wasi:http/proxy` world.

use std::io::Read as _;
use std::path::Path;

/// The kinds of worker Sigil runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// A core wasm module built against `sigil-sdk` (`wasm32-wasip1`).
    Sdk,
    /// A `wasi:http/proxy` component (`wasm32-wasip2`, componentize-js,
    /// componentize-py, ...).
    Component,
}

impl WorkerKind {
    /// The kind of the wasm binary starting with `header`; `None` when it is
    /// not wasm at all. Bytes 4..8 are the version (u16) and layer (u16):
    /// layer 0 is a core module, layer 1 a component.
    pub fn of(header: &[u8]) -> Option<WorkerKind> {
        if header.len() < 8 || &header[..4] != b"\0asm" {
            return None;
        }
        match u16::from_le_bytes([header[6], header[7]]) {
            0 => Some(WorkerKind::Sdk),
            1 => Some(WorkerKind::Component),
            _ => None,
        }
    }

    /// The kind of the wasm file at `path` (`None`: unreadable or not wasm;
    /// loading it then says why).
    pub fn of_file(path: &Path) -> Option<WorkerKind> {
        let mut header = [0u8; 8];
        let mut file = std::fs::File::open(path).ok()?;
        file.read_exact(&mut header).ok()?;
        WorkerKind::of(&header)
    }

    /// How `sigil check` and the logs name it.
    pub fn describe(self) -> &'static str {
        match self {
            WorkerKind::Sdk => "sigil-sdk module",
            WorkerKind::Component => "wasi:http/proxy component",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_modules_from_components() {
        assert_eq!(
            WorkerKind::of(b"\0asm\x01\0\0\0rest"),
            Some(WorkerKind::Sdk)
        );
        assert_eq!(
            WorkerKind::of(b"\0asm\x0d\0\x01\0rest"),
            Some(WorkerKind::Component)
        );
        assert_eq!(WorkerKind::of(b"\x7fELF\x02\x01\x01\0"), None);
        assert_eq!(WorkerKind::of(b"\0asm"), None);
    }
}
