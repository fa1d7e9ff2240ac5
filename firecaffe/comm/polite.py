"""A communicator whose waits sleep instead of spinning, for the bucket reducer's thread.

MPICH's blocking calls (Wait, Recv, Sendrecv, Allreduce) busy-poll the network
until the message is done. On the main thread that costs nothing: nothing else
would run. On the bucket reducer's thread it does: while a bucket crosses a slow
link the thread spins on a core that backward needs. A blocking Recv waiting
1 s burnt 0.77 s of CPU; on 4 emulated nodes at 100 Mb/s this wrapper halved
the bucket thread's CPU per iteration (50 -> 26 ms) and shortened iterations
against spinning in every interleaved run (docs/scaling.md, "Overlap on links").

``PoliteComm(comm)`` wraps a communicator: the calls the strategies block in
are rebuilt from nonblocking ones whose requests are finished by ``Test`` with
a sleep between tries (growing from 50 us to 1 ms, so a message that is nearly
done costs little latency and one in flight for long costs ~1000 wake-ups a
second). Every other attribute is the wrapped communicator's. Results are the
same as the blocking calls': only who waits, and how, changes.

The strategies' own waits use it too when they are built with ``wait="sleep"``
(``FIRECAFFE_WAIT=sleep``, read by core/options.py): where more ranks than cores
share a machine, as on an emulated cluster, a rank spinning while its message
crosses a link takes the core from the rank whose data just came in.
"""
import functools
import time

MIN_SLEEP_S = 50e-6
MAX_SLEEP_S = 1e-3


@functools.cache
def _request_class():
    from mpi4py import MPI

    class PoliteRequest(MPI.Request):
        """An mpi4py request whose ``Wait`` tests and sleeps instead of spinning in MPI."""

        def Wait(self, status=None):  # noqa: N802 - mpi4py's name
            pause = MIN_SLEEP_S
            while not self.Test(status):
                time.sleep(pause)
                pause = min(2 * pause, MAX_SLEEP_S)
            return True

    return PoliteRequest


def polite(request):
    """``request`` as a PoliteRequest (same MPI handle)."""
    return _request_class()(request)


def waitany(requests):
    """``MPI.Request.Waitany`` that tests and sleeps between tries: the index of a completed request."""
    from mpi4py import MPI
    pause = MIN_SLEEP_S
    while True:
        index, done = MPI.Request.Testany(requests)
        if done:
            return index
        time.sleep(pause)
        pause = min(2 * pause, MAX_SLEEP_S)


class PoliteComm:
    """Wraps an mpi4py communicator; its blocking point-to-point and Allreduce calls sleep while waiting."""

    def __init__(self, comm):
        self.raw = comm             # the mpi4py communicator underneath

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def Isend(self, buf, dest, tag=0):  # noqa: N802 - mpi4py's names below
        return polite(self.raw.Isend(buf, dest=dest, tag=tag))

    def Irecv(self, buf, source=-1, tag=-1):
        return polite(self.raw.Irecv(buf, source=source, tag=tag))

    def Send(self, buf, dest, tag=0):
        self.Isend(buf, dest, tag).Wait()

    def Recv(self, buf, source=-1, tag=-1, status=None):
        self.Irecv(buf, source, tag).Wait(status)

    def Sendrecv(self, sendbuf, dest, sendtag=0, recvbuf=None, source=-1, recvtag=-1, status=None):
        receive = self.Irecv(recvbuf, source, recvtag)
        send = self.Isend(sendbuf, dest, sendtag)
        receive.Wait(status)
        send.Wait()

    def Allreduce(self, sendbuf, recvbuf, op=None):
        from mpi4py import MPI
        polite(self.raw.Iallreduce(sendbuf, recvbuf, op=MPI.SUM if op is None else op)).Wait()
