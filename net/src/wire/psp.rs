//! The Perséphone `PSP_MB` payload (docs/design.md §4.2–4.3), kept byte-compatible with the original
//! C++ client and server and with Shenango's `psp_fakework`.
//!
//! Every field is a **little-endian** (host-order on x86) `u32`:
//!
//! | offset | request (16 B) | response (12 B) |
//! |---|---|---|
//! | 0 | `req_id` | `req_id`, echoed |
//! | 4 | `req_type` | `req_type`, echoed |
//! | 8 | `req_size` | size word (the application's result: see `app`) |
//! | 12 | `run_ns` | — (excluded) |
//!
//! Longer request payloads are accepted (trailing bytes are ignored by the apps, echoed by
//! `echo`).

use super::{Error, Result};

/// Length of a request payload (original's 16 B `PSP_MB` message, docs/design.md §4.2).
pub const REQUEST_LEN: usize = 16;
/// Length of a response payload: the request without `run_ns` (docs/design.md §4.3).
pub const RESPONSE_LEN: usize = 12;

/// Value the original client puts in `req_size` ("always 4", docs/design.md §4.2).
pub const DEFAULT_REQ_SIZE: u32 = 4;

mod field {
    pub const REQ_ID: usize = 0;
    pub const REQ_TYPE: usize = 4;
    pub const REQ_SIZE: usize = 8;
    pub const RUN_NS: usize = 12;
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// A zero-copy view of a request or response payload.
///
/// Contract: `check_request_len` succeeded → every accessor works; `check_response_len`
/// succeeded → every accessor but `run_ns`/`set_run_ns` works.
#[derive(Debug, Clone)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Message { buffer }
    }

    /// `Err(Truncated)` below [`REQUEST_LEN`].
    pub fn check_request_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < REQUEST_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Err(Truncated)` below [`RESPONSE_LEN`].
    pub fn check_response_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < RESPONSE_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Request id (the client's index, opaque to the server).
    pub fn req_id(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REQ_ID)
    }

    /// Request type (the classifier's input).
    pub fn req_type(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REQ_TYPE)
    }

    /// Size word.
    pub fn req_size(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REQ_SIZE)
    }

    /// Service time to emulate, in ns (requests only).
    pub fn run_ns(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::RUN_NS)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    /// Sets the request id.
    pub fn set_req_id(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REQ_ID, value);
    }

    /// Sets the request type.
    pub fn set_req_type(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REQ_TYPE, value);
    }

    /// Sets the size word.
    pub fn set_req_size(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REQ_SIZE, value);
    }

    /// Sets `run_ns` (requests only).
    pub fn set_run_ns(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::RUN_NS, value);
    }
}

/// A request payload's fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RequestRepr {
    /// Request id.
    pub req_id: u32,
    /// Request type (wire id).
    pub req_type: u32,
    /// Size word (the original client sends [`DEFAULT_REQ_SIZE`]).
    pub req_size: u32,
    /// Service time to emulate, ns.
    pub run_ns: u32,
}

impl RequestRepr {
    /// Reads a request payload.
    pub fn parse<T: AsRef<[u8]>>(message: &Message<T>) -> Result<RequestRepr> {
        message.check_request_len()?;
        Ok(RequestRepr {
            req_id: message.req_id(),
            req_type: message.req_type(),
            req_size: message.req_size(),
            run_ns: message.run_ns(),
        })
    }

    /// Payload length of a request.
    pub const fn buffer_len(&self) -> usize {
        REQUEST_LEN
    }

    /// Writes the request payload.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, message: &mut Message<T>) -> Result<()> {
        message.check_request_len()?;
        message.set_req_id(self.req_id);
        message.set_req_type(self.req_type);
        message.set_req_size(self.req_size);
        message.set_run_ns(self.run_ns);
        Ok(())
    }
}

/// A response payload's fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ResponseRepr {
    /// Request id, echoed.
    pub req_id: u32,
    /// Request type, echoed.
    pub req_type: u32,
    /// Size word (the application's result).
    pub req_size: u32,
}

impl ResponseRepr {
    /// Reads a response payload.
    pub fn parse<T: AsRef<[u8]>>(message: &Message<T>) -> Result<ResponseRepr> {
        message.check_response_len()?;
        Ok(ResponseRepr {
            req_id: message.req_id(),
            req_type: message.req_type(),
            req_size: message.req_size(),
        })
    }

    /// Payload length of a response.
    pub const fn buffer_len(&self) -> usize {
        RESPONSE_LEN
    }

    /// Writes the response payload.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, message: &mut Message<T>) -> Result<()> {
        message.check_response_len()?;
        message.set_req_id(self.req_id);
        message.set_req_type(self.req_type);
        message.set_req_size(self.req_size);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known bytes: the original client's request {id 7, SHORT=1, size 4, 1000 ns} in x86
    /// host order.
    #[test]
    fn request_known_bytes() {
        let repr = RequestRepr {
            req_id: 7,
            req_type: 1,
            req_size: DEFAULT_REQ_SIZE,
            run_ns: 1000,
        };
        let mut buf = [0u8; REQUEST_LEN];
        repr.emit(&mut Message::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(buf, [7, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0xe8, 0x03, 0, 0]);
        assert_eq!(
            RequestRepr::parse(&Message::new_unchecked(&buf[..])).unwrap(),
            repr
        );
    }

    #[test]
    fn short_buffers_are_truncated() {
        let buf = [0u8; REQUEST_LEN];
        assert_eq!(
            RequestRepr::parse(&Message::new_unchecked(&buf[..REQUEST_LEN - 1])),
            Err(Error::Truncated)
        );
        assert_eq!(
            ResponseRepr::parse(&Message::new_unchecked(&buf[..RESPONSE_LEN - 1])),
            Err(Error::Truncated)
        );
        assert!(ResponseRepr::parse(&Message::new_unchecked(&buf[..RESPONSE_LEN])).is_ok());
    }
}
