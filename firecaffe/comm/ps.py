"""A synchronous parameter server on dedicated ranks, parameters sharded across the servers.

``split_servers`` turns the world into W workers (the first ranks) and S servers
(the last S ranks). Shard s, a contiguous slice of the flat array, lives on
server s. Each step every worker pushes shard s of its gradient to server s; the
server sums the W pushes in worker order (so the float sum is deterministic),
passes the sum to ``update`` and sends the result back to every worker, which
pulls it into its own array. With the default identity update the round trip is
an allreduce, which makes the parameter server a peer of the other strategies in
benchmarks and tests; training passes a solver step that returns new weights.
"""
from typing import NamedTuple

import numpy as np
from mpi4py import MPI

from ..errors import FirecaffeError
from .base import TAG_PS_PULL, TAG_PS_PUSH, TAG_PS_STOP, Communicator, check_flat, even_bounds


class ServerSplit(NamedTuple):
    """This rank's part in a parameter-server job."""
    role: str               # "worker" or "server"
    worker_comm: object     # communicator of the workers; None on a server
    world: object           # the communicator workers and servers talk over
    num_workers: int
    num_servers: int

    @property
    def server_index(self):
        """Which shard this server rank holds."""
        return self.world.Get_rank() - self.num_workers


def split_servers(world, num_servers):
    """Split ``world`` into workers and ``num_servers`` servers (its last ranks). Collective."""
    size = world.Get_size()
    if not 1 <= num_servers < size:
        raise FirecaffeError(
            f"--comm ps needs 1 <= num_servers < number of ranks, got num_servers={num_servers} "
            f"with {size} rank(s): launch more ranks or use fewer servers")
    num_workers = size - num_servers
    is_server = world.Get_rank() >= num_workers
    group = world.Split(color=int(is_server), key=world.Get_rank())
    if is_server:
        group.Free()
        return ServerSplit("server", None, world, num_workers, num_servers)
    return ServerSplit("worker", group, world, num_workers, num_servers)


class PSWorker(Communicator):
    """The worker side: push gradient shards, pull result shards. ``close()`` stops the servers."""

    def __init__(self, comm, split):
        super().__init__(comm)
        self.split = split

    def _allreduce(self, buf):
        self._push_pull(buf, buf)

    def push_pull_(self, flat_grad, out):
        """Push ``flat_grad`` to the servers and pull their results into ``out``."""
        check_flat(flat_grad)
        check_flat(out)
        with self.staged(flat_grad, device_ok=False, upload=False) as grad, \
                self.staged(out, device_ok=False, download=False, slot=1) as result:
            self._push_pull(grad, result)

    def _push_pull(self, grad, out):
        world, split = self.split.world, self.split
        bounds = even_bounds(grad.size, split.num_servers)
        servers = range(split.num_servers)
        # Pushes complete before the pulls are posted: grad may be out (allreduce_ is in place).
        MPI.Request.Waitall([world.Isend(grad[bounds[s]:bounds[s + 1]], dest=split.num_workers + s,
                                         tag=TAG_PS_PUSH) for s in servers])
        MPI.Request.Waitall([world.Irecv(out[bounds[s]:bounds[s + 1]], source=split.num_workers + s,
                                         tag=TAG_PS_PULL) for s in servers])

    def close(self):
        """Tell every server to stop. Every worker calls this once, after its last step."""
        stop = np.empty(0, np.float32)
        for server in range(self.split.num_servers):
            self.split.world.Send(stop, dest=self.split.num_workers + server, tag=TAG_PS_STOP)


class PSServer:
    """The server side: holds shard ``split.server_index`` of a flat array of ``size`` elements."""

    def __init__(self, split, size, dtype=np.float32):
        if split.role != "server":
            raise ValueError("PSServer runs on a server rank of split_servers()")
        self.split = split
        bounds = even_bounds(size, split.num_servers)
        self.shard = slice(bounds[split.server_index], bounds[split.server_index + 1])
        length = self.shard.stop - self.shard.start
        self._sum = np.empty(length, dtype)
        self._scratch = (np.empty(length, dtype), np.empty(length, dtype))

    def serve(self, update=None):
        """Answer steps until the workers close; returns the number of steps served.

        ``update(shard_sum) -> result`` gets the sum of the workers' pushes for
        this shard and returns the array sent back (the sum itself by default).
        """
        steps = 0
        while self._gather_sum():
            result = self._sum if update is None else update(self._sum)
            world = self.split.world
            MPI.Request.Waitall([world.Isend(result, dest=worker, tag=TAG_PS_PULL)
                                 for worker in range(self.split.num_workers)])
            steps += 1
        return steps

    def _gather_sum(self):
        """Sum one push from every worker into ``self._sum``; False when they all said stop."""
        world, workers = self.split.world, self.split.num_workers

        def receive(worker):
            return world.Irecv(self._landing(worker), source=worker, tag=MPI.ANY_TAG)

        requests = {worker: receive(worker) for worker in range(min(workers, 3))}
        status, stops = MPI.Status(), 0
        for worker in range(workers):
            requests.pop(worker).Wait(status)
            if status.Get_tag() == TAG_PS_STOP:
                stops += 1
            elif worker > 0:
                np.add(self._sum, self._landing(worker), out=self._sum)
            if worker > 0 and worker + 2 < workers:
                requests[worker + 2] = receive(worker + 2)  # into the buffer just added
        if stops not in (0, workers):
            raise FirecaffeError(f"parameter server {self.split.server_index}: {stops} of {workers} "
                                 "workers stopped while the others pushed a step")
        return stops == 0

    def _landing(self, worker):
        """Where ``worker``'s push arrives: the sum itself for worker 0, else one of two alternating buffers."""
        return self._sum if worker == 0 else self._scratch[worker % 2]
