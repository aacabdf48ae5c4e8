//! Optimizers with PyTorch's update rules and parameter groups, each parameter updated by
//! one fused WGSL kernel per step (see `shaders/optim.wgsl`), and gradient clipping.
//!
//! | Cinder | PyTorch |
//! |---|---|
//! | [`Sgd`] | `torch.optim.SGD` |
//! | [`Adam`] | `torch.optim.Adam` (L2 weight decay) |
//! | [`AdamW`] | `torch.optim.AdamW` (decoupled weight decay) |
//! | [`RmsProp`] | `torch.optim.RMSprop` |
//! | [`Adagrad`] | `torch.optim.Adagrad` |
//! | [`ParamGroup`], `with_groups` | `param_groups` |
//! | [`weight_decay_groups`] | the usual "no decay on biases and norms" recipe |
//! | [`clip_grad_norm`], [`clip_grad_norm_with`] | `torch.nn.utils.clip_grad_norm_` |
//! | [`clip_grad_value`] | `torch.nn.utils.clip_grad_value_` |
//!
//! ```no_run
//! # use cinder_nn::{VarStore, optim::{AdamW, AdamWConfig, Optimizer, weight_decay_groups}};
//! # fn f(vs: &VarStore, loss: &cinder_autograd::Tensor) -> cinder_device::Result<()> {
//! // Decay the weights, not the biases and normalization parameters.
//! let cfg = AdamWConfig { lr: 1e-3, ..Default::default() };
//! let mut opt = AdamW::with_groups(weight_decay_groups(vs.named_parameters(), cfg))?;
//! opt.zero_grad();
//! loss.backward()?;
//! opt.step()?;
//! # Ok(()) }
//! ```

/// The [`Optimizer`] methods every optimizer here implements the same way, from its `core`.
macro_rules! delegate_optimizer_methods {
    () => {
        fn num_groups(&self) -> usize {
            self.core.groups.len()
        }

        fn group_parameters(&self, group: usize) -> Option<&[Tensor]> {
            self.core.group_parameters(group)
        }

        fn lr(&self) -> f32 {
            self.core.groups[0].cfg.lr()
        }

        fn lrs(&self) -> Vec<f32> {
            self.core.groups.iter().map(|g| g.cfg.lr()).collect()
        }

        fn set_lr(&mut self, lr: f32) {
            for g in &mut self.core.groups {
                g.cfg.set_lr(lr);
            }
        }

        fn set_group_lr(&mut self, group: usize, lr: f32) -> Result<()> {
            self.core.set_group_lr(group, lr)
        }

        fn initial_lrs(&self) -> Vec<f32> {
            self.core.groups.iter().map(|g| g.initial_lr).collect()
        }

        fn momentum(&self, group: usize) -> Option<f32> {
            self.core.groups.get(group).and_then(|g| g.cfg.momentum())
        }

        fn set_group_momentum(&mut self, group: usize, momentum: f32) -> Result<()> {
            self.core.set_group_momentum(group, momentum)
        }

        fn parameters(&self) -> &[Tensor] {
            &self.core.params
        }

        fn state(&self) -> Vec<(String, Tensor)> {
            self.core
                .export()
                .into_iter()
                .map(|(n, t)| (n, Tensor::from_raw(t)))
                .collect()
        }

        fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
            let raw: Vec<_> = state.iter().map(|(n, t)| (n.clone(), t.raw())).collect();
            self.core.import(&raw)
        }
    };
}

/// Inherent methods every optimizer has, for its config type `$cfg`.
macro_rules! config_methods {
    ($cfg:ty) => {
        /// The options of the first group (with its current learning rate).
        pub fn config(&self) -> &$cfg {
            &self.core.groups[0].cfg
        }

        /// The options of group `group` (with its current learning rate), or `None` past
        /// the last group.
        pub fn group_config(&self, group: usize) -> Option<&$cfg> {
            self.core.groups.get(group).map(|g| &g.cfg)
        }

        /// Replaces the options of group `group` (PyTorch: editing
        /// `optimizer.param_groups[group]`); the group's initial learning rate is kept.
        /// State buffers a new option needs (AMSGrad's maximum, a momentum buffer) start
        /// at zero at the next step. Returns `Err` for a group index out of range or
        /// options the constructor would refuse; the old options are then kept.
        pub fn set_group_config(&mut self, group: usize, cfg: $cfg) -> Result<()> {
            self.core.set_group_config(group, cfg)
        }
    };
}

mod adagrad;
mod adam;
mod base;
mod clip;
mod rmsprop;
mod sgd;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_grad_norm_with, clip_grad_value};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use cinder_autograd::Tensor;
use cinder_device::Result;

/// What every optimizer offers: a step over the parameters' gradients, clearing them, the
/// learning rate and momentum of each parameter group (for schedules), and its state as
/// named tensors (for checkpoints).
///
/// Parameters are numbered across groups in order (group 0's first, then group 1's, ...),
/// as PyTorch numbers them in `state_dict()`; every optimizer has at least one group.
pub trait Optimizer {
    /// Updates every parameter that has a gradient (`.grad()` is `Some`) with one fused
    /// kernel dispatch each, using its group's hyperparameters; parameters without a
    /// gradient are skipped and keep their step count, as in PyTorch. Nothing is read back.
    /// Returns `Err` when a gradient's shape or dtype differs from its parameter's, a
    /// gradient shares the parameter's buffer, or a learning rate set by
    /// [`Optimizer::set_lr`] is negative or not finite; parameters before the failing one
    /// have been updated.
    fn step(&mut self) -> Result<()>;

    /// Clears every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }

    /// The number of parameter groups (at least 1).
    fn num_groups(&self) -> usize;

    /// The parameters of group `group`, or `None` past the last group.
    fn group_parameters(&self, group: usize) -> Option<&[Tensor]>;

    /// The current learning rate of the first group.
    fn lr(&self) -> f32;

    /// The current learning rate of every group (PyTorch's `get_last_lr()`).
    fn lrs(&self) -> Vec<f32>;

    /// Sets the learning rate of every group (PyTorch: `for g in opt.param_groups: g["lr"]
    /// = lr`). A negative or non-finite value is not rejected here; the next
    /// [`Optimizer::step`] returns `Err`.
    fn set_lr(&mut self, lr: f32);

    /// Sets the learning rate of group `group` (what LR schedules call). Returns `Err` for
    /// a group index out of range. A negative or non-finite value is not rejected here
    /// (PyTorch's schedules can compute one, e.g. a linear 1cycle's extrapolated last
    /// step); the next [`Optimizer::step`] returns `Err`.
    fn set_group_lr(&mut self, group: usize, lr: f32) -> Result<()>;

    /// Each group's initial learning rate, the base its schedule starts from (PyTorch's
    /// `initial_lr`): the rate the group was built with, or the one
    /// [`Optimizer::load_state`] restored.
    fn initial_lrs(&self) -> Vec<f32>;

    /// The momentum a 1cycle schedule cycles in group `group` (SGD's and RMSprop's
    /// `momentum`, Adam's and AdamW's `beta1`), or `None` for an optimizer without one
    /// (Adagrad) or a group index out of range.
    fn momentum(&self, group: usize) -> Option<f32>;

    /// Sets the momentum of group `group` (see [`Optimizer::momentum`]); a state buffer it
    /// needs (SGD's or RMSprop's momentum buffer) is created at the next step. Returns `Err`
    /// for a group index out of range, an optimizer without momentum, or a value its
    /// constructor would refuse (negative, not finite, a beta1 outside `[0, 1)`).
    fn set_group_momentum(&mut self, group: usize, momentum: f32) -> Result<()>;

    /// Every parameter, group after group in the order given to the constructor (state
    /// index `i` is the `i`-th).
    fn parameters(&self) -> &[Tensor];

    /// The optimizer's state as `(name, tensor)` pairs with PyTorch's `state_dict()` names,
    /// flattened:
    ///
    /// - `state.{i}.{key}` per parameter `i` that has taken a step, with PyTorch's keys
    ///   (`step`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`,
    ///   `square_avg`, `grad_avg`, `sum`); `step` is a shape-`[]` f32 tensor, the others
    ///   have the parameter's shape;
    /// - `param_groups.{g}.{key}` per group: `params` (the group's parameter indices, u32),
    ///   `lr`, `initial_lr` and every hyperparameter under PyTorch's name (`betas` as a
    ///   `[2]` tensor; booleans as u32 0 or 1; numbers as shape-`[]` f32).
    ///
    /// The tensors are copies (later steps do not change them); if the device cannot
    /// allocate a copy, the live buffer is returned instead, and if it cannot allocate a
    /// scalar that entry is missing (so [`Optimizer::load_state`] of the result fails or
    /// keeps the optimizer's own value rather than resuming wrongly). Reads nothing back.
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Replaces the whole state with `state` (names as [`Optimizer::state`] gives them);
    /// parameters without entries start afresh, and the hyperparameters of a group with
    /// `param_groups.{g}.*` entries are replaced by them (as PyTorch's
    /// `load_state_dict`; a key that is absent keeps the optimizer's value, so a state
    /// without `param_groups` entries keeps every hyperparameter). The tensors are copied.
    /// Returns `Err` naming the first bad entry, in which case nothing changes: an unknown
    /// or malformed name, an index out of range, a wrong shape or dtype, a `step` that is
    /// not a positive integer, a parameter with some but not all of the entries its
    /// group's options need, a group whose `params` differ from this optimizer's, a
    /// hyperparameter the constructor would refuse, or a checkpoint of Adam loaded into
    /// AdamW (or the reverse). Reads the scalars back to the host.
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;
}

/// A parameter group: parameters that share hyperparameters (an entry of PyTorch's
/// `param_groups`). Each group carries a whole config; write the ones that differ from a
/// base config as `SgdConfig { weight_decay: 0.0, ..base }`.
#[derive(Clone, Debug)]
pub struct ParamGroup<C> {
    /// The group's parameters.
    pub params: Vec<Tensor>,
    /// The group's hyperparameters.
    pub cfg: C,
}

impl<C> ParamGroup<C> {
    /// A group of `params` with `cfg`.
    pub fn new(params: Vec<Tensor>, cfg: C) -> Self {
        ParamGroup { params, cfg }
    }
}

/// The hyperparameters of one parameter group: implemented by every optimizer's config
/// ([`SgdConfig`], [`AdamConfig`], [`AdamWConfig`], [`RmsPropConfig`], [`AdagradConfig`]).
pub trait GroupConfig: base::Hyper + Copy + std::fmt::Debug + PartialEq + Send + Sync {
    /// The learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate (not checked here; see [`Optimizer::set_lr`]).
    fn set_lr(&mut self, lr: f32);
    /// The weight decay.
    fn weight_decay(&self) -> f32;
    /// Sets the weight decay (checked when the optimizer is built).
    fn set_weight_decay(&mut self, weight_decay: f32);
    /// The coefficient a 1cycle schedule cycles (`momentum`, or Adam's `beta1`), or `None`
    /// when the optimizer has none (Adagrad).
    fn momentum(&self) -> Option<f32>;
}

/// Splits `named` parameters (from `VarStore::named_parameters()`) into `(matching, rest)`
/// by `pred(name, tensor)`, keeping their order. Never fails.
pub fn split_params(
    named: Vec<(String, Tensor)>,
    pred: impl Fn(&str, &Tensor) -> bool,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let mut yes = Vec::new();
    let mut no = Vec::new();
    for (name, t) in named {
        if pred(&name, &t) {
            yes.push(t);
        } else {
            no.push(t);
        }
    }
    (yes, no)
}

/// The usual weight-decay recipe as two groups: group 0 holds the parameters of rank 2 or
/// more (weight matrices, convolution kernels, embeddings) with `cfg`; group 1 the
/// parameters of rank 0 or 1 (biases, BatchNorm / LayerNorm / GroupNorm scales and
/// shifts) with `cfg` but no weight decay. Both groups are always there (either may be
/// empty), so group numbers do not depend on the model. Never fails; the optimizer built
/// from the groups checks them.
pub fn weight_decay_groups<C: GroupConfig>(
    named: Vec<(String, Tensor)>,
    cfg: C,
) -> Vec<ParamGroup<C>> {
    let (decay, no_decay) = split_params(named, |_, t| t.rank() >= 2);
    let mut plain = cfg;
    plain.set_weight_decay(0.0);
    vec![
        ParamGroup::new(decay, cfg),
        ParamGroup::new(no_decay, plain),
    ]
}
