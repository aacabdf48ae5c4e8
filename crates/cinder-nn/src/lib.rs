//! Neural-network building blocks for Cinder: modules, initializers, losses, optimizers, checkpoints.
#![warn(missing_docs)]
