"""LR schedules (torch.optim.lr_scheduler): the learning rate of every parameter group after
construction and after each step, stepped the way PyTorch's documentation steps them, and
OneCycleLR's momentum / beta1. Each case is a custom case:

    args:    {"schedule": {...the schedule's options...}, "lrs": [base lr per group],
              "optimizer": "sgd" | "adam" | "adagrad", "momentum": 0.9 (sgd), "steps": N}
    tensors: expect.lr [N + 1, groups] (row 0: after construction), expect.momentum
             (OneCycleLR with cycle_momentum), metrics [N] (ReduceLROnPlateau: the rates
             after each of the N metrics, no row 0)

PyTorch computes the rates in Python floats (f64); Cinder in f64 and stores f32, so the
tolerance is f32 rounding: rtol 1e-6 and atol 1e-12.
"""

import math

import torch
from torch.optim import lr_scheduler as S

RTOL = 1e-6
ATOL = 1e-12


def make_opt(kind, lrs, momentum=0.9):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    if kind == "adagrad":
        return torch.optim.Adagrad(groups, lr=lrs[0])
    raise ValueError(kind)


def build_sched(opt, s):
    kind = s["kind"]
    if kind == "step":
        return S.StepLR(opt, s["step_size"], gamma=s.get("gamma", 0.1))
    if kind == "multistep":
        return S.MultiStepLR(opt, s["milestones"], gamma=s.get("gamma", 0.1))
    if kind == "exponential":
        return S.ExponentialLR(opt, s["gamma"])
    if kind == "cosine":
        return S.CosineAnnealingLR(opt, s["t_max"], eta_min=s.get("eta_min", 0.0))
    if kind == "warm_restarts":
        return S.CosineAnnealingWarmRestarts(
            opt, s["t_0"], T_mult=s.get("t_mult", 1), eta_min=s.get("eta_min", 0.0))
    if kind == "polynomial":
        return S.PolynomialLR(opt, total_iters=s.get("total_iters", 5), power=s.get("power", 1.0))
    if kind == "linear":
        return S.LinearLR(opt, start_factor=s.get("start_factor", 1.0 / 3),
                          end_factor=s.get("end_factor", 1.0), total_iters=s.get("total_iters", 5))
    if kind == "sequential":
        warm = S.LinearLR(opt, start_factor=s["start_factor"], end_factor=1.0,
                          total_iters=s["warmup"])
        inner = build_sched(opt, s["inner"])
        return S.SequentialLR(opt, [warm, inner], milestones=[s["warmup"]])
    if kind == "one_cycle":
        kw = {k: s[k] for k in ("pct_start", "anneal_strategy", "cycle_momentum",
                                "base_momentum", "max_momentum", "div_factor",
                                "final_div_factor", "three_phase") if k in s}
        if "total_steps" in s:
            return S.OneCycleLR(opt, s["max_lr"], total_steps=s["total_steps"], **kw)
        return S.OneCycleLR(opt, s["max_lr"], epochs=s["epochs"],
                            steps_per_epoch=s["steps_per_epoch"], **kw)
    if kind == "plateau":
        kw = {k: s[k] for k in ("mode", "factor", "patience", "threshold", "threshold_mode",
                                "cooldown", "min_lr", "eps") if k in s}
        return S.ReduceLROnPlateau(opt, **kw)
    raise ValueError(kind)


def momenta(opt):
    out = []
    for g in opt.param_groups:
        out.append(g["betas"][0] if "betas" in g else g.get("momentum", 0.0))
    return out


def case(fam, name, sched, lrs, steps, optimizer="sgd", momentum=0.9, metrics=None):
    opt = make_opt(optimizer, lrs, momentum)
    s = build_sched(opt, sched)
    cycle = sched["kind"] == "one_cycle" and sched.get("cycle_momentum", True)
    rows = []
    moms = []
    tensors = {}
    if metrics is None:
        rows.append([g["lr"] for g in opt.param_groups])
        moms.append(momenta(opt))
        for _ in range(steps):
            opt.step()
            s.step()
            rows.append([g["lr"] for g in opt.param_groups])
            moms.append(momenta(opt))
    else:
        # The metric as Cinder sees it (an f32).
        metrics = torch.tensor(metrics, dtype=torch.float32)
        tensors["metrics"] = metrics
        for m in metrics.tolist():
            opt.step()
            s.step(m)
            rows.append([g["lr"] for g in opt.param_groups])
    tensors["expect.lr"] = torch.tensor(rows, dtype=torch.float64)
    if cycle:
        tensors["expect.momentum"] = torch.tensor(moms, dtype=torch.float64)
    args = {"schedule": sched, "lrs": lrs, "optimizer": optimizer, "momentum": momentum,
            "steps": steps if metrics is None else len(rows)}
    fam.custom(name, sched["kind"], tensors, args=args, atol=ATOL, rtol=RTOL)


def error_case(fam, name, sched, lrs, steps, optimizer="sgd"):
    """PyTorch raises while building or stepping the schedule; Cinder must return Err."""
    try:
        opt = make_opt(optimizer, lrs)
        s = build_sched(opt, sched)
        for _ in range(steps):
            opt.step()
            s.step()
    except (ValueError, ZeroDivisionError, TypeError):
        pass
    else:
        raise AssertionError(f"{name}: PyTorch did not raise")
    args = {"schedule": sched, "lrs": lrs, "optimizer": optimizer, "momentum": 0.9,
            "steps": steps}
    fam.custom(name, sched["kind"], {}, args=args, expect_error=True)


def build(fam):
    two = [0.1, 0.025]
    case(fam, "step_lr", {"kind": "step", "step_size": 3, "gamma": 0.5}, two, 20)
    case(fam, "step_lr_default_gamma", {"kind": "step", "step_size": 7}, [0.3], 25)
    case(fam, "multistep_lr", {"kind": "multistep", "milestones": [2, 5, 9]}, two, 15)
    # PyTorch keeps milestones in a Counter: any order, a repeated one decays twice.
    case(fam, "multistep_lr_unsorted_repeated",
         {"kind": "multistep", "milestones": [9, 3, 3, 12], "gamma": 0.5}, [0.2], 16)
    case(fam, "multistep_lr_milestone_0", {"kind": "multistep", "milestones": [0, 4]},
         [0.1], 6)
    case(fam, "exponential_lr", {"kind": "exponential", "gamma": 0.9}, two, 40)
    case(fam, "exponential_lr_growth", {"kind": "exponential", "gamma": 1.05}, [0.01], 30)
    # Past t_max the cosine rises again (PyTorch's recursive form has a special branch at
    # epochs t_max + 1 + 2k t_max; the closed form agrees).
    case(fam, "cosine_lr", {"kind": "cosine", "t_max": 10, "eta_min": 0.001}, [0.1], 45)
    case(fam, "cosine_lr_groups", {"kind": "cosine", "t_max": 7}, two, 30)
    case(fam, "cosine_lr_t_max_1", {"kind": "cosine", "t_max": 1, "eta_min": 0.01}, [0.1], 6)
    case(fam, "warm_restarts", {"kind": "warm_restarts", "t_0": 5}, two, 25)
    case(fam, "warm_restarts_t_mult_2",
         {"kind": "warm_restarts", "t_0": 3, "t_mult": 2, "eta_min": 0.01}, [0.1], 50)
    case(fam, "warm_restarts_t_0_1", {"kind": "warm_restarts", "t_0": 1, "t_mult": 3},
         [0.1], 15)
    case(fam, "polynomial_lr_defaults", {"kind": "polynomial"}, two, 10)
    case(fam, "polynomial_lr_power_2_5",
         {"kind": "polynomial", "total_iters": 8, "power": 2.5}, [0.1], 12)
    case(fam, "polynomial_lr_power_0_5",
         {"kind": "polynomial", "total_iters": 6, "power": 0.5}, [0.05], 9)
    case(fam, "linear_lr_defaults", {"kind": "linear"}, two, 10)
    case(fam, "linear_lr_decay",
         {"kind": "linear", "start_factor": 0.5, "end_factor": 0.1, "total_iters": 4},
         [0.2], 8)
    case(fam, "linear_lr_warmup",
         {"kind": "linear", "start_factor": 0.25, "end_factor": 1.0, "total_iters": 4},
         [0.1], 8)
    cos = {"kind": "cosine", "t_max": 6}
    case(fam, "sequential_warmup_cosine",
         {"kind": "sequential", "start_factor": 0.1, "warmup": 3, "inner": cos}, two, 15)
    case(fam, "sequential_warmup_step",
         {"kind": "sequential", "start_factor": 0.2, "warmup": 4,
          "inner": {"kind": "step", "step_size": 2, "gamma": 0.5}}, [0.1], 14)
    case(fam, "sequential_warmup_exponential",
         {"kind": "sequential", "start_factor": 0.5, "warmup": 2,
          "inner": {"kind": "exponential", "gamma": 0.8}}, [0.1], 10)
    # The inner schedule's epoch-0 rate differs from the base: the warmup still targets the
    # base rate, as PyTorch's LinearLR.
    case(fam, "sequential_warmup_multistep_0",
         {"kind": "sequential", "start_factor": 0.5, "warmup": 2,
          "inner": {"kind": "multistep", "milestones": [0, 3], "gamma": 0.5}}, [0.1], 8)
    case(fam, "one_cycle_defaults_sgd",
         {"kind": "one_cycle", "max_lr": [0.1, 0.02], "total_steps": 20}, two, 20)
    case(fam, "one_cycle_three_phase_linear_adam",
         {"kind": "one_cycle", "max_lr": 0.01, "total_steps": 17, "pct_start": 0.25,
          "anneal_strategy": "linear", "three_phase": True}, [0.001], 17, optimizer="adam")
    case(fam, "one_cycle_epochs_no_momentum",
         {"kind": "one_cycle", "max_lr": 0.5, "epochs": 4, "steps_per_epoch": 5,
          "cycle_momentum": False, "div_factor": 10.0, "final_div_factor": 100.0},
         [0.1], 20, optimizer="adagrad")
    case(fam, "one_cycle_momentum_lists",
         {"kind": "one_cycle", "max_lr": [0.3, 0.03], "total_steps": 12, "pct_start": 0.5,
          "base_momentum": [0.8, 0.7], "max_momentum": [0.9, 0.99], "three_phase": True},
         two, 12, momentum=0.0)
    # total_steps = 3 with pct_start 0.3: the first phase ends before step 0 (-0.1), so
    # every step is in the second; the last step (3) is extrapolated past its end.
    case(fam, "one_cycle_short",
         {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 3}, [0.1], 3)
    error_case(fam, "one_cycle_past_last_step",
               {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 5}, [0.1], 6)
    # pct_start * total_steps = 1: the first phase has length 0 at step 0.
    error_case(fam, "one_cycle_zero_length_phase",
               {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 10, "pct_start": 0.1},
               [0.1], 1)
    error_case(fam, "one_cycle_adagrad_momentum",
               {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 10}, [0.1], 1,
               optimizer="adagrad")
    error_case(fam, "one_cycle_bad_pct_start",
               {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 10, "pct_start": 1.5},
               [0.1], 1)
    error_case(fam, "one_cycle_zero_steps",
               {"kind": "one_cycle", "max_lr": 0.1, "total_steps": 0}, [0.1], 1)
    error_case(fam, "one_cycle_max_lr_list_too_short",
               {"kind": "one_cycle", "max_lr": [0.1, 0.2, 0.3], "total_steps": 10}, two, 1)
    error_case(fam, "linear_lr_start_factor_0",
               {"kind": "linear", "start_factor": 0.0}, [0.1], 1)
    error_case(fam, "linear_lr_end_factor_above_1",
               {"kind": "linear", "end_factor": 1.5}, [0.1], 1)
    error_case(fam, "warm_restarts_t_0_0", {"kind": "warm_restarts", "t_0": 0}, [0.1], 1)
    error_case(fam, "warm_restarts_t_mult_0",
               {"kind": "warm_restarts", "t_0": 2, "t_mult": 0}, [0.1], 1)
    error_case(fam, "step_lr_step_size_0", {"kind": "step", "step_size": 0}, [0.1], 2)
    error_case(fam, "plateau_factor_1", {"kind": "plateau", "factor": 1.0}, [0.1], 1)

    # ReduceLROnPlateau: improves twice, stalls (a 1e-5 relative gain is under the 1e-4
    # threshold), improves, then stalls long enough for reductions down to min_lr.
    metrics = [1.0, 0.9, 0.9, 0.89999, 0.9, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8,
               0.8, 0.8, 0.8, 0.8]
    case(fam, "plateau_min_rel",
         {"kind": "plateau", "factor": 0.5, "patience": 2, "cooldown": 1, "min_lr": 0.02},
         [0.1], 0, metrics=metrics)
    case(fam, "plateau_max_abs",
         {"kind": "plateau", "mode": "max", "threshold_mode": "abs", "threshold": 0.01,
          "patience": 1}, [1.0, 0.1], 0,
         metrics=[0.5, 0.505, 0.52, 0.525, 0.526, 0.6, 0.6, 0.6, 0.61, 0.6, 0.6, 0.6])
    case(fam, "plateau_min_lr_per_group",
         {"kind": "plateau", "patience": 0, "factor": 0.5, "min_lr": [0.01, 0.04]},
         [0.1, 0.1], 0, metrics=[1.0] * 8)
    # Reductions smaller than eps are skipped (but still start the cooldown).
    case(fam, "plateau_eps",
         {"kind": "plateau", "patience": 0, "factor": 0.5, "eps": 1e-3, "cooldown": 2},
         [0.01], 0, metrics=[1.0] + [2.0] * 13)
    case(fam, "plateau_nan_metric",
         {"kind": "plateau", "patience": 1}, [0.1], 0,
         metrics=[1.0, float("nan"), float("nan"), 0.5, float("nan"), float("nan")])
    case(fam, "plateau_defaults", {"kind": "plateau"}, [0.1], 0,
         metrics=[1.0 - 0.01 * i for i in range(5)] + [0.96] * 25)
    assert math.isfinite(RTOL)
