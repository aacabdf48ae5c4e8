//! Data sets and loading for Cinder: IDX (MNIST, Fashion-MNIST), CIFAR-10 binary, DataLoader.
#![warn(missing_docs)]
