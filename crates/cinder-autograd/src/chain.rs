//! [`TensorResultExt`]: the ops of [`Tensor`] on a `cinder::Result<Tensor>`, so that an
//! expression chains with one `?` at its end, and operators between a `Result<Tensor>` and a
//! tensor.
//!
//! ```no_run
//! use cinder_autograd::{Tensor, TensorResultExt};
//! use cinder_device::Device;
//! let dev = Device::default()?;
//! let x = Tensor::from_slice(&dev, &[1.0f32, -2.0, 3.0, -4.0], &[2, 2])?;
//! let w = Tensor::ones(&dev, &[2, 2])?;
//! let y = x.matmul(&w).relu().add_scalar(1.0).sum_all()?; // the first Err stops the chain
//! let z = (x.exp() + &y)?;                                  // Result<Tensor> + &Tensor
//! # Ok::<(), cinder_device::Error>(())
//! ```
//!
//! The named elementwise ops come from the device crate's op table
//! ([`cinder_device::unary_op_table`], [`cinder_device::binary_op_table`]); the other
//! forwarded methods are listed once, below, with the same names and arguments as on
//! [`Tensor`].

use std::ops::{Add, Div, Mul, Sub};

use cinder_device::{DType, Result};

use crate::tensor::Tensor;

macro_rules! chain_unary {
    (
        pub fn { $($(#[$m:meta])* $name:ident => $op:ident),* $(,)? }
        $bvis:vis fn { $($(#[$bm:meta])* $bname:ident => $bop:ident),* $(,)? }
    ) => {
        cinder_device::binary_op_table!(chain_all, pub(crate), unary { $($name)* });
    };
}

macro_rules! chain_all {
    (
        pub fn { $($(#[$m:meta])* $name:ident, $sname:ident => $op:ident),* $(,)? }
        $bvis:vis fn { $($(#[$bm:meta])* $bname:ident => $bop:ident),* $(,)? }
        unary { $($u:ident)* }
    ) => {
        chain_trait! {
            $(fn $u(self) -> Result<Tensor>;)*
            $(
                fn $name(self, rhs: &Tensor) -> Result<Tensor>;
                fn $sname(self, s: f32) -> Result<Tensor>;
            )*
            fn rsub_scalar(self, s: f32) -> Result<Tensor>;
            fn rdiv_scalar(self, s: f32) -> Result<Tensor>;
            fn rpow_scalar(self, s: f32) -> Result<Tensor>;
            fn leaky_relu(self, slope: f32) -> Result<Tensor>;
            fn elu(self, alpha: f32) -> Result<Tensor>;
            fn clamp(self, lo: f32, hi: f32) -> Result<Tensor>;
            fn clamp_min(self, lo: f32) -> Result<Tensor>;
            fn clamp_max(self, hi: f32) -> Result<Tensor>;
            fn hardtanh(self, lo: f32, hi: f32) -> Result<Tensor>;
            fn prelu(self, weight: &Tensor) -> Result<Tensor>;
            fn powf(self, e: f32) -> Result<Tensor>;
            fn affine(self, a: f32, b: f32) -> Result<Tensor>;
            fn broadcast_to(self, shape: &[usize]) -> Result<Tensor>;
            fn matmul(self, rhs: &Tensor) -> Result<Tensor>;
            fn matmul_t(self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor>;
            fn reshape(self, shape: &[usize]) -> Result<Tensor>;
            fn flatten_from(self, axis: usize) -> Result<Tensor>;
            fn permute(self, dims: &[usize]) -> Result<Tensor>;
            fn transpose(self, d0: isize, d1: isize) -> Result<Tensor>;
            fn t(self) -> Result<Tensor>;
            fn narrow(self, axis: isize, start: usize, len: usize) -> Result<Tensor>;
            fn slice(self, axis: isize, start: usize, end: usize) -> Result<Tensor>;
            fn pad(self, pads: &[(usize, usize)], value: f32) -> Result<Tensor>;
            fn to_dtype(self, dtype: DType) -> Result<Tensor>;
            fn deep_clone(self) -> Result<Tensor>;
            fn sum_all(self) -> Result<Tensor>;
            fn sum_axis(self, axis: isize, keepdim: bool) -> Result<Tensor>;
            fn sum_axes(self, axes: &[isize], keepdim: bool) -> Result<Tensor>;
            fn sum_to_shape(self, shape: &[usize]) -> Result<Tensor>;
            fn mean_all(self) -> Result<Tensor>;
            fn mean_axis(self, axis: isize, keepdim: bool) -> Result<Tensor>;
            fn var_all(self, unbiased: bool) -> Result<Tensor>;
            fn var_axis(self, axis: isize, unbiased: bool, keepdim: bool) -> Result<Tensor>;
            fn max_all(self) -> Result<Tensor>;
            fn min_all(self) -> Result<Tensor>;
            fn amax_axis(self, axis: isize, keepdim: bool) -> Result<Tensor>;
            fn amin_axis(self, axis: isize, keepdim: bool) -> Result<Tensor>;
            fn max_axis(self, axis: isize, keepdim: bool) -> Result<(Tensor, Tensor)>;
            fn min_axis(self, axis: isize, keepdim: bool) -> Result<(Tensor, Tensor)>;
            fn argmax_all(self) -> Result<Tensor>;
            fn argmin_all(self) -> Result<Tensor>;
            fn argmax_axis(self, axis: isize, keepdim: bool) -> Result<Tensor>;
            fn argmin_axis(self, axis: isize, keepdim: bool) -> Result<Tensor>;
            fn logsumexp_all(self) -> Result<Tensor>;
            fn logsumexp_axis(self, axis: isize, keepdim: bool) -> Result<Tensor>;
            fn softmax(self, axis: isize) -> Result<Tensor>;
            fn log_softmax(self, axis: isize) -> Result<Tensor>;
            fn gather(self, axis: isize, index: &Tensor) -> Result<Tensor>;
            fn index_select(self, axis: isize, index: &Tensor) -> Result<Tensor>;
            fn scatter_add(self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor>;
            fn one_hot(self, num_classes: usize) -> Result<Tensor>;
            fn zeros_like(self) -> Result<Tensor>;
            fn ones_like(self) -> Result<Tensor>;
            fn adaptive_avg_pool2d(self, output: (usize, usize)) -> Result<Tensor>;
            fn requires_grad_(self, requires_grad: bool) -> Result<Tensor>;
            fn backward(self) -> Result<()>;
            fn item(self) -> Result<f32>;
            fn to_scalar(self) -> Result<f32>;
        }
    };
}

macro_rules! chain_trait {
    ($(fn $name:ident(self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        /// The ops of [`Tensor`] on a `cinder::Result<Tensor>`: each passes an `Err` through
        /// unchanged and otherwise calls the [`Tensor`] method of the same name, so a chain
        /// of ops needs one `?`, at its end. Brought in by `cinder::prelude::*`.
        pub trait TensorResultExt {
            $(
                #[doc = concat!("[`Tensor::", stringify!($name), "`] on a `Result`; an `Err` passes through.")]
                fn $name(self $(, $arg: $ty)*) -> $ret;
            )*
        }

        impl TensorResultExt for Result<Tensor> {
            $(
                fn $name(self $(, $arg: $ty)*) -> $ret {
                    self?.$name($($arg),*)
                }
            )*
        }
    };
}

cinder_device::unary_op_table!(chain_unary, pub(crate));

macro_rules! result_operator {
    ($trait:ident, $method:ident) => {
        /// `Result<Tensor> op &Tensor`: an `Err` on the left passes through.
        impl $trait<&Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$method(&self?, rhs)
            }
        }
        /// `Result<Tensor> op Tensor`: an `Err` on the left passes through.
        impl $trait<Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$method(&self?, &rhs)
            }
        }
        /// `&Tensor op Result<Tensor>`: an `Err` on the right passes through.
        impl $trait<Result<Tensor>> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Result<Tensor>) -> Result<Tensor> {
                Tensor::$method(self, &rhs?)
            }
        }
        /// `Tensor op Result<Tensor>`: an `Err` on the right passes through.
        impl $trait<Result<Tensor>> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Result<Tensor>) -> Result<Tensor> {
                Tensor::$method(&self, &rhs?)
            }
        }
    };
}

result_operator!(Add, add);
result_operator!(Sub, sub);
result_operator!(Mul, mul);
result_operator!(Div, div);
