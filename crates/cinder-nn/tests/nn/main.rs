//! nn tests: every layer's forward against a CPU reference computed here, default init
//! statistics, train/eval behaviour, and every loss against its formula.

mod attention;
mod common;
mod conv_pool;
mod layers;
mod losses;
mod norms;
mod recurrent;
