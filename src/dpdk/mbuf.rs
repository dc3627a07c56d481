//! One packet buffer (`rte_mbuf`), owned: freed to its pool on drop.
//!
//! Invariant: an [`Mbuf`] owns its `rte_mbuf` exactly once; handing it to the driver on transmit
//! gives up ownership, so it is never freed twice. Tested in `tests/dpdk_ring.rs`.

use std::ptr::NonNull;

use psp_net::port::{BufferTooSmall, PacketBuf};

use super::sys;

/// An owned single-segment packet buffer. Transmitting it moves it into the driver (see
/// [`Mbuf::into_raw`]); otherwise dropping it returns it to its pool, so it is freed exactly once.
///
/// `repr(transparent)` over the pointer: a `[Mbuf]` is a `[*mut rte_mbuf]`, which burst calls
/// use without copying.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the sole owner of its rte_mbuf; DPDK buffers may be used and freed from any
// thread (the pool is thread-safe).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of `raw`; `None` if null.
    ///
    /// # Safety
    /// `raw` must be null or a valid mbuf nobody else owns or frees.
    #[inline]
    pub unsafe fn from_raw(raw: *mut sys::rte_mbuf) -> Option<Self> {
        NonNull::new(raw).map(|raw| Self { raw })
    }

    /// Gives up ownership (e.g. to the driver on transmit).
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn header(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for our whole lifetime.
        unsafe { self.raw.as_ref() }
    }

    /// Packet length in bytes (of this segment).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.header().data_len)
    }

    /// Whether the packet is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of segments (psp only ever handles 1).
    #[inline]
    pub fn segments(&self) -> u16 {
        self.header().nb_segs
    }

    /// Bytes that can still be appended.
    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: valid mbuf; the function only reads it.
        usize::from(unsafe { sys::rte_pktmbuf_tailroom(self.raw.as_ptr()) })
    }

    /// Grows the packet by `bytes` (`rte_pktmbuf_append`), returning the new bytes; `None`
    /// (nothing changed) if there is not enough tailroom.
    pub fn append(&mut self, bytes: usize) -> Option<&mut [u8]> {
        let bytes_u16 = u16::try_from(bytes).ok()?;
        // SAFETY: valid, exclusively owned mbuf; append checks the tailroom and returns NULL
        // without changing anything when it is too small.
        let start = unsafe { sys::rte_pktmbuf_append(self.raw.as_ptr(), bytes_u16) };
        if start.is_null() {
            return None;
        }
        // SAFETY: append returned `bytes` writable bytes inside our buffer, borrowed via &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(start.cast::<u8>(), bytes) })
    }

    /// Shrinks the packet by `bytes` from its end (`rte_pktmbuf_trim`); false (nothing changed)
    /// if it is shorter than that.
    pub fn trim(&mut self, bytes: usize) -> bool {
        let Ok(bytes) = u16::try_from(bytes) else {
            return false;
        };
        // SAFETY: valid, exclusively owned mbuf; trim fails without change if too short.
        unsafe { sys::rte_pktmbuf_trim(self.raw.as_ptr(), bytes) == 0 }
    }

    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        let header = self.header();
        // SAFETY: data_off is within the buffer (rte_pktmbuf_mtod).
        unsafe {
            header
                .buf_addr
                .cast::<u8>()
                .add(usize::from(header.data_off))
        }
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: the first data_len bytes from the data offset are the packet, inside our
        // buffer, and live as long as &self.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.len()) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.len()) }
    }

    fn set_len(&mut self, len: usize) -> Result<(), BufferTooSmall> {
        let current = self.len();
        let resized = if len >= current {
            self.append(len - current).is_some()
        } else {
            self.trim(current - len)
        };
        if resized {
            Ok(())
        } else {
            Err(BufferTooSmall {
                wanted: len,
                capacity: self.capacity(),
            })
        }
    }

    #[inline]
    fn capacity(&self) -> usize {
        self.len() + self.tailroom()
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else frees it (into_raw forgets self).
        unsafe { sys::rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}
