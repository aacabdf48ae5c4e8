//! Size-class buffer pool: dropped tensors return their buffers here for reuse.
//!
//! Reuse needs no wait: every kernel that touches a buffer is recorded in queue order, so a
//! later kernel writing a recycled buffer runs after every earlier reader. Uploads are the one
//! path that bypasses command order (`queue.write_buffer`), so the device flushes pending
//! commands before an upload (see `Device::upload_bytes`).

use std::collections::HashMap;

/// Smallest buffer the pool hands out, in bytes.
pub const MIN_CLASS: u64 = 256;

/// Rounds a request up to its size class: powers of two split into four steps
/// (256, 320, 384, 448, 512, 640, ...), so at most 25% of a buffer is slack.
pub fn size_class(bytes: u64) -> u64 {
    if bytes <= MIN_CLASS {
        return MIN_CLASS;
    }
    let pow = 63 - (bytes - 1).leading_zeros() as u64; // 2^pow < bytes <= 2^(pow+1)
    let base = 1u64 << pow;
    let step = base / 4;
    bytes.div_ceil(step) * step
}

/// Free buffers by size class, plus byte counters.
#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Bytes held by live tensors.
    pub live_bytes: u64,
    /// Bytes sitting in the pool, ready for reuse.
    pub pooled_bytes: u64,
    /// Upper bound on `pooled_bytes`; buffers returned beyond it are freed.
    pub max_pooled_bytes: u64,
}

impl Pool {
    pub fn with_limit(max_pooled_bytes: u64) -> Self {
        Pool {
            max_pooled_bytes,
            ..Default::default()
        }
    }

    pub fn take(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let buf = self.free.get_mut(&class)?.pop()?;
        self.pooled_bytes -= class;
        self.live_bytes += class;
        Some(buf)
    }

    pub fn give(&mut self, class: u64, buf: wgpu::Buffer) {
        self.live_bytes = self.live_bytes.saturating_sub(class);
        if self.pooled_bytes + class > self.max_pooled_bytes {
            return; // dropped: wgpu frees it once the queue is done with it
        }
        self.pooled_bytes += class;
        self.free.entry(class).or_default().push(buf);
    }

    pub fn clear(&mut self) {
        self.free.clear();
        self.pooled_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn classes_cover_requests_with_bounded_slack() {
        for bytes in [
            1u64,
            4,
            255,
            256,
            257,
            300,
            511,
            512,
            513,
            1000,
            4096,
            5000,
            1 << 20,
            3 << 20,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c <= (bytes * 5 / 4).max(256) + 4, "{bytes} -> {c}");
            assert_eq!(c % 4, 0);
        }
        assert_eq!(size_class(257), 320);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 640);
    }
}
