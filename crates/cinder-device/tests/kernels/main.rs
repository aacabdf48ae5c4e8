//! Every kernel against a plain CPU reference, one module per kernel family.

mod attention;
mod checks;
mod common;
mod conv;
mod device;
mod elementwise;
mod graph;
mod index;
mod layout;
mod linalg;
mod matmul;
mod norm;
mod optim;
mod pool;
mod random;
mod reduce;
mod shaders;
mod sizes;
mod softmax;
mod tsne;
