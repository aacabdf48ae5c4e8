//! Neural-network building blocks for Cinder: modules, initializers, losses, optimizers, checkpoints.
