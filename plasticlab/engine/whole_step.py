"""The whole training step as one compiled graph (``engine.compile: true``, where a run allows it).

``steps.train_step`` compiles the forward pass and the loss; backward then runs through the
autograd engine and the optimiser step through ``torch.optim``'s Python. Where a step is nothing
but forward, loss, backward and an Adam/AdamW update, ``WholeStep`` compiles all of it — forward
and loss, the gradient (``torch.func.grad``), PyTorch's own functional ``adam`` applied to the
optimiser's own parameters and state tensors, and the device accumulators — into one graph. No
autograd engine, no ``.grad`` buffers, no optimiser Python per step: the bf16 EMNIST MLP step on
CPU takes ~16% less time (docs/performance.md). The optimiser's state stays where
``torch.optim`` keeps it, so checkpoints, resumes and methods see it as usual.

A step takes this path when:

* the optimiser is ``torch.optim.Adam`` or ``AdamW`` with one parameter group, no amsgrad, no
  maximize, holding exactly the model's trainable parameters, and its state exists (the first
  step, and a step after a method dropped the state, run the usual way and build it);
* no method declares ``per_step`` (uses ``extra_loss``, ``add_grad``, ``after_step``) or
  ``capture`` — methods acting at task boundaries only are fine;
* the model has no buffers (BatchNorm's running statistics) and the family declares
  ``cross_entropy`` (its loss is ``classification_loss``).

Otherwise, or if compiling fails (one line on stderr says so), ``steps.train_step`` runs its
usual step. Results equal the usual step up to floating-point reassociation (tests compare them
with the ``aot_eager`` backend, which does not reorder arithmetic).
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad
from torch.optim.adam import adam

from plasticlab.engine import accel
from plasticlab.tasks.base import classification_loss


def why_not(s) -> str | None:
    """Why the run of ``s`` (a ``build.Setup``) cannot use the whole-step graph, or None if it can."""
    if not getattr(s.family, "cross_entropy", False):
        return "its family's loss is not plain cross-entropy"
    if any(True for _ in s.model.buffers()):
        return "the model has buffers"
    for m in s.methods:
        if m.per_step or m.capture:
            return f"method {m.name} acts inside every step"
    if not plain_adam(s.optimizer):
        return f"the optimiser ({type(s.optimizer).__name__}) is not torch's plain Adam/AdamW"
    return None


def plain_adam(opt: torch.optim.Optimizer) -> bool:
    """Adam/AdamW with one group and none of the options the functional graph does not take."""
    if type(opt) not in (torch.optim.Adam, torch.optim.AdamW) or len(opt.param_groups) != 1:
        return False
    g = opt.param_groups[0]
    return not (g["amsgrad"] or g["maximize"] or g["differentiable"] or torch.is_tensor(g["lr"]))


class WholeStep:
    """One compiled graph per training step of ``s`` (a ``build.Setup``); call ``step(x, target, acc)``."""

    def __init__(self, s):
        self.s = s
        self.enabled = True
        self.names: list[str] = []
        self.key: tuple = ()
        self.compiled = accel.compiled(self._step)

    def _loss(self, values: dict, x: torch.Tensor, target: torch.Tensor):
        s = self.s
        with accel.autocast(s.cfg.engine.precision, s.device):
            loss, correct, _ = classification_loss(lambda inp: functional_call(s.model, values, (inp,)), x, target)
        return loss, (loss.detach(), correct)

    def _step(self, params, exp_avgs, exp_avg_sqs, steps, x, target, acc, hyper):
        lr, beta1, beta2, weight_decay, eps, decoupled = hyper
        grads, (loss, correct) = grad(self._loss, has_aux=True)(dict(zip(self.names, params, strict=True)), x, target)
        adam(params, [grads[n] for n in self.names], exp_avgs, exp_avg_sqs, [], steps, foreach=False,
             decoupled_weight_decay=decoupled, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
             weight_decay=weight_decay, eps=eps, maximize=False)
        n = torch.full_like(acc[2], x.shape[0])
        acc += torch.stack([loss.float() * n, correct.float(), n])

    def _names(self, params: list[torch.Tensor]) -> bool:
        """Cache the parameter names; False if the optimiser does not hold exactly the trainable ones."""
        key = tuple(map(id, params))
        if key != self.key:
            named = {id(p): n for n, p in self.s.model.named_parameters() if p.requires_grad}
            if len(named) != len(params) or any(id(p) not in named for p in params):
                return False
            self.names, self.key = [named[id(p)] for p in params], key
        return True

    def step(self, x: torch.Tensor, target: torch.Tensor, acc: torch.Tensor) -> bool:
        """One step of the whole graph; False (nothing done) where this step must run the usual way."""
        opt = self.s.optimizer
        if not (self.enabled and plain_adam(opt)):
            return False
        g = opt.param_groups[0]
        params = g["params"]
        states = [opt.state.get(p, {}) for p in params]
        if any("exp_avg" not in st for st in states) or not self._names(params):
            return False
        if params[0].grad is not None:  # why: the usual step's last gradients would look current
            opt.zero_grad(set_to_none=True)
        hyper = (g["lr"], *g["betas"], g["weight_decay"], g["eps"], g["decoupled_weight_decay"])
        try:
            with torch.no_grad():
                self.compiled([p.detach() for p in params], [st["exp_avg"] for st in states],
                              [st["exp_avg_sq"] for st in states], [st["step"] for st in states], x, target, acc,
                              hyper)
        except Exception as e:  # why: a backend failure (no C++ compiler, unsupported op) must not stop a run
            self.enabled = False
            accel.notice(f"engine.compile: compiling the whole training step failed ({accel.first_line(e)}); "
                         "compiling forward and loss only")
            return False
        return True


def build(s) -> WholeStep | None:
    """``WholeStep(s)`` where ``engine.compile`` is on and the run allows it (``why_not``), else None
    (with one stderr line saying why, when ``engine.compile`` asked for it)."""
    if not s.cfg.engine.compile:
        return None
    if "whole" not in s.compiled:
        why = why_not(s)
        if why is not None:
            accel.notice(f"engine.compile: the whole step cannot be one graph ({why}); compiling forward and loss "
                         "only")
        s.compiled["whole"] = None if why is not None else WholeStep(s)
    return s.compiled["whole"]
