//! Neural-network building blocks for Cinder: a path-scoped parameter store with
//! PyTorch-style names, modules, initializers, losses, optimizers, LR schedules and
//! safetensors checkpoints.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod optim;
pub mod schedule;
pub mod var_store;

pub use init::Init;
pub use layers::*;
pub use module::{Module, ModuleT};
pub use var_store::{Path, VarStore};
