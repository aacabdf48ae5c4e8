//! [`Communicator`]: what data-parallel training asks of a distributed engine, and
//! [`SingleProcess`], the world of one.

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cinder_device::Result;

/// The collectives of a data-parallel job over `size()` ranks. Every rank must call the
/// same collectives in the same order with buffers of the same length, as MPI requires;
/// a mismatch is undefined at the engine's level, which is why
/// [`crate::DistributedDataParallel::new`] checks that the ranks hold the same model
/// before its first allreduce.
///
/// Implementations return `Err` ([`cinder_device::Error::Communication`]) when a
/// collective fails and they can tell; MPI's default error handler instead aborts the whole
/// job, which also ends every rank rather than leaving one waiting.
pub trait Communicator {
    /// This process's rank, in `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks (at least 1).
    fn size(&self) -> usize;

    /// True on rank 0, the rank that writes checkpoints, logs and the progress bar.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Replaces `buf` on every rank with rank `root`'s `buf` (32-bit words: f32 and u32
    /// tensors alike).
    fn broadcast(&self, buf: &mut [u32], root: usize) -> Result<()>;

    /// Replaces `buf` on every rank with the element-wise sum of every rank's `buf`.
    fn allreduce_sum(&self, buf: &mut [f32]) -> Result<()>;

    /// [`Communicator::allreduce_sum`] in f64 (metrics and counts).
    fn allreduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Ends every rank of the job with exit status `code` (MPI_Abort); never returns.
    fn abort(&self, code: i32) -> !;
}

/// The world of one process: rank 0 of 1, every collective the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn broadcast(&self, _buf: &mut [u32], _root: usize) -> Result<()> {
        Ok(())
    }

    fn allreduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn allreduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Runs `work` and returns its value; when it returns `Err` or panics, prints `rank R of W:
/// ERROR` on stderr and ends the whole job through [`Communicator::abort`] with status 1,
/// so that no other rank is left waiting in a collective for this one (what a plain exit
/// could do: MPI's finalize waits for the other ranks). In a world of one it exits with
/// status 1 after the message.
pub fn exit_on_error<T, E: Display>(
    comm: &dyn Communicator,
    work: impl FnOnce() -> std::result::Result<T, E>,
) -> T {
    let (rank, size) = (comm.rank(), comm.size());
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            eprintln!("rank {rank} of {size}: error: {e:#}");
            eprintln!("rank {rank} of {size}: aborting the job");
            comm.abort(1)
        }
        Err(_) => {
            // The panic hook has printed the message.
            eprintln!("rank {rank} of {size}: panicked; aborting the job");
            comm.abort(1)
        }
    }
}
