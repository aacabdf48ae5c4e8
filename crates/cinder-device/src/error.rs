//! Typed errors shared by every Cinder crate.

use std::path::PathBuf;

/// The result type of every fallible Cinder API.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in Cinder. Each variant names the op (or file) and the
/// offending shapes or values, so a message alone is enough to find the bad call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable wgpu adapter was found.
    #[error(
        "no GPU adapter found ({reason}); on Debian/Ubuntu install the software Vulkan driver \
         with `apt-get install libvulkan1 mesa-vulkan-drivers` (or run scripts/setup.sh)"
    )]
    NoAdapter {
        /// Why no adapter qualified (filters in force, adapters seen).
        reason: String,
    },
    /// Requesting the logical device from the adapter failed.
    #[error("requesting a device from adapter {adapter} failed: {reason}")]
    DeviceRequest {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// Shapes that must agree (or broadcast) do not.
    #[error("{op}: shape mismatch between {lhs:?} and {rhs:?}")]
    ShapeMismatch {
        /// The op that was called.
        op: &'static str,
        /// The first shape involved.
        lhs: Vec<usize>,
        /// The second shape involved.
        rhs: Vec<usize>,
    },
    /// A tensor of the wrong element type was passed.
    #[error("{op}: expected dtype {expected:?}, got {got:?}")]
    DtypeMismatch {
        /// The op that was called.
        op: &'static str,
        /// The dtype the op needs.
        expected: crate::DType,
        /// The dtype it was given.
        got: crate::DType,
    },
    /// An axis index is not smaller than the tensor's rank.
    #[error("{op}: axis {axis} out of range for a tensor of shape {shape:?}")]
    AxisOutOfRange {
        /// The op that was called.
        op: &'static str,
        /// The axis that was asked for.
        axis: isize,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// An argument is invalid for another reason (the message says which).
    #[error("{op}: {msg} (shape {shape:?})")]
    InvalidArgument {
        /// The op that was called.
        op: &'static str,
        /// What is wrong.
        msg: String,
        /// The shape of the main operand.
        shape: Vec<usize>,
    },
    /// A tensor or buffer is larger than the device can bind or allocate, has more elements
    /// than the kernels' 32-bit indices reach, or has a size that overflows.
    #[error("{op}: {} for shape {shape:?}, over the limit of {limit} bytes", requested(*bytes))]
    TooLarge {
        /// The op that was called.
        op: &'static str,
        /// The shape (or the sizes) that was asked for.
        shape: Vec<usize>,
        /// Bytes requested; `u64::MAX` when the size overflows (the product of the
        /// dimensions does not fit in 64 bits).
        bytes: u64,
        /// The limit: the device's binding limit, or `4 * (2^32 - 1)` bytes for the
        /// kernels' 32-bit element indices.
        limit: u64,
    },
    /// A collective operation of a data-parallel job failed, or the ranks disagree on what
    /// they hold (different models, different step counts).
    #[error("{op} on rank {rank} of {world}: {msg}")]
    Communication {
        /// The collective or the check (`allreduce`, `DistributedDataParallel::new`).
        op: &'static str,
        /// This process's rank.
        rank: usize,
        /// The number of ranks.
        world: usize,
        /// What went wrong.
        msg: String,
    },
    /// The device ran out of memory.
    #[error("{op}: out of device memory ({bytes} bytes requested)")]
    OutOfMemory {
        /// The op that was called.
        op: &'static str,
        /// Bytes requested.
        bytes: u64,
    },
    /// An index tensor held a value outside the dimension it indexes. Kernels cannot
    /// return an error and ops never read back, so the kernel sets the calling thread's slot
    /// of the device's error word and that thread's next readback or [`crate::Device::sync`]
    /// returns this error (as CUDA's device-side asserts surface at the next
    /// synchronization), then clears the slot.
    #[error(
        "{}: index out of range (largest offending index {index}); found by the device and \
         reported at the first readback or sync after the op",
        ops.join(", ")
    )]
    IndexOutOfRange {
        /// The ops that met a bad index since the last check (usually one).
        ops: Vec<&'static str>,
        /// The largest offending index seen.
        index: u32,
    },
    /// An op's input lies outside its domain (a probability outside `[0, 1]`, a negative
    /// variance), found by a value check on the device and reported, like
    /// [`Error::IndexOutOfRange`], at the thread's next readback or sync.
    #[error(
        "{op}: {expected} (found by the device; reported at the first readback or sync after \
         the op)"
    )]
    OutOfDomain {
        /// The op.
        op: &'static str,
        /// What its input must satisfy.
        expected: String,
    },
    /// Anomaly detection (`cinder_autograd::set_detect_anomaly`) found NaN or infinity in an
    /// op's output: `op` names the first such op since the thread's previous readback.
    #[error("{op} produced NaN or infinity (anomaly detection)")]
    NonFinite {
        /// The op, and the backward rule it ran in, if any.
        op: String,
    },
    /// Training diverged: a loss or a parameter is NaN or infinite (what `train_epoch` and
    /// the examples check before training on or saving). `what` says which and where.
    #[error(
        "training: {what}: training diverged (or a parameter was already NaN or infinite); \
         stopping rather than training on or saving it. Lower the learning rate, or find the \
         op that made the first NaN with cinder_autograd::set_detect_anomaly(true) (or \
         CINDER_DETECT_ANOMALY=1)"
    )]
    Diverged {
        /// The value that is not finite (`the mean training loss of epoch 3 is NaN`, or a
        /// parameter and how many of its elements).
        what: String,
    },
    /// A kernel's WGSL did not build: a template placeholder missing or left unfilled, or
    /// the shader or its pipeline rejected by the device's compiler. Names the kernel.
    #[error("kernel {kernel} does not compile: {msg}")]
    ShaderCompile {
        /// `family::entry`, with its specialization.
        kernel: String,
        /// The compiler's (or the template's) message.
        msg: String,
    },
    /// The device was lost or a GPU command failed.
    #[error("device lost or GPU error: {0}")]
    DeviceLost(String),
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file's contents are not in the expected format.
    #[error("{path}: bad format at {at}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in the file (byte offset or field name).
        at: String,
        /// What was expected and what was found.
        msg: String,
    },
}

/// How [`Error::TooLarge`] words its request.
fn requested(bytes: u64) -> String {
    if bytes == u64::MAX {
        "a size that overflows (the product of the sizes does not fit in 64 bits)".into()
    } else {
        format!("{bytes} bytes requested")
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>, shape: &[usize]) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
            shape: shape.to_vec(),
        }
    }

    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shapes(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
        }
    }
}
