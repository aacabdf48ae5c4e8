//! The differentiable ops of [`crate::Tensor`], one module per device op family, each with
//! the forward call and its backward rule side by side.

mod conv;
mod elementwise;
mod gradient;
mod index;
mod layout;
mod matmul;
mod norm;
mod pool;
#[cfg(test)]
mod private_grads;
mod random;
mod reduce;
mod rnn;
mod softmax;
