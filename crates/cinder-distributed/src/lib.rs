//! Data-parallel training for Cinder: every rank (process) holds the whole model, reads its
//! own shard of each epoch (`cinder_data::DistributedSampler`), and after backward the
//! gradients are averaged across ranks so that every rank takes the same optimizer step, as
//! PyTorch's `DistributedDataParallel`.
//!
//! - [`Communicator`]: rank, world size and the collectives DDP needs. [`SingleProcess`] is
//!   the world of one (every collective is the identity); with the `mpi` feature,
//!   `MpiCommunicator` runs on MPI, so `mpirun -np N program` starts a job on one machine
//!   or many.
//! - [`DistributedDataParallel`]: broadcasts a [`cinder_nn::VarStore`]'s parameters and
//!   buffers from rank 0, then averages gradients in buckets (one allreduce per bucket of
//!   about 25 MiB, not one per tensor); [`DdpOptimizer`] wraps any optimizer so its `step`
//!   averages first.
//! - [`exit_on_error`]: a rank whose work fails (an `Err` or a panic) prints its error and
//!   aborts the whole job, so the other ranks stop instead of waiting in a collective.
//!
//! The design, what is synchronized (batch-norm statistics are per rank), and the costs
//! are in `docs/distributed.md`.
#![warn(missing_docs)]

pub mod comm;
pub mod ddp;
#[cfg(feature = "mpi")]
pub mod mpi_comm;

pub use comm::{Communicator, SingleProcess, exit_on_error};
pub use ddp::{DdpOptimizer, DdpStats, DistributedDataParallel};
#[cfg(feature = "mpi")]
pub use mpi_comm::MpiCommunicator;
