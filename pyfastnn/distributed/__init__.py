"""Synchronous data-parallel training over MPI (mpi4py): one replica of the network per process.

Every process (rank) holds the same network and its own shard of the data. ``fit(..., comm=comm)`` makes each
step a backward pass on the rank's own mini-batch, one in-place allreduce of the gradients and the identical
update on every rank, so the replicas stay bit-identical. mpi4py is imported only here, when a communicator
is used; install it with ``pip install 'pyfastnn[mpi]'`` (mpi4py and a pip-installed Open MPI).

What this package offers beyond ``fit(..., comm=...)``:

- :func:`abort_on_error`: end the whole MPI job when one rank raises, instead of leaving the other ranks
  waiting forever in a collective operation;
- :func:`shard` / :func:`shard_rows`: the rows of a data set that belong to a rank (r::N after a shared seeded
  shuffle);
- :func:`parameters_digest`: a digest of a network's parameters, to compare replicas.

See docs/distributed.md.
"""

from __future__ import annotations

from ._replicas import abort_on_error, parameters_digest, shard, shard_rows

__all__ = ["abort_on_error", "parameters_digest", "shard", "shard_rows"]
