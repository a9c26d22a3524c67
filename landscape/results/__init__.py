"""Result kinds: one module per kind, the only code that writes or reads that kind's HDF5 group.

Each module (``hessian``, ``surface``, ``interpolation``, ``sharpness``, ``escape``,
``experiment``) defines a dataclass for one result group, with ``write(group)`` to store it in
an (empty) h5py group and ``read(group)`` (a classmethod) to load it back, so that
``Kind.read(g) == Kind(...)`` after ``Kind(...).write(g)``. Every command, the experiment,
``plot``, ``report`` and ``info`` go through these modules, so a file does not depend on which
command wrote it. :mod:`landscape.store` owns the file around the groups (locking, atomic
replacement, group names); docs/file-format.md documents the layout and is tested against these
modules.

Every group carries the same provenance attributes: :class:`Provenance`.
"""

from landscape.results.provenance import Provenance

__all__ = ["Provenance"]
