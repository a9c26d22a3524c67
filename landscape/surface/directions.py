"""Directions spanning a loss-surface slice, as ``{parameter name: tensor}`` dictionaries.

* ``random_direction``: Gaussian, then normalised against the weights (Li et al., "Visualizing
  the Loss Landscape of Neural Nets", NeurIPS 2018). ``filter``: each output filter (slice
  along dim 0) of ``d`` is scaled to the norm of the same filter of ``w``,
  ``d_i <- d_i * ||w_i|| / ||d_i||``; ``layer``: the whole tensor is scaled to ``||w||``;
  ``none``: left as drawn.
* One-dimensional parameters (biases, BatchNorm scales and shifts) follow ``ignore``:
  ``biasbn`` (default, as the paper's code) zeroes them; ``none`` perturbs them too: under
  ``filter`` every entry is its own output filter (``d_i = ±|w_i|``), under ``layer`` the
  vector is scaled as a whole.
* ``pca_directions``: the top two principal components of ``w_t - w_center`` over a training
  trajectory, uncentred so that the plane passes through the centre checkpoint.
* ``between_directions``: ``B - A`` plus a random direction orthogonalised against it.
* ``hessian_directions``: the top two eigenvectors of the Hessian, or of another curvature
  matrix of ``landscape.curvature`` (the generalised Gauss-Newton, the empirical or the
  Monte-Carlo Fisher: ``curvature=``).

Every random tensor is drawn from its own generator seeded by ``(seed, axis, parameter
name)``: a direction depends on names and shapes only, never on module order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

import torch

from landscape.progress import ProgressFn
from landscape.registry import CURVATURE_KINDS, NORMS

# The direction kinds' registry lives in landscape.registry (torch-free, for --help); the kinds'
# code is here.
from landscape.registry import DIRECTION_KINDS as DIRECTION_KINDS
from landscape.registry import DirectionKind as DirectionKind
from landscape.registry import register_direction_kind as register_direction_kind

Direction = dict[str, torch.Tensor]

IGNORES = ("biasbn", "none")


def _generator_seed(seed: int, axis: str, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{axis}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def gaussian_like(weights: Mapping[str, torch.Tensor], *, seed: int, axis: str) -> Direction:
    """Standard normal tensors shaped like ``weights``, drawn in float64 on the CPU (so the
    same seed gives the same direction on every device and dtype), then cast."""
    out = {}
    for name, w in weights.items():
        gen = torch.Generator().manual_seed(_generator_seed(seed, axis, name))
        d = torch.randn(tuple(w.shape), generator=gen, dtype=torch.float64)
        out[name] = d.to(device=w.device, dtype=w.dtype)
    return out


def _scale_rows(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Scale each row of ``d`` (viewed as (rows, -1)) to the norm of the same row of ``w``."""
    rows = d.shape[0] if d.dim() > 0 else 1
    d2 = d.reshape(rows, -1)
    w_norm = w.reshape(rows, -1).norm(dim=1, keepdim=True)
    d_norm = d2.norm(dim=1, keepdim=True)
    scale = torch.where(d_norm > 0, w_norm / torch.where(d_norm > 0, d_norm, 1), 0)
    return (d2 * scale).reshape(d.shape)


def normalize_direction(
    direction: Mapping[str, torch.Tensor],
    weights: Mapping[str, torch.Tensor],
    *,
    norm: str = "filter",
    ignore: str = "biasbn",
) -> Direction:
    """Apply the ``norm`` and ``ignore`` policies of the module docstring (returns new tensors)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
    if ignore not in IGNORES:
        raise ValueError(f"ignore must be one of {IGNORES}, not {ignore!r}")
    out = {}
    for name, d in direction.items():
        w = weights[name].detach()
        if tuple(d.shape) != tuple(w.shape):
            raise ValueError(
                f"direction {name} has shape {tuple(d.shape)}, the weight {tuple(w.shape)}"
            )
        one_d = d.dim() <= 1
        if one_d and ignore == "biasbn":
            out[name] = torch.zeros_like(d)
        elif norm == "none":
            out[name] = d.clone()
        elif norm == "layer":
            d_norm = d.norm()
            out[name] = d * (w.norm() / d_norm) if d_norm > 0 else torch.zeros_like(d)
        elif one_d:  # filter norm: every entry of a 1-D parameter belongs to its own filter
            out[name] = _scale_rows(d.reshape(-1, 1), w.reshape(-1, 1)).reshape(d.shape)
        else:
            out[name] = _scale_rows(d, w)
    return out


def random_direction(
    weights: Mapping[str, torch.Tensor],
    *,
    seed: int,
    axis: str = "x",
    norm: str = "filter",
    ignore: str = "biasbn",
) -> Direction:
    """A normalised Gaussian direction for ``weights`` (Li et al. 2018 with ``norm='filter'``)."""
    return normalize_direction(
        gaussian_like(weights, seed=seed, axis=axis), weights, norm=norm, ignore=ignore
    )


def dot(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Inner product of two directions over their common names, accumulated in float64."""
    return float(sum((a[n].double() * b[n].double()).sum() for n in a))


def norm_of(a: Mapping[str, torch.Tensor]) -> float:
    return dot(a, a) ** 0.5


def between_directions(
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    *,
    seed: int,
    norm: str = "filter",
    ignore: str = "biasbn",
) -> tuple[Direction, Direction]:
    """``x = B - A`` (every parameter, so A sits at (0, 0) and B at (1, 0)) and ``y``: a random
    direction normalised against A, made orthogonal to ``x`` (Gram-Schmidt) and rescaled to
    ``||x||`` so that both axes are in the same units."""
    dx = {n: (b[n].detach().to(a[n].dtype) - a[n].detach()) for n in a}
    nx = norm_of(dx)
    if nx == 0:
        raise ValueError(
            "the two checkpoints have identical parameters: there is no direction between them"
        )
    dy = random_direction(a, seed=seed, axis="y", norm=norm, ignore=ignore)
    coef = dot(dy, dx) / nx**2
    dy = {n: dy[n] - coef * dx[n] for n in dy}
    ny = norm_of(dy)
    if ny == 0:
        raise ValueError(
            "the random direction is parallel to B - A; choose another --seed or --ignore none"
        )
    return dx, {n: dy[n] * (nx / ny) for n in dy}


@dataclass
class PCAPlane:
    """Two orthonormal directions through the centre and where the trajectory lies in them."""

    x: Direction
    y: Direction
    explained_variance_ratio: list[float]  # fraction of sum_t ||w_t - w_c||^2 per component
    coordinates: torch.Tensor  # (T, 2) float64: <w_t - w_c, d_k>
    distance_to_plane: torch.Tensor  # (T,) float64: ||w_t - w_c - projection|| (all parameters)


def pca_directions(
    center: Mapping[str, torch.Tensor],
    trajectory: Sequence[Mapping[str, torch.Tensor]],
    *,
    ignore: str = "biasbn",
    chunk: int = 1 << 20,
) -> PCAPlane:
    """Top two principal components of ``v_t = w_t - w_center`` (uncentred PCA, computed
    through the T x T Gram matrix in float64 so memory stays O(T P) in the model dtype).

    With ``ignore='biasbn'`` 1-D parameters are left out of ``v_t`` (as their directions are
    zero elsewhere). Signs are fixed so the first trajectory point has coordinates <= 0.
    """
    names = list(center)
    if len(trajectory) < 2:
        raise ValueError("PCA directions need at least two trajectory checkpoints")
    keep = [n for n in names if not (ignore == "biasbn" and center[n].dim() <= 1)]
    ref = center[names[0]]
    rows = []
    for state in trajectory:
        rows.append(
            torch.cat(
                [(state[n].detach().to(ref.dtype) - center[n].detach()).reshape(-1) for n in keep]
            )
        )
    m = torch.stack(rows)  # (T, P) in the model dtype
    t, p = m.shape
    gram = torch.zeros(t, t, dtype=torch.float64, device=m.device)
    for start in range(0, p, chunk):
        block = m[:, start : start + chunk].double()
        gram += block @ block.T
    eigvals, eigvecs = torch.linalg.eigh(gram)
    order = torch.argsort(eigvals, descending=True)
    eigvals, eigvecs = eigvals[order].clamp_min(0), eigvecs[:, order]
    total = float(eigvals.sum())
    if total == 0 or float(eigvals[1]) <= 1e-12 * total:
        raise ValueError(
            "the trajectory spans fewer than two dimensions around the centre; PCA needs two"
        )
    comps = []
    coords = []
    for k in range(2):
        sigma = float(eigvals[k]) ** 0.5
        u = eigvecs[:, k]
        if u[0] > 0:  # first trajectory point on the negative side
            u = -u
        d = torch.zeros(p, dtype=m.dtype, device=m.device)
        for start in range(0, p, chunk):
            d[start : start + chunk] = (m[:, start : start + chunk].double().T @ u / sigma).to(
                m.dtype
            )
        comps.append(d)
        coords.append(u * sigma)
    coordinates = torch.stack(coords, dim=1).cpu()
    ratio = [float(eigvals[k]) / total for k in range(2)]
    directions = []
    for d in comps:
        out, offset = {}, 0
        for n in names:
            if n in keep:
                numel = center[n].numel()
                out[n] = d[offset : offset + numel].view(center[n].shape).clone()
                offset += numel
            else:
                out[n] = torch.zeros_like(center[n])
        directions.append(out)
    # Distance of every real checkpoint from the plane, over all parameters.
    distances = []
    for i, state in enumerate(trajectory):
        sq = 0.0
        for n in names:
            v = state[n].detach().double() - center[n].detach().double()
            v = (
                v
                - float(coordinates[i, 0]) * directions[0][n].double()
                - float(coordinates[i, 1]) * directions[1][n].double()
            )
            sq += float((v * v).sum())
        distances.append(sq**0.5)
    return PCAPlane(
        directions[0],
        directions[1],
        ratio,
        coordinates,
        torch.tensor(distances, dtype=torch.float64),
    )


def hessian_directions(
    model,
    loss_fn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    bn_mode: str = "eval",
    seed: int = 0,
    tol: float = 1e-4,
    progress: ProgressFn | None = None,
    curvature: str = "hessian",
    loss_name: str = "cross-entropy",
    fisher_samples: int = 1,
) -> tuple[Direction, Direction, list[float]]:
    """Top two eigenvectors of the ``curvature`` matrix of the mean loss (a key of
    :data:`landscape.curvature.gauss_newton.CURVATURES`: the Hessian by default; ``loss_name``
    and ``fisher_samples`` define ``fisher-mc``'s sampled labels, seeded by ``seed``) by
    Lanczos, as unit directions by parameter name, and their eigenvalues. Signs are fixed so
    that the largest-magnitude entry of each vector is positive. ``progress``: as for
    :func:`landscape.curvature.lanczos_eigs`.

    The curvature engine is imported only here.
    """
    from landscape.curvature import lanczos_eigs
    from landscape.curvature.gauss_newton import curvature_operator

    with curvature_operator(
        curvature,
        model,
        loss_fn,
        inputs,
        targets,
        batch_size=batch_size,
        bn_mode=bn_mode,
        loss_name=loss_name,
        mc_samples=fisher_samples,
        mc_seed=seed,
    ) as op:
        result = lanczos_eigs(
            op, 2, which="top", tol=tol, seed=seed, eigenvectors=True, progress=progress
        )
        names = list(op.names)
    named = dict(model.named_parameters())
    out = []
    for k in range(2):
        vec = torch.as_tensor(result.eigenvectors[k])
        if vec[vec.abs().argmax()] < 0:
            vec = -vec
        offset, d = 0, {}
        for n in names:
            w = named[n]
            d[n] = (
                vec[offset : offset + w.numel()]
                .view(w.shape)
                .to(device=w.device, dtype=w.dtype)
                .clone()
            )
            offset += w.numel()
        for n, w in named.items():  # parameters without gradients (frozen) stay still
            d.setdefault(n, torch.zeros_like(w))
        out.append(d)
    eigenvalues = [float(v) for v in result.eigenvalues[:2]]
    return out[0], out[1], eigenvalues


# ------------------------------------------------- planes of the kinds in landscape.surface.kinds


@dataclass
class DirectionRequest:
    """What a direction kind may use: the centre model and its weights, the other checkpoints'
    weights (a PCA trajectory, the B of ``between``), evaluation tensors for curvature, and the
    options shared by every kind."""

    model: torch.nn.Module
    weights: Mapping[str, torch.Tensor]
    others: Sequence[Mapping[str, torch.Tensor]]
    paths: Sequence[str]  # the centre checkpoint's path, then the others'
    seed: int
    norm: str
    ignore: str
    two_d: bool
    loss_fn: object = None
    inputs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    batch_size: int = 512
    bn_mode: str = "eval"
    progress: ProgressFn | None = None
    curvature: str = "hessian"  # the matrix of the hessian kind (CURVATURES)
    loss_name: str = "cross-entropy"  # the loss's name: fisher-mc's predictive distribution
    fisher_samples: int = 1
    split: str = "train"  # the split of ``inputs``, ``targets`` (recorded by the hessian kind)


@dataclass
class Plane:
    """A kind's answer: ``directions['x']`` (and ``'y'`` for a plane), the axis labels, extra
    group attributes, and for a PCA plane its explained variance and trajectory coordinates."""

    directions: dict[str, Direction]
    labels: tuple[str, str]
    attrs: dict = None  # type: ignore[assignment]
    explained_variance_ratio: list[float] | None = None
    coordinates: torch.Tensor | None = None  # (T, 2): the others' coordinates in the plane
    distance_to_plane: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.attrs = dict(self.attrs or {})


def _axes(request: DirectionRequest, dx: Direction, dy: Direction) -> dict[str, Direction]:
    return {"x": dx, "y": dy} if request.two_d else {"x": dx}


def random_plane(r: DirectionRequest) -> Plane:
    draw = [
        random_direction(r.weights, seed=r.seed, axis=a, norm=r.norm, ignore=r.ignore) for a in "xy"
    ]
    label = f"(random, {r.norm}-normalised)"
    return Plane(_axes(r, *draw), (f"direction 1 {label}", f"direction 2 {label}"))


def between_plane(r: DirectionRequest) -> Plane:
    dx, dy = between_directions(r.weights, r.others[-1], seed=r.seed, norm=r.norm, ignore=r.ignore)
    a, b = r.paths[0], r.paths[-1]
    labels = (f"{PurePath(a).stem} → {PurePath(b).stem}", "orthogonal random direction")
    return Plane(_axes(r, dx, dy), labels, {"a": a, "b": b})


HESSIAN_PLANE_TOL = 1e-4  # Lanczos tolerance of a hessian plane's eigenvectors (recorded)


def hessian_plane(r: DirectionRequest) -> Plane:
    dx, dy, eigenvalues = hessian_directions(
        r.model,
        r.loss_fn,
        r.inputs,
        r.targets,
        batch_size=r.batch_size,
        bn_mode=r.bn_mode,
        seed=r.seed,
        tol=HESSIAN_PLANE_TOL,
        progress=r.progress,
        curvature=r.curvature,
        loss_name=r.loss_name,
        fisher_samples=r.fisher_samples,
    )
    if r.norm != "none":
        dx = normalize_direction(dx, r.weights, norm=r.norm, ignore=r.ignore)
        dy = normalize_direction(dy, r.weights, norm=r.norm, ignore=r.ignore)
    matrix = CURVATURE_KINDS[r.curvature].title
    labels = (f"{matrix} eigenvector 1", f"{matrix} eigenvector 2")
    attrs = {"eigenvalues": eigenvalues, "curvature": r.curvature, "tol": HESSIAN_PLANE_TOL}
    attrs["curvature_split"] = r.split
    if r.curvature == "fisher-mc":
        attrs["fisher_samples"] = r.fisher_samples
    return Plane(_axes(r, dx, dy), labels, attrs)


def pca_plane(r: DirectionRequest) -> Plane:
    plane = pca_directions(r.weights, r.others, ignore=r.ignore)
    return Plane(
        _axes(r, plane.x, plane.y),
        ("PC 1", "PC 2"),
        explained_variance_ratio=list(plane.explained_variance_ratio),
        coordinates=plane.coordinates,
        distance_to_plane=plane.distance_to_plane,
    )
