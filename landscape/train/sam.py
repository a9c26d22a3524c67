"""Sharpness-Aware Minimization as a wrapper around any base optimizer.

SAM (Foret et al., "Sharpness-Aware Minimization for Efficiently Improving
Generalization", ICLR 2021) minimises max_{||e|| <= rho} L(w + e). One step is

    g   = grad L(w)                         first forward/backward
    e_w = rho * g / ||g||                   ascent to the (first-order) worst point
    g'  = grad L(w + e_w)                   second forward/backward
    w  <- base_optimizer_step(w, g')        w restored first; momentum, weight decay as usual

ASAM (Kwon et al., "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
Learning of Deep Neural Networks", ICML 2021) measures the neighbourhood in the
parameter-scaled norm ||T_w^{-1} e|| with the element-wise operator T_w = |w|:

    e_w = rho * T_w^2 g / ||T_w g||

Weight decay belongs to the base optimizer, so the ascent uses the loss gradient only.
BatchNorm running statistics must not see the second pass; see :func:`bn_stats_frozen`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from landscape.bn import BN_TYPES


class SAM(torch.optim.Optimizer):
    """SAM / ASAM around ``base_optimizer``, sharing its parameter groups.

    Use ``first_step()`` after the first backward pass and ``second_step()`` after the
    second, or ``step(closure)`` with a closure that zeroes gradients, runs forward and
    backward and returns the loss. ``rho`` and ``adaptive`` live in the parameter groups,
    so they travel with ``state_dict()``, which is the base optimizer's (SAM keeps no state
    between steps: the perturbation is removed in ``second_step``).
    """

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        adaptive: bool = False,
        eps: float = 1e-12,
    ) -> None:
        if not rho >= 0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        self.base_optimizer = base_optimizer
        self.eps = eps
        # Share the base optimizer's group dicts: a learning-rate change made through either
        # object is seen by both. add_param_group only adds the missing rho/adaptive keys.
        super().__init__(base_optimizer.param_groups, {"rho": rho, "adaptive": adaptive})
        self.param_groups = base_optimizer.param_groups
        self.state = base_optimizer.state

    @torch.no_grad()
    def _ascent_norm(self) -> torch.Tensor:
        """||g|| for SAM, ||T_w g|| = || |w| * g || for ASAM, over all parameters with a
        gradient."""
        norms = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                scaled = p.grad * p.abs() if group["adaptive"] else p.grad
                norms.append(torch.linalg.vector_norm(scaled))
        if not norms:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(norms))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = True) -> None:
        """Move every parameter to w + e_w, keeping w for ``second_step``."""
        norm = self._ascent_norm()
        # w itself, not e_w: (w + e_w) - e_w is not w in floating point, and with a per-rank
        # ascent (a different e_w on each rank) the ranks' weights would drift apart by ulps.
        self._origin: list[tuple[torch.Tensor, torch.Tensor]] = []
        for group in self.param_groups:
            scale = group["rho"] / (norm + self.eps)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = p.grad * scale.to(p.dtype)
                if group["adaptive"]:
                    e_w = e_w * p * p  # T_w^2 g with T_w = |w|
                self._origin.append((p, p.detach().clone()))
                p.add_(e_w)
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = True) -> None:
        """Return to w exactly and take the base optimizer's step with the gradient found at
        w + e_w."""
        for p, w in getattr(self, "_origin", ()):
            p.copy_(w)
        self._origin = []
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """Full SAM step. ``closure`` must zero the gradients, run forward and backward, and
        return the loss; it is called once (at w + e_w) — the first backward pass has
        already happened before ``step`` is called."""
        if closure is None:
            raise ValueError("SAM.step needs a closure that recomputes the loss and gradients")
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            loss = closure()
        self.second_step(zero_grad=False)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state


@contextmanager
def bn_stats_frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, BatchNorm layers in training mode normalise with batch statistics
    as usual but do not update ``running_mean``/``running_var``/``num_batches_tracked``.

    Used for SAM's second forward pass, which runs at the perturbed point w + e_w and must
    not leak into the statistics the model is evaluated with. Switching
    ``track_running_stats`` off costs nothing (no buffer copies).
    """
    touched = []
    for module in model.modules():
        if isinstance(module, BN_TYPES) and module.track_running_stats:
            module.track_running_stats = False
            touched.append(module)
    try:
        yield model
    finally:
        for module in touched:
            module.track_running_stats = True
