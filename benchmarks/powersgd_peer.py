"""PowerSGD against PyTorch's DDP PowerSGD hook on the same gradients: bytes sent and the error of the sum.

Two ranks (``mpiexec -n 2``) hand both implementations the same gradients, step after step: for each
weight of a net (its deploy prototxt's shapes), a rank-4 part shared by the ranks that drifts from
step to step, plus noise of each rank's own (--noise against entries of about 1) (real gradients are close to low rank; pure noise would
make any rank-r method look bad). firecaffe's codec (``--compress powersgd:R``, summing its factors
with MPI's Allreduce) and torch's ``powerSGD_hook`` (gloo, DDP, ``matrix_approximation_rank=R``, warm
start and error feedback as ours; its other settings at their defaults) each report the bytes their
allreduces carried and the relative error ``|approximate - exact| / |exact|`` of the summed (torch:
averaged) gradient, both counted from the first compressed step (steps 0 and 1 run uncompressed in
both: torch's ``start_powerSGD_iter`` cannot be less than 2 with warm start). PyTorch is a peer here, never a dependency.

    mpiexec -n 2 python benchmarks/powersgd_peer.py --net nets/squeezenet_cifar/deploy.prototxt
    mpiexec -n 2 python benchmarks/powersgd_peer.py --net nets/alexnet/deploy.prototxt --steps 4 --json out.json
"""
import argparse
import json
import os
import sys
import time

import numpy as np

SIGNAL = 4              # the rank of the part the ranks share
FIRST = 2               # the first compressed step (torch's start_powerSGD_iter cannot be lower with warm start)


def gradient_shapes(deploy):
    from firecaffe.engine.net import Net
    from firecaffe.insight.analysis import analyze
    from firecaffe.insight.bench.codecs import shapes_of
    return shapes_of(analyze(Net(deploy, phase="TEST", shapes_only=True))["layers"])


def gradients(shapes, step, rank, noise):
    """This rank's gradient at ``step``: per weight a rank-4 part shared by the ranks (drifting from step to
    step), plus its own noise; a vector is the same with one column."""
    out = []
    for index, shape in enumerate(shapes):
        count = int(np.prod(shape))
        rows = shape[0]
        cols = count // rows
        shared = np.random.default_rng([1, index])
        u = shared.standard_normal((rows, SIGNAL)).astype(np.float32)
        v = shared.standard_normal((cols, SIGNAL)).astype(np.float32) / np.float32(np.sqrt(SIGNAL))
        drift = np.random.default_rng([2, index, step]).standard_normal(SIGNAL).astype(np.float32) * 0.2 + 1.0
        own = np.random.default_rng([3, index, step, rank]).standard_normal(count).astype(np.float32)
        g = ((u * drift) @ v.T).ravel() + np.float32(noise) * own          # entries: about 1, plus the noise
        out.append(g.astype(np.float32))
    return out


def ours(shapes, steps, rank_r, comm, noise):
    from mpi4py import MPI
    from firecaffe.comm.compress import layout_from_shapes, make_codec
    codec = make_codec(f"powersgd:{rank_r}", start=FIRST)
    codec.bind(layout_from_shapes(shapes))
    sent = [0]

    def allreduce(buf):
        sent[0] += buf.nbytes
        comm.Allreduce(MPI.IN_PLACE, buf)

    errors, per_step, seconds = [], [], 0.0
    for step in range(steps):
        buf = np.concatenate(gradients(shapes, step, comm.rank, noise))
        exact = buf.astype(np.float64)
        comm.Allreduce(MPI.IN_PLACE, exact)
        codec.begin(step)
        before, began = sent[0], time.perf_counter()
        codec.reduce(buf, 0, allreduce, comm.size)
        seconds += time.perf_counter() - began if step >= FIRST else 0.0
        if step >= FIRST:
            errors.append(float(np.linalg.norm(buf - exact) / np.linalg.norm(exact)))
            per_step.append(sent[0] - before)
    return {"bytes_per_step": int(np.mean(per_step)), "errors": errors, "codec_s_per_step": seconds / (steps - FIRST)}


def theirs(shapes, steps, rank_r, comm, noise):
    from mpi4py import MPI
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd
    import socket
    port = None
    if comm.rank == 0:
        with socket.socket() as probe:           # a free port for gloo's rendezvous
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(comm.bcast(port)))
    dist.init_process_group("gloo", rank=comm.rank, world_size=comm.size)
    torch.set_num_threads(1)

    class Weights(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(shape)) for shape in shapes])

        def forward(self, grads):            # d/dw of sum(w * g) is g: backward hands DDP these gradients
            return sum((w * g).sum() for w, g in zip(self.w, grads))

    # one bucket: the hook of a second bucket issues its allreduces while the first one's callbacks issue
    # theirs, in an order gloo does not keep the same on both ranks (a collective mismatch)
    dist._DEFAULT_FIRST_BUCKET_BYTES = 1 << 40
    model = torch.nn.parallel.DistributedDataParallel(Weights(), bucket_cap_mb=1 << 20)
    state = powersgd.PowerSGDState(process_group=None, matrix_approximation_rank=rank_r, start_powerSGD_iter=FIRST,
                                   use_error_feedback=True, warm_start=True)
    model.register_comm_hook(state, powersgd.powerSGD_hook)
    sent, counting = [0], [False]
    plain = dist.all_reduce

    def counted(tensor, *args, **kwargs):
        if counting[0]:
            sent[0] += tensor.numel() * tensor.element_size()
        return plain(tensor, *args, **kwargs)

    dist.all_reduce = counted                 # the hook calls dist.all_reduce: count what it sends
    errors, per_step, seconds = [], [], 0.0
    try:
        for step in range(steps):
            grads = gradients(shapes, step, comm.rank, noise)
            exact = np.concatenate(grads).astype(np.float64)
            comm.Allreduce(MPI.IN_PLACE, exact)
            model.zero_grad(set_to_none=True)
            loss = model([torch.from_numpy(g.reshape(p.shape)) for p, g in zip(model.module.w, grads)])
            counting[0], before, began = True, sent[0], time.perf_counter()
            loss.backward()               # DDP: the hook runs on the buckets, then the grads are the average
            counting[0] = False
            seconds += time.perf_counter() - began if step >= FIRST else 0.0
            got = np.concatenate([p.grad.numpy().ravel() for p in model.module.w]).astype(np.float64)
            if step >= FIRST:
                mean = exact / comm.size
                errors.append(float(np.linalg.norm(got - mean) / np.linalg.norm(mean)))
                per_step.append(sent[0] - before)
    finally:
        dist.all_reduce = plain
        dist.destroy_process_group()
    return {"bytes_per_step": int(np.mean(per_step)), "errors": errors, "backward_s_per_step": seconds / (steps - FIRST)}


def table(result):
    """The figures of one run (``--json``'s) as Markdown."""
    total = result["float32_bytes"]
    lines = [f"{result['net']}: {result['parameters']} parameters, {total / 2**20:.2f} MiB float32, "
             f"powersgd:{result['rank']}, 2 ranks, {result['steps'] - FIRST} compressed steps "
             f"({result['date']}, load {result['load']:.1f})", "",
             "| | bytes per step | of float32 | relative error of the sum, first / last / mean |",
             "|---|---:|---:|---|"]
    for name, run in (("firecaffe", result["firecaffe"]), ("PyTorch DDP powerSGD_hook", result["torch"])):
        if "skipped" in run:
            lines.append(f"| {name} | {run['skipped']} | | |")
            continue
        e = run["errors"]
        lines.append(f"| {name} | {run['bytes_per_step']:,} | {run['bytes_per_step'] / total:.4f} | "
                     f"{e[0]:.4f} / {e[-1]:.4f} / {np.mean(e):.4f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="nets/squeezenet_cifar/deploy.prototxt")
    parser.add_argument("--rank", type=int, default=4, help="PowerSGD's rank r.")
    parser.add_argument("--steps", type=int, default=8, help="Steps, the first one uncompressed.")
    parser.add_argument("--noise", type=float, default=0.3, help="Each rank's own noise against the shared part.")
    parser.add_argument("--json", help="Write the figures here.")
    parser.add_argument("--from", dest="source", nargs="+", help="Print the tables of these --json files.")
    args = parser.parse_args(argv)
    if args.source:
        print("\n\n".join(table(json.load(open(path))) for path in args.source))
        return
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if comm.size != 2:
        raise SystemExit("run it on 2 ranks: mpiexec -n 2 python benchmarks/powersgd_peer.py")
    shapes = gradient_shapes(args.net)
    mine = ours(shapes, args.steps, args.rank, comm, args.noise)
    try:
        peer = theirs(shapes, args.steps, args.rank, comm, args.noise)
    except ImportError as exc:
        peer = {"skipped": f"PyTorch not installed ({exc})"}
    if comm.rank == 0:
        report(args, shapes, mine, peer)
    # gloo's threads may abort the process while the interpreter tears down (seen once in CI: "terminate
    # called without an active exception" after the table was printed): finish MPI and leave at once
    sys.stdout.flush()
    comm.Barrier()
    MPI.Finalize()
    os._exit(0)


def report(args, shapes, mine, peer):
    total = 4 * sum(int(np.prod(shape)) for shape in shapes)
    result = {"net": args.net, "rank": args.rank, "steps": args.steps, "noise": args.noise, "float32_bytes": total,
              "firecaffe": mine, "torch": peer, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load": os.getloadavg()[0]}
    result["parameters"] = len(shapes)
    print(table(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
