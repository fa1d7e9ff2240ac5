"""Convergence with compressed gradients: train one net with each --compress codec, same ranks, seeds and
iterations, and print the final test accuracy of each against uncompressed training (a Markdown table).

    python launch/compress_convergence.py                       # lenet_digits, 4 ranks, tree
    python launch/compress_convergence.py --ranks 4 --comm ring --codecs none,fp16,int8 --plot loss.png

Targets (issue 21): fp16 and bf16 within 0.3 points of none, int8 within 0.5, powersgd:4 within 1.
Each run is `mpiexec -n RANKS python -m firecaffe train SOLVER --compress CODEC ...`, bounded by --timeout.
"""
import argparse
import re
import subprocess
import sys
import tempfile
import time

TARGETS = {"fp16": 0.3, "bf16": 0.3, "int8": 0.5, "powersgd": 1.0}


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
    accuracy = [float(v) for v in re.findall(r"Test net output #0: accuracy = ([0-9.eE+-]+)", log)]
    losses = [(int(i), float(v)) for i, v in re.findall(r"Iteration (\d+) \([^)]*\), loss = ([0-9.eE+-]+)", log)]
    if not accuracy:
        raise SystemExit(f"--compress {codec}: no test accuracy in the log:\n{log[-3000:]}")
    return {"codec": codec, "accuracy": accuracy[-1], "losses": losses, "seconds": seconds}


def table(runs):
    base = runs[0]["accuracy"]
    lines = ["| --compress | final test accuracy | against none (points) | target (points) | met | final loss | wall s |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        delta = 100 * (run["accuracy"] - base)
        target = TARGETS.get(run["codec"].split(":")[0])
        met = "" if target is None else ("yes" if abs(delta) <= target + 1e-9 else "**no**")
        loss = run["losses"][-1][1] if run["losses"] else float("nan")
        lines.append(f"| {run['codec']} | {100 * run['accuracy']:.2f}% | {delta:+.2f} | "
                     f"{'' if target is None else f'within {target}'} | {met} | {loss:.4g} | {run['seconds']:.0f} |")
    return "\n".join(lines)


def plot(runs, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4))
    for run in runs:
        if run["losses"]:
            iterations, losses = zip(*run["losses"])
            axes.plot(iterations, losses, label=run["codec"])
    axes.set(xlabel="iteration", ylabel="training loss (smoothed)", yscale="log", title=title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", default="nets/lenet_digits/solver.prototxt")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--comm", default="tree")
    parser.add_argument("--codecs", default="none,fp16,bf16,int8,powersgd:4")
    parser.add_argument("--display", type=int, default=10, help="Loss every N iterations (the curves).")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds each run may take.")
    parser.add_argument("--plot", help="Write the loss curves of every codec (PNG) here.")
    parser.add_argument("extra", nargs="*", help="More `firecaffe train` flags (after --).")
    args = parser.parse_args()
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    if codecs[0] != "none":
        codecs.insert(0, "none")
    with tempfile.TemporaryDirectory(prefix="firecaffe-compress-") as folder:
        runs = []
        for codec in codecs:
            runs.append(train(args, codec, folder))
            print(f"  {codec}: accuracy {runs[-1]['accuracy']:.4f} in {runs[-1]['seconds']:.0f} s", file=sys.stderr,
                  flush=True)
    print(f"{args.solver}, {args.ranks} ranks, --comm {args.comm}{' ' + ' '.join(args.extra) if args.extra else ''}")
    print(table(runs))
    if args.plot:
        plot(runs, args.plot, f"{args.solver.split('/')[-2]}: {args.ranks} ranks, --comm {args.comm}")


if __name__ == "__main__":
    main()
