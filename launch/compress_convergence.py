"""Convergence with compressed gradients: train one net with each --compress codec, same ranks, seeds and
iterations, and print the final test accuracy of each against uncompressed training (a Markdown table).

    python launch/compress_convergence.py                       # lenet_digits, 4 ranks, tree
    python launch/compress_convergence.py --ranks 4 --comm ring --codecs none,fp16,int8 --plot loss.png
    python launch/compress_convergence.py --net squeezenet-digits --logs DIR    # keep each run's log
    python launch/compress_convergence.py --from DIR [--plot loss.png]         # the table again, from logs
    python launch/compress_convergence.py --from DIR DIR2 ...   # one folder per seed (-- --seed N): across seeds
    python launch/compress_convergence.py --net squeezenet-cifar --data DIR --iterations 1500 --logs DIR

--net squeezenet-digits trains a SqueezeNet (`firecaffe design squeezenet` scaled to the shipped
8x8 digits: 4 Fire modules, 62,954 parameters) with lenet_digits' data and solver, base_lr 0.02,
1000 iterations: Fire modules, concatenations and 1x1 squeezes, as squeezenet_cifar has.
--net squeezenet-cifar trains nets/squeezenet_cifar itself on CIFAR-10 (--data: the folder
nets/squeezenet_cifar/make_data.py wrote), its solver shortened to --iterations (the poly schedule
reaching 0 there), tested on all 10,000 test images three times: at a third, two thirds and the end.

Targets (issue 21): fp16 and bf16 within 0.3 points of none, int8 within 0.5, powersgd:4 within 1.
Each run is `mpiexec -n RANKS python -m firecaffe train SOLVER --compress CODEC ...`, bounded by --timeout.
"""
import argparse
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {"fp16": 0.3, "bf16": 0.3, "int8": 0.5, "powersgd:4": 1.0}


SQUEEZENET_DIGITS = ["squeezenet", "--base-e", "64", "--incr-e", "64", "--modules", "4", "--pool-after", "3",
                     "--conv1", "64,3,1,1", "--sr", "0.25", "--classes", "10", "--input-size", "8",
                     "--dataset", "cifar10"]
WALL = "compress_convergence.py: "


def squeezenet_digits(folder, fillers=None):
    """Write the SqueezeNet-digits net and solver into ``folder``; the solver's path. ``fillers``
    "msra": every xavier weight filler the design writes becomes msra (squeezenet_cifar's recipe)."""
    folder = pathlib.Path(folder)
    subprocess.run([sys.executable, "-m", "firecaffe", "design", *SQUEEZENET_DIGITS, "--out", str(folder / "design")],
                   check=True, capture_output=True, text=True, timeout=300)
    net = (folder / "design/train_val.prototxt").read_text()
    for old, new in (("data/cifar10_train_h5.txt", "nets/lenet_digits/train.txt"),
                     ("data/cifar10_test_h5.txt", "nets/lenet_digits/test.txt"),
                     ("batch_size: 32", "batch_size: 64"), ("batch_size: 100", "batch_size: 120")):
        assert old in net, f"design squeezenet no longer writes {old!r}"
        net = net.replace(old, new)
    if fillers == "msra":
        assert 'type: "xavier"' in net, "design squeezenet no longer writes xavier fillers"
        net = net.replace('type: "xavier"', 'type: "msra"')
    (folder / "train_val.prototxt").write_text(net)
    solver = pathlib.Path("nets/lenet_digits/solver.prototxt").read_text()
    solver = re.sub(r'(?m)^net: .*$', f'net: "{folder / "train_val.prototxt"}"', solver)
    solver = re.sub(r"(?m)^base_lr: .*$", "base_lr: 0.02", solver)
    solver = re.sub(r"(?m)^max_iter: .*$", "max_iter: 1000", solver)
    (folder / "solver.prototxt").write_text(solver)
    return str(folder / "solver.prototxt")


def squeezenet_cifar(folder, data, iterations):
    """Write squeezenet_cifar's net (reading ``data``) and its solver cut to ``iterations`` into ``folder``."""
    folder, data = pathlib.Path(folder), pathlib.Path(data).resolve()
    for name in ("cifar10_train_h5.txt", "cifar10_test_h5.txt"):
        if not (data / name).is_file():
            raise SystemExit(f"{data}: no {name}; write it with nets/squeezenet_cifar/make_data.py --out {data}")
    net = pathlib.Path("nets/squeezenet_cifar/train_val.prototxt").read_text()
    for name in ("cifar10_train_h5.txt", "cifar10_test_h5.txt"):
        assert f"data/{name}" in net, f"squeezenet_cifar no longer reads data/{name}"
        net = net.replace(f'"data/{name}"', f'"{data / name}"')
    (folder / "train_val.prototxt").write_text(net)
    solver = pathlib.Path("nets/squeezenet_cifar/solver.prototxt").read_text()
    for key, value in (("net", f'"{folder / "train_val.prototxt"}"'), ("max_iter", iterations),
                       ("test_interval", max(1, iterations // 3)), ("snapshot", 0)):
        solver, count = re.subn(rf"(?m)^{key}: .*$", f"{key}: {value}", solver)
        assert count == 1, f"squeezenet_cifar's solver has no {key}"
    (folder / "solver.prototxt").write_text(solver)
    return str(folder / "solver.prototxt")


def parse(codec, log, seconds):
    found = re.findall(r"Test net output #\d+: (accuracy|accuracy_top1) = ([0-9.eE+-]+)", log)
    losses = [(int(i), float(v)) for i, v in re.findall(r"Iteration (\d+) \([^)]*\), loss = ([0-9.eE+-]+)", log)]
    if not found:
        raise SystemExit(f"--compress {codec}: no test accuracy in the log:\n{log[-3000:]}")
    tests = [float(value) for _, value in found]
    return {"codec": codec, "accuracy": tests[-1], "last3": sum(tests[-3:]) / len(tests[-3:]), "losses": losses,
            "seconds": seconds}


def train(args, codec, folder):
    command = ["mpiexec", "-n", str(args.ranks), sys.executable, "-m", "firecaffe", "train", args.solver,
               "--comm", args.comm, "--compress", codec, "--no-progress", "--display", str(args.display),
               "--snapshot-prefix", f"{folder}/{codec.replace(':', '_')}", *args.extra]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    seconds = time.perf_counter() - began
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"--compress {codec} failed ({done.returncode}):\n{log[-3000:]}")
    if args.logs:
        pathlib.Path(args.logs).mkdir(parents=True, exist_ok=True)
        header = json.dumps({"command": " ".join(command[3:]), "ranks": args.ranks, "comm": args.comm,
                             "solver": (args.net or args.solver) + (f" ({args.fillers} fillers)" if args.fillers else ""),
                             "extra": args.extra,
                             "wall_s": round(seconds, 1)})
        (pathlib.Path(args.logs) / f"{codec.replace(':', '_')}.log").write_text(f"{WALL}{header}\n{log}")
    return parse(codec, log, seconds)


def from_logs(folder):
    """The runs kept by --logs in ``folder`` (none first), and their common header."""
    runs, header = [], {}
    for log in sorted(pathlib.Path(folder).glob("*.log"), key=lambda p: (p.stem != "none", p.stem)):
        text = log.read_text()
        first, _, rest = text.partition("\n")
        header = json.loads(first[len(WALL):])
        runs.append(parse(log.stem.replace("_", ":"), rest, header["wall_s"]))
    if not runs or runs[0]["codec"] != "none":
        raise SystemExit(f"{folder}: no none.log among the kept runs")
    return runs, header


def table(runs):
    """Final test accuracy against none's (the issue's targets), and the mean of the last 3 test passes
    beside it: on a small test set one pass moves by an image or two from one test to the next."""
    base, base3 = runs[0]["accuracy"], runs[0].get("last3")
    lines = ["| --compress | final test accuracy | against none (points) | target (points) | met | "
             "last 3 tests, mean (against none) | final loss | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        delta = 100 * (run["accuracy"] - base)
        target = TARGETS.get(run["codec"])
        met = "" if target is None else ("yes" if abs(delta) <= target + 1e-9 else "**no**")
        loss = run["losses"][-1][1] if run["losses"] else float("nan")
        last3 = f"{100 * run['last3']:.2f}% ({100 * (run['last3'] - base3):+.2f})" if base3 is not None else "-"
        lines.append(f"| {run['codec']} | {100 * run['accuracy']:.2f}% | {delta:+.2f} | "
                     f"{'' if target is None else f'within {target}'} | {met} | {last3} | {loss:.4g} | "
                     f"{run['seconds']:.0f} |")
    return "\n".join(lines)


def seed_of(header):
    """The --seed a kept run was given (its header's extra flags), else the solver's ('solver')."""
    extra = header.get("extra") or []
    return extra[extra.index("--seed") + 1] if "--seed" in extra[:-1] else "solver"


def seeds_table(folders):
    """Across runs that differ only in their seed (one folder of kept logs each): per codec the final
    accuracy at each seed, and its difference from none's at the same seed (mean, and the range), the
    issue's bound beside them; then none's own spread over the seeds, which says how far a codec's
    difference can be read as the codec's."""
    per_seed = []
    for folder in folders:
        runs, header = from_logs(folder)
        per_seed.append((seed_of(header), {run["codec"]: run["accuracy"] for run in runs}))
    codecs = list(dict.fromkeys(codec for _, accuracies in per_seed for codec in accuracies))
    seeds = ", ".join(seed for seed, _ in per_seed)
    lines = [f"| --compress | final test accuracy at seeds {seeds} | mean | against none at the same seed "
             "(points) | mean difference | median difference | target (points) | seeds within |",
             "|---|---|---|---|---|---|---|---|"]
    for codec in codecs:
        values = [accuracies.get(codec) for _, accuracies in per_seed]
        deltas = [100 * (v - accuracies["none"]) for v, (_, accuracies) in zip(values, per_seed) if v is not None]
        shown = [v for v in values if v is not None]
        mean = 100 * sum(shown) / len(shown)
        target = TARGETS.get(codec)
        within = "" if target is None else f"{sum(abs(d) <= target + 1e-9 for d in deltas)} of {len(deltas)}"
        lines.append(f"| {codec} | {', '.join(f'{100 * v:.2f}%' if v is not None else '-' for v in values)} | "
                     f"{mean:.2f}% | {', '.join(f'{d:+.2f}' for d in deltas)} | "
                     f"{sum(deltas) / len(deltas):+.2f} | {statistics.median(deltas):+.2f} | "
                     f"{'' if target is None else f'within {target}'} | {within} |")
    none = [100 * accuracies["none"] for _, accuracies in per_seed]
    lines.append("")
    lines.append(f"none alone over the {len(none)} seeds: {min(none):.2f}% to {max(none):.2f}% "
                 f"(range {max(none) - min(none):.2f} points)")
    return "\n".join(lines)


def plot(runs, path, title):
    """The loss curves, with what they draw in the PNG's data chunk (regen_docs.py compares it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from firecaffe.insight.bench.plot import DATA_KEY
    figure, axes = plt.subplots(figsize=(7, 4))
    drawn = {"title": title, "curves": []}
    for run in runs:
        if run["losses"]:
            iterations, losses = zip(*run["losses"])
            axes.plot(iterations, losses, label=run["codec"])
            drawn["curves"].append({"codec": run["codec"], "iterations": list(iterations),
                                    "loss": [float(f"{v:.4g}") for v in losses]})
    axes.set(xlabel="iteration", ylabel="training loss (smoothed)", yscale="log", title=title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={DATA_KEY: json.dumps(drawn, sort_keys=True)})
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", default="nets/lenet_digits/solver.prototxt")
    parser.add_argument("--net", choices=["squeezenet-digits", "squeezenet-cifar"],
                        help="Train this net instead of --solver's.")
    parser.add_argument("--data", help="squeezenet-cifar: the folder of make_data.py's HDF5 files")
    parser.add_argument("--iterations", type=int, default=1500, help="squeezenet-cifar: iterations per run")
    parser.add_argument("--fillers", choices=["msra"],
                        help="squeezenet-digits: msra weight fillers instead of the design's xavier")
    parser.add_argument("--logs", help="Keep each run's log (and wall time) in this folder.")
    parser.add_argument("--from", dest="source", nargs="+",
                        help="Print the table (and --plot) from the logs kept here; several folders (one per "
                             "seed): the table across seeds.")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--comm", default="tree")
    parser.add_argument("--codecs", default="none,fp16,bf16,int8,powersgd:4")
    parser.add_argument("--display", type=int, default=10, help="Loss every N iterations (the curves).")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds each run may take.")
    parser.add_argument("--plot", help="Write the loss curves of every codec (PNG) here.")
    parser.add_argument("extra", nargs="*", help="More `firecaffe train` flags (after --).")
    args = parser.parse_args(argv)
    if args.net == "squeezenet-cifar" and not args.source and not args.data:
        parser.error("--net squeezenet-cifar needs --data (the folder make_data.py wrote)")
    if args.source and len(args.source) > 1:
        header = from_logs(args.source[0])[1]
        print(f"{header['solver']}, {header['ranks']} ranks, --comm {header['comm']}, {len(args.source)} seeds")
        print(seeds_table(args.source))
        return
    if args.source:
        runs, header = from_logs(args.source[0])
        name, ranks, comm, extra = header["solver"], header["ranks"], header["comm"], header.get("extra")
    else:
        runs, name, ranks, comm, extra = run_all(args), args.net or args.solver, args.ranks, args.comm, args.extra
        name += f" ({args.fillers} fillers)" if args.fillers else ""
    extra = f" {' '.join(extra)}" if extra else ""
    print(f"{name}, {ranks} ranks, --comm {comm}{extra}")
    print(table(runs))
    if args.plot:
        label = name if args.net or "/" not in name else name.split("/")[-2]
        plot(runs, args.plot, f"{label}: {ranks} ranks, --comm {comm}")


def run_all(args):
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    if codecs[0] != "none":
        codecs.insert(0, "none")
    with tempfile.TemporaryDirectory(prefix="firecaffe-compress-") as folder:
        if args.net == "squeezenet-cifar":
            args.solver = squeezenet_cifar(folder, args.data, args.iterations)
        elif args.net:
            args.solver = squeezenet_digits(folder, args.fillers)
        runs = []
        for codec in codecs:
            runs.append(train(args, codec, folder))
            print(f"  {codec}: accuracy {runs[-1]['accuracy']:.4f} in {runs[-1]['seconds']:.0f} s", file=sys.stderr,
                  flush=True)
    return runs


if __name__ == "__main__":
    main()
