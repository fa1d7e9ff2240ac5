"""Print the table of docs/nets.md: size, FLOPs and bytes each strategy moves per iteration.

    python nets/_gen/table.py > /tmp/table.md

Parameters and FLOPs come from `firecaffe analyze` (firecaffe.insight.analysis on the
deploy net). Communication is for one reduction of the gradient of the train net,
G = 4 x its parameters bytes (GoogLeNet's auxiliary classifiers make its train net
larger than its deploy net; BatchNorm's statistics ride along in the arena), among p workers,
counted at the busiest rank (bytes it sends plus bytes it receives), which is what bounds the
time of a bandwidth-bound step. The counts are firecaffe.insight.bench.model.traffic's, the ones
`firecaffe analyze --workers` prints:

    tree  binomial reduce then broadcast (FireCaffe): the root takes ceil(log2 p)
          gradients in and sends ceil(log2 p) out          -> 2 ceil(log2 p) G
    ring  reduce-scatter then allgather: every rank sends and receives
          2 (p-1)/p G each way                              -> 4 (p-1)/p G
    ps    one parameter server: p gradients in, p weight copies out -> 2 p G
          (S servers, each holding 1/S of the weights, divide this by S)
    mpi / nccl: the library picks; for large arrays MPICH's Allreduce and NCCL
          move a ring's bytes.
"""
import os
import sys

from firecaffe.insight.analysis import analyze
from firecaffe.engine.net import Net
from firecaffe.insight.bench.model import traffic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402

NETS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ["alexnet", "caffenet", "nin", "googlenet", "vgg11", "vgg16", "vgg19", "resnet50",
         "squeezenet_v1.0", "squeezenet_v1.1", "firenet", "squeezenet_cifar"]
WORKERS = (32, 128)


def main(names):
    mb = 2**20
    head = ["net", "params", "MB", "GFLOPs/image", "train params"] + [f"{s} p={p} (MB)" for s in ("tree", "ring", "ps")
                                                     for p in WORKERS]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for name in names or ORDER:
        report = analyze(Net(os.path.join(NETS, name, "deploy.prototxt"), phase="TEST", shapes_only=True))
        train_params = zoo.build(name, True).params
        moved = {p: {s: traffic(s, 4 * train_params, p)[2] for s in ("tree", "ring", "ps")} for p in WORKERS}
        cells = [f"`{name}`", f"{report['params']:,d}", f"{report['param_bytes'] / mb:.1f}",
                 f"{report['flops_per_image'] / 1e9:.2f}", f"{train_params:,d}"]
        cells += [f"{moved[p][s] / mb:,.0f}" for s in ("tree", "ring", "ps") for p in WORKERS]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
