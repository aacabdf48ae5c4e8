//! `&a + &b`-style operators on [`Tensor`]. Each returns `cinder::Result<Tensor>`, as the
//! named methods do, so a shape mismatch is an `Err`: write `(&a + &b)?`.

use std::ops::{Add, Div, Mul, Neg, Sub};

use cinder_device::Result;

use crate::tensor::Tensor;

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $tensor_op:ident, $scalar_op:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(self, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, &rhs)
            }
        }
        impl $trait<f32> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f32) -> Result<Tensor> {
                Tensor::$scalar_op(&self, rhs)
            }
        }
        impl $trait<f32> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f32) -> Result<Tensor> {
                Tensor::$scalar_op(&self, rhs)
            }
        }
    };
}

binary_operator!(Add, add, add, add_scalar);
binary_operator!(Sub, sub, sub, sub_scalar);
binary_operator!(Mul, mul, mul, mul_scalar);
binary_operator!(Div, div, div, div_scalar);

impl Add<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn add(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.add_scalar(self)
    }
}
impl Sub<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn sub(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.rsub_scalar(self)
    }
}
impl Mul<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn mul(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.mul_scalar(self)
    }
}
impl Div<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn div(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.rdiv_scalar(self)
    }
}

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}
