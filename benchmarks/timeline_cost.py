"""What `--timeline` costs: one forward + backward of a net of many tiny layers
(where per-layer overhead shows most), with the recorder off and on, and, with
``--against ROOT``, against another checkout (one without the hooks), the two
trees run alternately in fresh processes.

    python benchmarks/timeline_cost.py [--layers 200] [--repeat 400] [--rounds 5] [--against /work/main]

It also times, in the same process and interleaved, the hooked forward_backward
with the recorder off against the same layer loop without the check.

Prints the median microseconds per forward+backward; read the ratios, not the
absolute numbers (a shared machine is noisy).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def net_text(layers):
    lines = ['name: "tiny" force_backward: true',
             'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }',
             'layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 4 } } }']
    bottom = "x"
    for i in range(layers):
        lines.append(f'layer {{ name: "s{i}" type: "Scale" bottom: "{bottom}" top: "s{i}" '
                     f'scale_param {{ axis: 1 num_axes: 1 }} }}')
        bottom = f"s{i}"
    lines.append(f'layer {{ name: "loss" type: "EuclideanLoss" bottom: "{bottom}" bottom: "y" top: "loss" }}')
    return "\n".join(lines)


def measure(layers, repeat, mode):
    """Median seconds of one forward_backward; mode 'off' or 'on' (a recorder attached)."""
    import tempfile
    import firecaffe                                  # noqa: F401
    from firecaffe.engine.net import Net
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(net_text(layers))
    net = Net(f.name, phase="TRAIN")
    os.unlink(f.name)
    if mode == "on":
        from firecaffe.run.timeline import Timeline
        recorder = Timeline(os.devnull, iters=1)
        recorder.watch_net(net)
    times, bare = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        net.forward_backward()
        times.append(time.perf_counter() - start)
        if mode == "on":
            recorder.events.clear()
        start = time.perf_counter()
        bare_forward_backward(net)
        bare.append(time.perf_counter() - start)
    return statistics.median(times[repeat // 10:]), statistics.median(bare[repeat // 10:])


def bare_forward_backward(net):
    """Net.forward_backward as it was before the hooks: the same calls, no check."""
    for i in range(len(net.layers)):
        net.forward_layer(i)
    for i in range(len(net.layers) - 1, -1, -1):
        net.backward_layer(i)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="another checkout (e.g. one without the hooks)")
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(*measure(args.layers, args.repeat, args.child))
        return
    runs = [("this tree, off", ROOT, "off"), ("this tree, on", ROOT, "on")]
    if args.against:
        runs.insert(0, (f"{args.against} (no hooks)", args.against, "off"))
    results = {name: [] for name, _, _ in runs}
    same_process = []          # (hooked, off) / (bare loop) in one process, interleaved
    for _ in range(args.rounds):
        for name, root, mode in runs:
            env = dict(os.environ, PYTHONPATH=root, FIRECAFFE_NO_PROGRESS="1")
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--layers", str(args.layers),
                                  "--repeat", str(args.repeat)], env=env, capture_output=True, text=True,
                                 check=True, cwd=root)
            hooked, bare = map(float, out.stdout.split()[-2:])
            results[name].append(hooked)
            if root == ROOT and mode == "off":
                same_process.append(hooked / bare)
    base = statistics.median(results[runs[0][0]])
    print(f"forward+backward of {args.layers} Scale layers, median of {args.rounds} rounds:")
    for name, values in results.items():
        value = statistics.median(values)
        best = min(values) / min(results[runs[0][0]])
        print(f"  {name:40s} {value * 1e6:9.1f} us   x{value / base:.3f}   best round x{best:.3f}   "
              f"(rounds: {', '.join(f'{v * 1e6:.0f}' for v in values)})")
    print(f"  in one process, off / the same loop without the check, interleaved: "
          f"x{statistics.median(same_process):.4f} (rounds: {', '.join(f'{r:.3f}' for r in same_process)})")


if __name__ == "__main__":
    main()
