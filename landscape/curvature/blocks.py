"""Per-block spectra: the curvature restricted to a group of parameters.

For a parameter subset ``B`` the block is the diagonal sub-matrix ``C[B, B]`` of the full
curvature matrix (Hessian, GGN or Fisher): products ``v_B -> C[B, B] v_B`` with ``v`` living on
``B`` only, computed by differentiating with respect to ``B`` alone (the operators'
``parameters=`` argument), so a block costs about what a full product does and no more. Its
eigenvalues are those of the block-diagonal approximation that ignores the coupling between
groups -- the per-layer spectra of e.g. Sankar et al., "A deeper look at the Hessian
eigenspectrum of deep neural networks and its applications to regularization", AAAI 2021.

Blocks are named from the model (:func:`parameter_blocks`):

* ``layer`` -- one block per module that holds parameters itself, named by its qualified name
  (``layer1.0.conv1``; the root module's own parameters are the block ``<root>``);
* ``type`` -- one block per kind of module: ``conv``, ``linear``, ``norm``, ``embedding``,
  ``attention`` (everything inside an attention module), ``other``;
* regular expressions, comma-separated -- one block per expression, the parameters whose
  qualified name it matches (``re.search``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from landscape.curvature.density import SpectralDensity, slq_density
from landscape.curvature.lanczos import EigResult, lanczos_eigs
from landscape.curvature.trace import TRACE_METHODS, TraceResult
from landscape.errors import UserError
from landscape.progress import ProgressFn

ROOT = "<root>"

MODULE_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d),
    "linear": (nn.Linear, nn.Bilinear),
    "norm": (
        nn.modules.batchnorm._NormBase,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.RMSNorm,
    ),
    "embedding": (nn.Embedding, nn.EmbeddingBag),
    "attention": (nn.MultiheadAttention,),
}
BLOCK_KINDS = ("layer", "type")


def _is_attention(module: nn.Module) -> bool:
    # Custom attention modules (a transformer's own) rarely subclass MultiheadAttention.
    return (
        isinstance(module, MODULE_TYPES["attention"])
        or "attention" in type(module).__name__.lower()
    )


def module_type(module: nn.Module) -> str:
    """The kind of ``module`` as :data:`MODULE_TYPES` names it, else ``other``."""
    for kind, classes in MODULE_TYPES.items():
        if isinstance(module, classes):
            return kind
    return "attention" if _is_attention(module) else "other"


def _trainable(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _layer_blocks(model: nn.Module) -> dict[str, list[str]]:
    trainable = set(_trainable(model))
    blocks: dict[str, list[str]] = {}
    for prefix, module in model.named_modules():
        names = [
            f"{prefix}.{name}" if prefix else name
            for name, _ in module.named_parameters(recurse=False)
        ]
        names = [name for name in names if name in trainable]
        if names:
            blocks[prefix or ROOT] = names
    return blocks


def _type_blocks(model: nn.Module) -> dict[str, list[str]]:
    modules = dict(model.named_modules())
    blocks: dict[str, list[str]] = {}
    for owner, names in _layer_blocks(model).items():
        path = "" if owner == ROOT else owner
        kind = module_type(modules[path])
        # Inside an attention module every parameter counts as attention (its projections too).
        parts = path.split(".") if path else []
        if any(_is_attention(modules[".".join(parts[:i])]) for i in range(len(parts) + 1)):
            kind = "attention"
        blocks.setdefault(kind, []).extend(names)
    order = [*MODULE_TYPES, "other"]
    return {kind: blocks[kind] for kind in order if kind in blocks}


def _regex_blocks(model: nn.Module, spec: str) -> dict[str, list[str]]:
    trainable = _trainable(model)
    blocks: dict[str, list[str]] = {}
    for pattern in (p.strip() for p in spec.split(",")):
        if not pattern:
            raise UserError(f"--blocks {spec!r} has an empty expression")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise UserError(f"--blocks: {pattern!r} is not a regular expression ({exc})") from exc
        names = [name for name in trainable if compiled.search(name)]
        if not names:
            raise UserError(f"--blocks: {pattern!r} matches no trainable parameter")
        blocks[pattern] = names
    return blocks


def parameter_blocks(model: nn.Module, spec: str) -> dict[str, list[str]]:
    """``{block name: [parameter names]}`` for ``spec`` = ``layer``, ``type`` or
    comma-separated regular expressions (module docstring); parameters in model order."""
    if spec == "layer":
        return _layer_blocks(model)
    if spec == "type":
        return _type_blocks(model)
    return _regex_blocks(model, spec)


def storage_name(block: str) -> str:
    """A block name usable as an HDF5 group name ('/' separates groups)."""
    return block.replace("/", "\u2215") or ROOT


@dataclass
class BlockSpectrum:
    """What was computed on one block (``None`` where not asked for)."""

    name: str
    parameters: list[str]
    dim: int
    top: EigResult | None = None
    bottom: EigResult | None = None
    trace: TraceResult | None = None
    density: SpectralDensity | None = None
    hvp_count: int = 0


def block_spectrum(
    name: str,
    op,
    *,
    top_k: int = 1,
    bottom_k: int = 0,
    tol: float = 1e-4,
    stop: str = "residual",
    max_hvps: int | None = None,
    seed: int = 0,
    trace: dict | None = None,
    density: dict | None = None,
    progress: ProgressFn | None = None,
) -> BlockSpectrum:
    """Top/bottom eigenvalues, trace and density of the operator ``op`` of one block.

    ``trace`` is ``{"method", "rel_stderr", "max_hvps"}`` and ``density`` ``{"runs", "steps",
    "sigma"}`` (optionally ``"lockstep"``, :func:`slq_density`) when asked for; ``progress``
    gets every algorithm's reports. ``k`` is capped at the block's dimension (a bias of 3 has
    3 eigenvalues).
    """
    result = BlockSpectrum(name, list(op.names), int(op.dim))
    start = op.hvp_count
    for which, k in (("top", top_k), ("bottom", bottom_k)):
        if k:
            eig = lanczos_eigs(
                op,
                min(k, op.dim),
                which=which,
                tol=tol,
                stop=stop,
                max_hvps=max_hvps,
                seed=seed,
                eigenvectors=False,
                progress=progress,
            )
            setattr(result, which, eig)
    if trace is not None:
        result.trace = TRACE_METHODS[trace["method"]](
            op,
            rel_stderr=trace["rel_stderr"],
            max_hvps=trace["max_hvps"],
            seed=seed,
            progress=progress,
        )
    if density is not None:
        result.density = slq_density(
            op,
            runs=density["runs"],
            steps=min(density["steps"], op.dim),
            sigma=density["sigma"],
            seed=seed,
            lockstep=bool(density.get("lockstep", False)),
            progress=progress,
        )
    result.hvp_count = op.hvp_count - start
    return result
