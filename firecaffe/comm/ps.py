"""A synchronous parameter server on dedicated ranks, parameters sharded across the servers.

With ``servers`` = S the last S ranks of the job serve and the first W hold
the net and compute gradients. Shard s, a contiguous slice of the flat arrays,
lives on server s. Each step every worker pushes shard s of its gradient to
server s; the server sums the W pushes in worker order (so the float sum is
deterministic) into its own diff arena, runs the solver's update on its shard
(``reduce`` returns the server's shard to the Solver, which runs its own rule,
iteration count and snapshots on server ranks too, then ``publish`` answers) and sends the new weights back to every
worker, which pulls them into its parameter arena. ``allreduce_`` is the same
round trip with the sum sent back, which makes the parameter server a peer of
the other strategies in benchmarks and tests (``serve`` answers it).

Cost, W workers and S servers: server s takes W pushes of n/S bytes and answers
W pulls through its one link and adds W-1 of them; a worker sends and receives
S pieces (the busiest rank is a server, or a worker when S > W):

    2 max(W, S) alpha + 2 max(W/S, 1) n beta + (W-1) n/S gamma
"""
import numpy as np

from ..errors import FirecaffeError
from .base import Strategy, check_flat, waitall
from .compress.links import PlainLink
from .tags import (PS_HISTORY as TAG_PS_HISTORY, PS_PULL as TAG_PS_PULL, PS_PUSH as TAG_PS_PUSH,
                   PS_STOP as TAG_PS_STOP)
from .topology import even_bounds


class ParameterServer(Strategy):
    """One rank of a parameter-server job: a worker (push, pull) or a server (sum, update, answer)."""

    name = "ps"
    order = 40
    overlaps = False
    wire_codecs = True        # the pushes (gradients) are encoded; the pulls are weights, in float32
    factor_codecs = False
    codec_advice = ("a parameter server sums pushed gradients and updates them, which PowerSGD's two "
                    "allreduce rounds do not fit; for PowerSGD use an allreduce: --comm tree, dbtree, ring, "
                    "hier or mpi")
    step_words = "the push of the gradients and pull of the weights"

    def __init__(self, world, servers=1, **options):
        size = world.Get_size()
        if not 1 <= servers < size:
            raise FirecaffeError(
                f"--comm ps needs 1 <= --ps-servers < the number of ranks, got --ps-servers {servers} "
                f"with {size} rank(s): launch more ranks or use fewer servers")
        self.world, self.servers, self._workers = world, servers, size - servers
        self.server_index = world.Get_rank() - self._workers      # which shard a server holds
        # Workers get the workers' communicator, servers the servers' (for the gradient norm).
        super().__init__(world.Split(color=int(self.server_index >= 0), key=world.Get_rank()), **options)
        self._scratch = None
        self._stopped = False

    @property
    def is_worker(self):
        return self.server_index < 0

    @property
    def worker_comm(self):
        return self.comm if self.is_worker else None

    @property
    def num_workers(self):
        return self._workers

    # --- workers ------------------------------------------------------------------
    def _allreduce(self, buf, link=None):
        self._push(buf, link)
        self._pull(buf)            # after the pushes completed: buf is both

    def reduce(self, diff, reduced=False):
        """A worker pushes its gradient's shards (and updates nothing); a server sums its shard."""
        check_flat(diff)
        if self.is_worker:
            with self.staged(diff, device_ok=False, upload=False) as grad:
                # (error feedback adds the residual into what it is given: not into the caller's gradient)
                feedback = self.codec.feedback and self.codec.active and grad is diff
                self._push(grad, self.codec.link(grad.copy() if feedback else grad))
            return None
        shard = self._shard(diff.size)
        if not self._gather_sum(diff[shard], shard.start):
            raise FirecaffeError(f"parameter server {self.server_index}: the workers stopped "
                                 "before the last step")
        return shard

    def publish(self, params):
        """A server sends its updated shard to every worker; a worker pulls every shard."""
        check_flat(params)
        if self.is_worker:
            with self.staged(params, device_ok=False, download=False, slot=1) as weights:
                self._pull(weights)
            return
        waitall([self.world.Isend(params[self._shard(params.size)], dest=worker, tag=TAG_PS_PULL)
                 for worker in range(self._workers)])

    @property
    def sum_across(self):
        return None if self.is_worker else self._sum_across_servers

    def _shard(self, size):
        bounds = even_bounds(size, self.servers)
        return slice(bounds[self.server_index], bounds[self.server_index + 1])

    def _push(self, grad, link=None):
        link = link or PlainLink(grad)
        bounds = even_bounds(grad.size, self.servers)
        waitall([self.world.Isend(link.outgoing(slice(bounds[s], bounds[s + 1])), dest=self._workers + s,
                                  tag=TAG_PS_PUSH) for s in range(self.servers)])

    def _pull(self, out):
        bounds = even_bounds(out.size, self.servers)
        waitall([self.world.Irecv(out[bounds[s]:bounds[s + 1]], source=self._workers + s, tag=TAG_PS_PULL)
                 for s in range(self.servers)])

    def gather_history_(self, history, root=0):
        """Worker ``root`` receives every server's shard of the solver history; the servers send it."""
        if self.is_worker and self.world.Get_rank() != root:
            return
        for array in history:
            bounds = even_bounds(array.size, self.servers)
            for s in range(self.servers):
                if self.is_worker:
                    with self.staged(array[bounds[s]:bounds[s + 1]], device_ok=False, download=False) as buf:
                        self.world.Recv(buf, source=self._workers + s, tag=TAG_PS_HISTORY)
                elif s == self.server_index:
                    self.world.Send(np.ascontiguousarray(array[bounds[s]:bounds[s + 1]]), dest=root,
                                    tag=TAG_PS_HISTORY)

    def close(self):
        """Workers tell every server to stop; a server waits for that word from every worker."""
        if self.is_worker:
            stop = np.empty(0, np.float32)
            for server in range(self.servers):
                self.world.Send(stop, dest=self._workers + server, tag=TAG_PS_STOP)
        elif not self._stopped and self._gather_sum(np.empty(0, np.float32)):
            raise FirecaffeError(f"parameter server {self.server_index}: a worker pushed a step "
                                 "after the last one")

    # --- servers ------------------------------------------------------------------
    def serve(self, size, dtype=np.float32):
        """Answer the workers' ``allreduce_`` of ``size`` elements until they close; returns the steps."""
        flat, steps = np.empty(size, dtype), 0
        while self._gather_sum(flat[self._shard(size)]):
            self.publish(flat)              # the sum itself goes back: no update in between
            steps += 1
        return steps

    def _sum_across_servers(self, value):
        from mpi4py import MPI
        total = np.array([value], np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
        return float(total[0])

    def _gather_sum(self, total, at=0):
        """Sum one push from every worker into ``total`` (arena elements ``at ..``); False when they all
        said stop. Pushes come through the codec (decoded, added in float32)."""
        from mpi4py import MPI
        link = self.codec.link(total, at)
        length, dtype = link.landing_length(total.size), link.landing_dtype
        if self._scratch is None or self._scratch[0].size != length or self._scratch[0].dtype != dtype:
            self._scratch = (np.empty(length, dtype), np.empty(length, dtype))
        world, workers = self.world, self._workers
        whole = slice(0, total.size)
        first = link.result_target(whole)

        def landing(worker):  # worker 0's push lands in the sum itself (plain), the others alternate
            return first if worker == 0 else self._scratch[worker % 2]

        def receive(worker):
            return world.Irecv(landing(worker), source=worker, tag=MPI.ANY_TAG)

        requests = {worker: receive(worker) for worker in range(min(workers, 3))}
        status, stops = MPI.Status(), 0
        for worker in range(workers):
            requests.pop(worker).Wait(status)
            if status.Get_tag() == TAG_PS_STOP:
                stops += 1
            elif worker == 0:
                link.settle(whole, first)
            else:
                link.add(whole, landing(worker))
            if worker > 0 and worker + 2 < workers:
                requests[worker + 2] = receive(worker + 2)  # into the buffer just added
        if stops not in (0, workers):
            raise FirecaffeError(f"parameter server {self.server_index}: {stops} of {workers} "
                                 "workers stopped while the others pushed a step")
        self._stopped = stops == workers
        return not self._stopped

    # --- cost ---------------------------------------------------------------------
    @classmethod
    def cost_coefficients(cls, n, p, servers=1, **options):
        if servers < 1:
            raise FirecaffeError(f"a parameter server needs at least 1 server, got {servers}")
        return 2.0 * max(p, servers), 2.0 * max(p / servers, 1.0) * n, (p - 1) * n / servers

    busiest_rank = cost_coefficients

    @classmethod
    def totals(cls, n, p, servers=1, **options):
        return 2.0 * p * servers, 2.0 * p * n, float((p - 1) * n)

    @classmethod
    def processes(cls, p, servers=1, **options):
        return p + servers

    @classmethod
    def bytes_per_worker(cls, n, p, **options):
        return 2.0 * n
