//! Encoding and decoding of the wire types: the only place that knows bincode.
//!
//! Decoding is always bounded: the caller passes the largest number of bytes
//! it accepts, and bincode's limit stops a hostile length prefix from causing
//! a huge allocation.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

const fn config<const LIMIT: usize>() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// The largest encoded value accepted by [`decode`]: 256 MiB. Callers bound
/// the input far more tightly by checking `bytes.len()` first; this limit
/// guards against length prefixes inside the value.
pub const MAX_DECODE: usize = 256 << 20;

/// Encode a wire value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config::<MAX_DECODE>())
        .map_err(|e| CodecError(format!("cannot encode: {e}")))
}

/// Encode a wire value into a buffer made with room for `capacity` bytes:
/// with a good estimate (a body's length plus its headers'), the bytes are
/// written once instead of into a buffer that doubles and copies as it
/// grows. The bytes are the same as [`encode`]'s.
pub fn encode_sized<T: Serialize>(value: &T, capacity: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(capacity);
    bincode::serde::encode_into_writer(value, VecWriter(&mut out), config::<MAX_DECODE>())
        .map_err(|e| CodecError(format!("cannot encode: {e}")))?;
    Ok(out)
}

/// Appends to a `Vec` (bincode's own writer always starts empty).
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decode a wire value from at most `max_len` bytes. Trailing bytes, a value
/// that claims more bytes than are present, and inputs over `max_len` are errors.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, CodecError> {
    decode_view(bytes, max_len)
}

/// Like [`decode`], for a value that may borrow from `bytes` (the
/// [`wire_ref`](crate::wire_ref) views).
pub fn decode_view<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    max_len: usize,
) -> Result<T, CodecError> {
    if bytes.len() > max_len {
        return Err(CodecError(format!(
            "{} bytes exceed the limit of {max_len} bytes",
            bytes.len()
        )));
    }
    let (value, read) =
        bincode::serde::borrow_decode_from_slice::<T, _>(bytes, config::<MAX_DECODE>())
            .map_err(|e| CodecError(format!("malformed bytes: {e}")))?;
    if read != bytes.len() {
        return Err(CodecError(format!(
            "malformed bytes: {} trailing bytes after the value",
            bytes.len() - read
        )));
    }
    Ok(value)
}

/// Pack a pointer and a length into one `u64` (pointer in the high half).
pub fn pack(ptr: u32, len: u32) -> u64 {
    ((ptr as u64) << 32) | len as u64
}

/// Split a value made by [`pack`].
pub fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::*;

    #[test]
    fn round_trip() {
        let req = FetchRequest {
            request: WireRequest {
                method: "GET".into(),
                url: "https://a/b".into(),
                headers: vec![("x".into(), "y".into())],
                body: vec![1, 2, 3],
            },
            client_cert: ClientCertChoice::Binding("B".into()),
            timeout_ms: Some(5),
        };
        let bytes = encode(&req).unwrap();
        assert_eq!(decode::<FetchRequest>(&bytes, 1024).unwrap(), req);
        for capacity in [0, 3, bytes.len(), 4096] {
            assert_eq!(encode_sized(&req, capacity).unwrap(), bytes, "{capacity}");
        }
    }

    #[test]
    fn garbage_and_hostile_lengths_are_errors() {
        assert!(decode::<FetchRequest>(&[0xff; 64], 1024).is_err());
        // A varint length prefix claiming ~2^60 bytes must not allocate.
        let hostile = [3u8, 0xff, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(decode::<WireRequest>(&hostile, 1024).is_err());
        let ok = encode(&WireResponse::default()).unwrap();
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(decode::<WireResponse>(&trailing, 1024).is_err());
        assert!(decode::<WireResponse>(&ok, 1).is_err());
    }

    #[test]
    fn bodies_are_encoded_as_before_serde_bytes() {
        // Before bodies were `serde_bytes`, a body was a sequence of `u8`:
        // the same bytes, so guests built against either SDK still work.
        #[derive(serde::Serialize)]
        struct Before {
            status: u16,
            headers: Vec<(String, String)>,
            body: Vec<u8>,
        }
        let body: Vec<u8> = (0..=255).chain(0..=255).collect();
        let before = Before {
            status: 200,
            headers: vec![("a".into(), "b".into())],
            body: body.clone(),
        };
        let now = WireResponse {
            status: 200,
            headers: vec![("a".into(), "b".into())],
            body,
        };
        assert_eq!(encode(&before).unwrap(), encode(&now).unwrap());
    }

    #[test]
    fn pack_round_trip() {
        assert_eq!(unpack(pack(0xdead_beef, 42)), (0xdead_beef, 42));
    }
}
