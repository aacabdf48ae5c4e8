//! The backward pass: a reverse topological walk of the recorded graph that runs each
//! node's rule and accumulates gradients ([`Tensor::backward`], [`grad`]).

use std::collections::{HashMap, HashSet};

use cinder_device::{DeviceTensor, Error, Result};

use crate::mode::with_grad_mode;
use crate::tensor::{Ctx, Tensor, lock};

/// How a backward pass runs: keep the graph afterwards, and record the backward ops
/// themselves (for higher-order gradients).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackwardOptions {
    /// Keep the graph so another backward can run through it (implied by `create_graph`).
    pub retain_graph: bool,
    /// Record the backward ops, so the gradients themselves can be differentiated.
    pub create_graph: bool,
}

impl Tensor {
    /// Computes the gradient of this one-element tensor with respect to every leaf that
    /// requires grad and adds it to their [`Tensor::grad`]. Frees the graph afterwards.
    /// Returns `Err` when the tensor has more than one element, does not require grad, or
    /// its graph was already freed by an earlier backward.
    pub fn backward(&self) -> Result<()> {
        self.backward_with(None, BackwardOptions::default())
    }

    /// [`Tensor::backward`] with an explicit output gradient (`None` means ones, allowed
    /// for one-element tensors only) and options: `create_graph` records the backward pass
    /// so that the leaves' gradients can be differentiated again. Errors as
    /// [`Tensor::backward`], and on a gradient of the wrong shape.
    pub fn backward_with(&self, grad: Option<&Tensor>, opts: BackwardOptions) -> Result<()> {
        let seed = seed_grad("backward", self, grad)?;
        run(&[(self.clone(), seed)], None, opts)?;
        Ok(())
    }
}

/// Gradients of the sum of `outputs` (each one-element) with respect to `inputs`, as
/// `torch.autograd.grad(outputs, inputs, create_graph=...)`, without touching any
/// `.grad()`. An input the outputs do not depend on gets zeros. With `create_graph` the
/// returned gradients carry a graph and can be differentiated again (the graph is then
/// kept); without it the graph is freed. Returns `Err` when an output has more than one
/// element or does not require grad, or an input does not require grad.
pub fn grad(outputs: &[&Tensor], inputs: &[&Tensor], create_graph: bool) -> Result<Vec<Tensor>> {
    grad_with(outputs, None, inputs, create_graph)
}

/// [`grad`] with explicit output gradients (`grad_outputs[i]` has `outputs[i]`'s shape;
/// `None` means ones for one-element outputs). Errors as [`grad`], and when the counts or
/// shapes of `grad_outputs` do not match.
pub fn grad_with(
    outputs: &[&Tensor],
    grad_outputs: Option<&[&Tensor]>,
    inputs: &[&Tensor],
    create_graph: bool,
) -> Result<Vec<Tensor>> {
    if let Some(g) = grad_outputs
        && g.len() != outputs.len()
    {
        return Err(Error::invalid(
            "grad",
            format!("{} grad_outputs for {} outputs", g.len(), outputs.len()),
            &[],
        ));
    }
    let mut roots = Vec::with_capacity(outputs.len());
    for (i, o) in outputs.iter().enumerate() {
        let g = grad_outputs.map(|g| g[i]);
        roots.push(((*o).clone(), seed_grad("grad", o, g)?));
    }
    for t in inputs {
        if !t.requires_grad() {
            return Err(Error::invalid(
                "grad",
                "an input does not require grad",
                &t.shape(),
            ));
        }
    }
    let targets: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    let opts = BackwardOptions {
        retain_graph: create_graph,
        create_graph,
    };
    let found = run(&roots, Some(&targets), opts)?;
    found
        .into_iter()
        .zip(inputs)
        .map(|(g, t)| match g {
            Some(g) => Ok(g),
            None => Ok(Tensor::from_raw(t.raw().zeros_like()?)),
        })
        .collect()
}

fn seed_grad(op: &'static str, out: &Tensor, grad: Option<&Tensor>) -> Result<Tensor> {
    if !out.requires_grad() {
        return Err(Error::invalid(
            op,
            "the tensor does not require grad and has no grad_fn",
            &out.shape(),
        ));
    }
    if out.is_leaf() || out.op_name().is_some() {
        // fine: a leaf, or a node whose graph is still there
    } else {
        return Err(Error::invalid(
            op,
            "the graph was freed by an earlier backward; pass retain_graph to keep it",
            &out.shape(),
        ));
    }
    match grad {
        Some(g) => {
            if g.shape() != out.shape() {
                return Err(Error::shapes(op, &g.shape(), &out.shape()));
            }
            Ok(g.clone())
        }
        None => {
            if out.numel() != 1 {
                return Err(Error::invalid(
                    op,
                    "grad can be implicitly created only for one-element outputs",
                    &out.shape(),
                ));
            }
            Ok(Tensor::from_raw(out.raw().ones_like()?))
        }
    }
}

/// Tensors reachable from `roots` through nodes, each after every tensor that uses it
/// (reverse post-order of an iterative depth-first walk).
fn topo_order(roots: &[(Tensor, Tensor)]) -> Result<Vec<Tensor>> {
    let mut seen: HashSet<usize> = HashSet::new();
    let mut post: Vec<Tensor> = Vec::new();
    // (tensor, its inputs already pushed)
    let mut stack: Vec<(Tensor, bool)> = roots.iter().map(|(t, _)| (t.clone(), false)).collect();
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            post.push(t);
            continue;
        }
        if !seen.insert(t.key()) {
            continue;
        }
        let inputs: Vec<Tensor> = match lock(&t.inner.node).as_ref() {
            Some(n) => n.inputs.clone(),
            None if !t.is_leaf() => {
                return Err(Error::invalid(
                    "backward",
                    "the graph was freed by an earlier backward; pass retain_graph to keep it",
                    &t.shape(),
                ));
            }
            None => Vec::new(),
        };
        stack.push((t, true));
        for i in inputs {
            if i.requires_grad() && !seen.contains(&i.key()) {
                stack.push((i, false));
            }
        }
    }
    post.reverse();
    Ok(post)
}

fn accumulate(map: &mut HashMap<usize, Tensor>, t: &Tensor, g: Tensor) -> Result<()> {
    let g = match map.remove(&t.key()) {
        Some(prev) => prev.add(&g)?,
        None => g,
    };
    map.insert(t.key(), g);
    Ok(())
}

/// Runs the backward pass. With `targets`, returns the gradient reaching each target and
/// leaves `.grad()` alone; without, accumulates into the leaves' `.grad()`.
fn run(
    roots: &[(Tensor, Tensor)],
    targets: Option<&[Tensor]>,
    opts: BackwardOptions,
) -> Result<Vec<Option<Tensor>>> {
    let order = topo_order(roots)?;
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    for (t, g) in roots {
        accumulate(&mut grads, t, g.clone())?;
    }
    let target_pos: HashMap<usize, usize> = targets
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, t)| (t.key(), i))
        .collect();
    let mut found: Vec<Option<Tensor>> = vec![None; targets.map_or(0, |t| t.len())];
    let retain = opts.retain_graph || opts.create_graph;

    with_grad_mode(opts.create_graph, || -> Result<()> {
        for t in &order {
            let Some(g) = grads.remove(&t.key()) else {
                continue;
            };
            if let Some(&i) = target_pos.get(&t.key()) {
                found[i] = Some(g.clone());
            }
            let node = lock(&t.inner.node);
            let Some(node) = node.as_ref() else {
                if targets.is_none() && t.requires_grad() {
                    let mut slot = lock(&t.inner.grad);
                    let g = if opts.create_graph { g } else { g.detach() };
                    *slot = Some(match slot.take() {
                        Some(prev) => prev.add(&g)?,
                        None => g,
                    });
                }
                continue;
            };
            let ctx = Ctx {
                grad: &g,
                inputs: &node.inputs,
                output: t,
            };
            let input_grads = crate::mode::in_backward_of(node.op, || (node.backward)(&ctx))?;
            for (inp, ig) in node.inputs.iter().zip(input_grads) {
                let Some(ig) = ig else { continue };
                if !inp.requires_grad() {
                    continue;
                }
                let ig = check_shape(node.op, ig, &inp.raw())?;
                accumulate(&mut grads, inp, ig)?;
            }
        }
        Ok(())
    })?;

    if !retain {
        for t in &order {
            lock(&t.inner.node).take();
        }
    }
    Ok(found)
}

/// A rule's gradient must have its input's shape; a mismatch is a bug in the rule, reported
/// as an `Err` naming the op rather than a wrong answer.
fn check_shape(op: &'static str, g: Tensor, input: &DeviceTensor) -> Result<Tensor> {
    if g.shape() != input.shape() {
        return Err(Error::shapes(op, &g.shape(), input.shape()));
    }
    Ok(g)
}
