//! Autograd tests: engine semantics, every backward rule against finite differences,
//! second-order gradients, learning and memory. One binary, so the device and pipelines are
//! created once.

mod common;
mod engine;
mod grad_conv;
mod grad_elementwise;
mod grad_layout;
mod grad_matmul;
mod grad_reduce;
mod grad_reverse;
mod learning;
mod second_order;
