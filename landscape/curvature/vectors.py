"""Where the Krylov engines' vectors live: one flat tensor, or each rank's shard of it.

Lanczos, Hutch++ and SLQ need five things of their vectors besides adding and scaling them:
inner products, norms, the coefficients ``Q w`` of a vector against a stored basis, random
probes, and (Hutch++ only) an orthonormal basis of a few columns. A :class:`VectorSpace`
supplies them; an engine asks its operator for one (:func:`vector_space`) and never looks
at how the vectors are laid out.

* :class:`FlatSpace` -- the default: a vector is one tensor of length ``dim`` on one process,
  probes come from one ``torch.Generator`` seeded with ``seed`` in the order they are drawn.
  Exactly the arithmetic and random numbers the engines used before the seam existed.
* :class:`ParameterSpace` -- a vector is laid out parameter by parameter and every rank holds
  a contiguous slice of each parameter (its shard; FSDP2's ``Shard(0)`` slices are
  contiguous in the flattened parameter), concatenated in parameter order. Inner products,
  norms and basis coefficients are local float64 sums all-reduced over the ranks (one
  all-reduce of ``8 * rows`` bytes per call), so every rank takes the same decisions and no
  rank ever holds a whole vector. On one process with whole parameters it is the same space
  unsharded: the one-process reference of a sharded run.

Probes of a :class:`ParameterSpace` do not depend on the sharding. Draw ``d`` of stream
``seed`` is generated chunk by chunk: element ``i`` of parameter ``name`` belongs to chunk
``c = i // CHUNK``, whose values come from a generator seeded with a hash of
``(seed, d, name, c)``. A rank generates only the chunks its slice touches, so a probe
costs each rank ``O(shard + 2 * CHUNK * parameters)`` random numbers and at most one chunk
of extra memory per parameter (not a whole parameter), and any world size -- one process
included -- sees the same vector. (They are not the numbers of :class:`FlatSpace`, whose one
generator runs through the whole vector in order.)

What the basis costs per rank: Lanczos with full reorthogonalisation keeps ``basis_size``
float64 vectors, i.e. ``8 * basis_size * local_dim`` bytes, ``local_dim ~ dim / world_size``
(``lanczos_eigs``' thick restart caps ``basis_size``; ``lanczos_tridiagonal``'s
``max_basis`` caps SLQ's basis; Krylov Hutch++'s ``max_rank`` caps its deflation basis).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from landscape.parallel import SINGLE, Partition

CHUNK = 1 << 16
"""Elements per independently seeded chunk of a :class:`ParameterSpace` probe."""


class FlatSpace:
    """Vectors of length ``dim`` held whole by one process (see the module notes)."""

    sharded = False

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        self.dim = int(dim)
        self.local_dim = self.dim
        self.device = torch.device(device)

    def dot(self, a: torch.Tensor, b: torch.Tensor) -> float:
        return float(a @ b)

    def norm(self, v: torch.Tensor) -> float:
        return float(v.norm())

    def coefficients(self, rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``rows @ w`` for a basis stored as the rows of ``rows``."""
        return rows @ w

    def orthonormal_columns(self, columns: torch.Tensor) -> torch.Tensor:
        """An orthonormal basis of the span of ``columns`` (``(local_dim, r)``)."""
        return torch.linalg.qr(columns)[0]

    def coordinate_vectors(self) -> Iterator[torch.Tensor]:
        """The ``dim`` unit vectors ``e_i`` in order (exact traces of tiny operators)."""
        yield from torch.eye(self.dim, dtype=torch.float64, device=self.device)

    def stream(self, seed: int) -> FlatStream:
        return FlatStream(self, seed)


class FlatStream:
    """Probes from one generator seeded with ``seed``, drawn in order."""

    def __init__(self, space: FlatSpace, seed: int) -> None:
        self.space = space
        self.generator = torch.Generator().manual_seed(seed)

    def gaussian(self) -> torch.Tensor:
        """Standard normal entries, float64, on the CPU."""
        return torch.randn(self.space.dim, generator=self.generator, dtype=torch.float64)

    def rademacher(self) -> torch.Tensor:
        """Entries +-1, float64, on the space's device."""
        signs = torch.randint(0, 2, (self.space.dim,), generator=self.generator, dtype=torch.int8)
        return (signs.to(torch.float64) * 2 - 1).to(self.space.device)


@dataclass(frozen=True)
class Slice:
    """This rank's elements ``[start, start + length)`` of the flattened parameter ``name``
    (``numel`` elements in all)."""

    name: str
    numel: int
    start: int
    length: int


class ParameterSpace:
    """Vectors laid out parameter by parameter, each rank holding one slice of each parameter
    (see the module notes); ``partition`` sums over the ranks that hold the other slices."""

    sharded = True

    def __init__(
        self,
        slices: Sequence[Slice],
        partition: Partition = SINGLE,
        device: torch.device | str = "cpu",
    ) -> None:
        self.slices = list(slices)
        self.partition = partition
        self.device = torch.device(device)
        self.dim = sum(s.numel for s in self.slices)
        self.local_dim = sum(s.length for s in self.slices)
        offsets, offset = [], 0
        for s in self.slices:
            offsets.append(offset)
            offset += s.length
        self.offsets = offsets  # where each parameter's slice starts in a local vector

    @classmethod
    def whole(
        cls, names: Sequence[str], sizes: Sequence[int], device: torch.device | str = "cpu"
    ) -> ParameterSpace:
        """Whole parameters on one process: the unsharded reference of a sharded run."""
        return cls([Slice(n, int(s), 0, int(s)) for n, s in zip(names, sizes)], SINGLE, device)

    def _sum(self, value: torch.Tensor) -> torch.Tensor:
        return self.partition.sum_(value) if self.partition.is_distributed else value

    def dot(self, a: torch.Tensor, b: torch.Tensor) -> float:
        return float(self._sum((a.to(torch.float64) @ b.to(torch.float64)).reshape(1))[0])

    def norm(self, v: torch.Tensor) -> float:
        return self.dot(v, v) ** 0.5

    def coefficients(self, rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self._sum(rows @ w)

    def orthonormal_columns(self, columns: torch.Tensor) -> torch.Tensor:
        """Classical Gram-Schmidt applied twice, column by column, with all-reduced
        coefficients (a QR of a tall matrix whose rows are spread over the ranks)."""
        basis = torch.zeros(columns.shape[1], columns.shape[0], dtype=torch.float64)
        basis = basis.to(columns.device)
        for i, column in enumerate(columns.T):
            w = column.to(torch.float64).clone()
            for _ in range(2):
                w -= basis[:i].T @ self.coefficients(basis[:i], w)
            basis[i] = w / max(self.norm(w), 1e-300)
        return basis.T

    def coordinate_vectors(self) -> Iterator[torch.Tensor]:
        """The global unit vectors ``e_i`` in order, each as this rank's slice (zero where
        this rank does not hold coordinate ``i``)."""
        for s, offset in zip(self.slices, self.offsets):
            for i in range(s.numel):
                e = torch.zeros(self.local_dim, dtype=torch.float64, device=self.device)
                if s.start <= i < s.start + s.length:
                    e[offset + i - s.start] = 1.0
                yield e

    def split(self, local: torch.Tensor) -> list[torch.Tensor]:
        """A local vector as per-parameter flat slices."""
        return list(torch.split(local, [s.length for s in self.slices]))

    def stream(self, seed: int) -> ParameterStream:
        return ParameterStream(self, seed)


def chunk_seed(seed: int, draw: int, name: str, chunk: int) -> int:
    """A 63-bit seed for one chunk of one probe; stable across processes and Python runs
    (not Python's salted ``hash``)."""
    key = f"{seed}/{draw}/{name}/{chunk}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


class ParameterStream:
    """Probes of a :class:`ParameterSpace`, independent of how the parameters are sharded."""

    def __init__(self, space: ParameterSpace, seed: int) -> None:
        self.space, self.seed, self.draws = space, int(seed), 0

    def _draw(self, sample) -> torch.Tensor:
        draw, self.draws = self.draws, self.draws + 1
        parts = []
        for s in self.space.slices:
            if s.length == 0:
                continue
            first, last = s.start // CHUNK, (s.start + s.length - 1) // CHUNK
            pieces = []
            for c in range(first, last + 1):
                generator = torch.Generator().manual_seed(chunk_seed(self.seed, draw, s.name, c))
                values = sample(min(CHUNK, s.numel - c * CHUNK), generator)
                lo = max(s.start - c * CHUNK, 0)
                hi = min(s.start + s.length - c * CHUNK, values.numel())
                pieces.append(values[lo:hi])
            parts.extend(pieces)
        if not parts:
            return torch.zeros(0, dtype=torch.float64, device=self.space.device)
        return torch.cat(parts).to(self.space.device)

    def gaussian(self) -> torch.Tensor:
        return self._draw(lambda n, g: torch.randn(n, generator=g, dtype=torch.float64))

    def rademacher(self) -> torch.Tensor:
        def signs(n: int, g: torch.Generator) -> torch.Tensor:
            return (
                torch.randint(0, 2, (n,), generator=g, dtype=torch.int8).to(torch.float64) * 2 - 1
            )

        return self._draw(signs)


VectorSpace = FlatSpace | ParameterSpace


def vector_space(op) -> VectorSpace:
    """The space of ``op``'s vectors: its ``space`` attribute, else a :class:`FlatSpace` of
    ``op.dim`` on its device."""
    space = getattr(op, "space", None)
    if space is not None:
        return space
    return FlatSpace(int(op.dim), getattr(op, "device", torch.device("cpu")))
