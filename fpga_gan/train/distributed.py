"""Data-parallel training on several processes: ``torchrun --nproc-per-node N fpga-gan train ...``.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`start` joins the process
group (NCCL when every rank has a GPU of its own, gloo on CPUs) and a single process run is the
world of one, with no process group at all, so one code path serves both.

What keeps the ranks one run:

* every rank builds the same model from the same seed, and DistributedDataParallel averages the
  gradients, so the weights stay identical step for step (:func:`check_identical` proves it at
  the end of a run);
* every rank draws its batch from its own shard of the training set (sample ``i`` belongs to rank
  ``i % world``) with the same random generator, so the generator's state, and the checkpoint
  that holds it, is the same on every rank;
* rank 0 alone writes checkpoints, metrics and progress; the others wait for it at a barrier, and
  on ``--resume`` every rank reads the same checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Dist", "start"]


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """True on the rank that writes files and shows progress."""
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        return torch.distributed.get_backend() if self.world > 1 else None

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` under DistributedDataParallel (itself, in a world of one)."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def shard(self, n: int) -> np.ndarray:
        """The indices of the training samples this rank reads."""
        indices = np.arange(self.rank, n, self.world)
        if len(indices) == 0:
            raise ValueError(f"{n} training samples cannot be shared among {self.world} processes")
        return indices

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def check_identical(self, module: torch.nn.Module) -> list[str]:
        """Every rank's weight digest (in rank order); ValueError if they are not all the same."""
        digest = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        mine = digest.hexdigest()
        if self.world == 1:
            return [mine]
        digests: list[str | None] = [None] * self.world
        torch.distributed.all_gather_object(digests, mine)
        if len(set(digests)) != 1:
            raise ValueError(f"the ranks' weights differ after training: {digests}")
        return [str(d) for d in digests]

    def stop(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def start() -> Dist:
    """Join the process group torchrun describes in the environment, or a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and torch.cuda.device_count() > local:
        device, backend = torch.device("cuda", local), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    return Dist(rank, world, device)
