#!/usr/bin/env python3
"""The generated files of docs/scaling, made again from the committed raw data with the current code.

usage: launch/regen_docs.py [--check]

Each file below comes from one command (`bench report`, `bench fit`, launch/cluster_floors.py,
launch/cluster_nets.py, launch/strong_table.py) run on the records and logs committed next to it.
Without --check the files are written; with --check nothing is written, and the files whose text
differs from what the current code gives are listed (exit 1): a change to a formula or a fit that
moves a published number fails tests/bench/test_docs_regen.py until this script is run and the
text of docs/scaling.md that quotes the number is brought in line. The numbers quoted in the prose of
docs/scaling.md and README.md's scaling row are blocks too (launch/doc_prose.py, doc_prose_cluster.py);
tests/bench/test_docs_regen.py fails on a figure of scaling.md outside a block or a region marked
``<!-- archived COMMIT -->``. Figures (FIGURES) are drawn again
from the same records: each PNG carries what it draws (points, error bars, model lines, as JSON in a
text chunk), and a figure differs when that data does, or, drawn by the same matplotlib version
(recorded in the PNG), when a pixel does.
Folders whose numbers come from older code are archived, not regenerated: see ARCHIVED below.
"""
import importlib.util
import inspect
import io
import json
import math
import os
import shutil
import sys
import tempfile
from contextlib import nullcontext, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from firecaffe.insight.bench.report import write_report  # noqa: E402
from launch.doc_blocks import BLOCKS, fill  # noqa: E402
from launch.doc_prose import PROSE  # noqa: E402
from launch.doc_prose_cluster import PROSE_CLUSTER  # noqa: E402
from launch.doc_figures import figure_differs  # noqa: E402

BLOCKS.update(PROSE, **PROSE_CLUSTER)     # the prose's figures, besides the tables
C = "docs/scaling/cluster"
DOC = "docs/scaling.md"             # its tables between <!-- regen_docs.py NAME --> marks: launch/doc_blocks.py
# the documents with marked blocks (README: its scaling row; compression: the sparse forward's figures;
# performance: issue 25's targets from the logs)
DOCS = (DOC, "README.md", "docs/compression.md", "docs/performance.md")
# the contended model on the 2 cores the 2-core sweep ran on (bench's default there); links: off
SWEEP_FIT = ["bench", "fit", "docs/scaling/sweep.json", "--per-strategy", "--cores", "2"]
SQUEEZE = "nets/squeezenet_cifar/deploy.prototxt"

# path: (kind, arguments); kinds: report (bench report's Markdown), cli (a firecaffe command's
# stdout), profile (bench fit --out's JSON), script (a launch/ script's stdout)
GENERATED = {
    "docs/scaling/README.md": ("report", ("docs/scaling", 2, True)),
    "docs/scaling/fit.txt": ("cli", SWEEP_FIT + ["--min-bytes", "1M"]),
    "docs/scaling/fit_16M.txt": ("cli", SWEEP_FIT + ["--min-bytes", "16M"]),
    # --force: on 2 shared cores some points miss by more than 30% (docs/scaling.md says why)
    "docs/scaling/profile.json": ("profile", SWEEP_FIT + ["--min-bytes", "1M", "--force"]),
    f"{C}/100M/README.md": ("report", (f"{C}/100M", 0, True)),
    f"{C}/100M/fit.txt": ("cli", ["bench", "fit", f"{C}/100M", "--per-strategy", "--cores", "0"]),
    # --force: alpha fits to 0 over these sizes (16-64 MiB on 100 Mb/s links: latency is noise)
    f"{C}/100M/profile.json": ("profile", ["bench", "fit", f"{C}/100M", "--cores", "0", "--force"]),
    f"{C}/100M/floors.md": ("script", ["launch/cluster_floors.py", f"{C}/100M/100M.json", "100M"]),
    f"{C}/100M/floors_64M.md": ("script", ["launch/cluster_floors.py", f"{C}/100M/64M_100M.json", "100M"]),
    f"{C}/100M/floors_odd.md": ("script", ["launch/cluster_floors.py", f"{C}/100M/odd_100M.json", "100M"]),
    f"{C}/1G/README.md": ("report", (f"{C}/1G", 0, True)),
    f"{C}/1G/fit.txt": ("cli", ["bench", "fit", f"{C}/1G", "--per-strategy", "--cores", "0"]),
    f"{C}/1G/floors.md": ("script", ["launch/cluster_floors.py", f"{C}/1G/1G.json", "1G"]),
    # flat strategies on 2-rank nodes: their formulas do not know which messages stay in a node
    f"{C}/hier-8x2/README.md": ("report", (f"{C}/hier-8x2", 0, False)),
    f"{C}/nets/table.md": ("script", ["launch/cluster_nets.py", f"{C}/nets/nets_1G.json", f"{C}/1G", "{png}"]),
    f"{C}/strong-reno/ring/table.md": ("script", ["launch/strong_table.py", f"{C}/strong-reno/ring", SQUEEZE,
                                                  f"{C}/100M/profile.json", "ring", "2"]),
    f"{C}/strong-reno/tree/table.md": ("script", ["launch/strong_table.py", f"{C}/strong-reno/tree", SQUEEZE,
                                                  f"{C}/100M/profile.json", "tree", "2"]),
    # --force: alpha and gamma fit to 0 over 4-64 MiB at 1 Gb/s; --comm auto's check below chooses with it
    f"{C}/1G/profile.json": ("profile", ["bench", "fit", f"{C}/1G", "--cores", "0", "--force"]),
    # compressed gradients (bench comm --compress) on 2-8 nodes at 100 Mb/s: delta per codec, alpha-beta-gamma
    # from the uncompressed points of the same run; --force: alpha fits to 0 at these sizes
    # --compute-cores 2: the codecs' encoding is each rank's own CPU work, and 8 ranks shared 2 cores
    f"{C}/compress-100M/fit.txt": ("cli", ["bench", "fit", f"{C}/compress-100M", "--cores", "0",
                                           "--compute-cores", "2"]),
    f"{C}/compress-100M/profile.json": ("profile", ["bench", "fit", f"{C}/compress-100M", "--cores", "0",
                                                    "--compute-cores", "2", "--force"]),
    # PowerSGD again after its residual went in place (a2d29b3), with an uncompressed run of the same day
    f"{C}/compress-psgd-100M/fit.txt": ("cli", ["bench", "fit", f"{C}/compress-psgd-100M", "--cores", "0",
                                                "--compute-cores", "2"]),
    f"{C}/compress-psgd-100M/profile.json": ("profile", ["bench", "fit", f"{C}/compress-psgd-100M", "--cores", "0",
                                                         "--compute-cores", "2", "--force"]),
    # the same PowerSGD sweep on the quiet AMD EPYC machine (2026-12-07 16:10)
    f"{C}/compress-psgd-amd-100M/fit.txt": ("cli", ["bench", "fit", f"{C}/compress-psgd-amd-100M", "--cores", "0",
                                                    "--compute-cores", "2"]),
    # --comm auto against an exhaustive sweep (launch/auto_check.sh), with the probe and with the profiles
    # fitted on 2026-12-01 (other sizes, another day)
    "docs/scaling/auto/table.md": ("script", ["launch/auto_table.py", "docs/scaling/auto",
                                              "--profile", f"100M={C}/100M/profile.json",
                                              "--profile", f"1G={C}/1G/profile.json"]),
    # the same check again on the AMD EPYC machine, quiet, with the probe only (2026-12-07)
    "docs/scaling/auto-amd/table.md": ("script", ["launch/auto_table.py", "docs/scaling/auto-amd"]),
}
# convergence with each codec: a SqueezeNet on the digits, 4 ranks (launch/compress_convergence.py --logs)
GENERATED["docs/scaling/compress/squeezenet_digits/table.md"] = (
    "script", ["launch/compress_convergence.py", "--from", "docs/scaling/compress/squeezenet_digits",
               "--plot", "{png}"])
# the same with squeezenet_cifar itself on CIFAR-10 (--net squeezenet-cifar, the JPEG copy of the images)
GENERATED["docs/scaling/compress/squeezenet_cifar/table.md"] = (
    "script", ["launch/compress_convergence.py", "--from", "docs/scaling/compress/squeezenet_cifar",
               "--plot", "{png}"])
# the SqueezeNet on the digits at five seeds (the solver's, 1, and -- --seed 43 to 46), one folder of logs each
GENERATED["docs/scaling/compress/squeezenet_digits_seeds/table.md"] = (
    "script", ["launch/compress_convergence.py", "--from",
               *[f"docs/scaling/compress/squeezenet_digits_seeds/seed{n}" for n in (1, 43, 44, 45, 46)]])
# the same five seeds with msra weight fillers (--fillers msra: squeezenet_cifar's recipe)
GENERATED["docs/scaling/compress/squeezenet_digits_msra_seeds/table.md"] = (
    "script", ["launch/compress_convergence.py", "--from",
               *[f"docs/scaling/compress/squeezenet_digits_msra_seeds/seed{n}" for n in (1, 43, 44, 45, 46)]])
# PowerSGD against PyTorch's DDP powerSGD_hook on the same gradients (benchmarks/powersgd_peer.py --json)
GENERATED["docs/scaling/compress/powersgd_peer/table.md"] = (
    "script", ["benchmarks/powersgd_peer.py", "--from", "docs/scaling/compress/powersgd_peer/squeezenet_cifar.json",
               "docs/scaling/compress/powersgd_peer/alexnet.json"])
# the same before fp16 shifted its blocks (commit 6d6567f's plain cast to half)
GENERATED["docs/scaling/compress/squeezenet_digits_plain_fp16/table.md"] = (
    "script", ["launch/compress_convergence.py", "--from", "docs/scaling/compress/squeezenet_digits_plain_fp16"])
for _codec in ("none", "fp16", "powersgd:4"):       # strong scaling with compressed gradients (ring, 100 Mb/s)
    GENERATED[f"{C}/strong-compress/{_codec.replace(':', '_')}/table.md"] = (
        "script", ["launch/strong_table.py", f"{C}/strong-compress/{_codec.replace(':', '_')}", SQUEEZE,
                   f"{C}/compress-{'psgd-' if _codec.startswith('powersgd') else ''}100M/profile.json", "ring", "2",
                   _codec])
for _comm in ("ring", "tree", "dbtree", "mpi"):     # the first strong-scaling run, on that day's profile
    GENERATED[f"{C}/strong/{_comm}/table.md"] = (
        "script", ["launch/strong_table.py", f"{C}/strong/{_comm}", SQUEEZE, f"{C}/mtu1500-100M/profile.json",
                   _comm, "2"])
for _comm in ("ring", "tree"):                      # jumbo frames, BBR in the nodes, on that day's profile
    GENERATED[f"{C}/strong-mtu9000/{_comm}/table.md"] = (
        "script", ["launch/strong_table.py", f"{C}/strong-mtu9000/{_comm}", SQUEEZE, f"{C}/bbr-100M/profile.json",
                   _comm, "2"])

# figure: how it is drawn (a report's figure, or a script's {png})
FIGURES = {
    "docs/scaling/scaling.png": GENERATED["docs/scaling/README.md"],
    f"{C}/100M/scaling.png": GENERATED[f"{C}/100M/README.md"],
    f"{C}/1G/scaling.png": GENERATED[f"{C}/1G/README.md"],
    f"{C}/hier-8x2/scaling.png": GENERATED[f"{C}/hier-8x2/README.md"],
    f"{C}/nets/firecaffe_nets.png": GENERATED[f"{C}/nets/table.md"],
    "docs/scaling/compress/squeezenet_digits_loss.png": GENERATED["docs/scaling/compress/squeezenet_digits/table.md"],
    "docs/scaling/compress/squeezenet_cifar_loss.png": GENERATED["docs/scaling/compress/squeezenet_cifar/table.md"],
}

# Folders measured and fitted with older code (their model columns and fits need it): kept as
# they were written, each with the commit that wrote them (ARCHIVED.md in the folder says so).
ARCHIVED = {
    f"{C}/bbr-100M": "33f930b", f"{C}/bbr-1G": "33f930b", f"{C}/bbr-nets": "33f930b",
    f"{C}/mtu1500-100M": "acab54f", f"{C}/mtu1500-1G": "526ced6", f"{C}/mtu1500-hier": "526ced6",
    f"{C}/mtu1500-nets-100M": "3ef553b", "docs/scaling/overlap": "e9326c9",
}


def firecaffe_cli(args):
    from click.testing import CliRunner

    from firecaffe.cli.bench import bench
    assert args[0] == "bench"
    result = CliRunner().invoke(bench, args[1:], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"firecaffe {' '.join(args)} failed:\n{result.output}")
    return result.output            # with its warnings, as a terminal shows them


def generate(path, kind, args, scratch, figure=False):
    """The text that ``path`` should hold (``figure``: the path of its figure drawn in ``scratch``)."""
    if kind == "report":
        folder, cores, fit = args
        out = Path(scratch) / "report" / "README.md"
        out.parent.mkdir(exist_ok=True)
        text = write_report(folder, out=out if figure else None, fit=fit, cores=cores, figure=figure)
        return out.parent / "scaling.png" if figure else text
    if kind == "cli":
        return firecaffe_cli(args)
    if kind == "profile":
        out = Path(scratch) / "profile.json"
        firecaffe_cli(args + ["--out", str(out)])
        return out.read_text()
    if kind == "script":            # run in this process (no interpreter start-up), its figure not drawn
        script, argv = args[0], [a.replace("{png}", str(Path(scratch) / "figure.png")) for a in args[1:]]
        spec = importlib.util.spec_from_file_location(Path(script).stem, REPO / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "plot_time_vs_ranks") and not figure:
            module.plot_time_vs_ranks = lambda *a, **k: None
        printed = io.StringIO()
        with redirect_stdout(printed):
            module.main(*argv) if len(inspect.signature(module.main).parameters) > 1 else module.main(argv)
        return Path(scratch) / "figure.png" if figure else printed.getvalue()
    raise ValueError(kind)


def same(path, have, want):
    if not path.endswith(".json"):
        return have == want
    a, b = json.loads(have), json.loads(want)
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and isinstance(y, (int, float)):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-18):
                return False
        elif x != y:
            return False
    return True


def main(argv):
    check = "--check" in argv
    differ, texts = [], {}
    os.chdir(REPO)                  # the commands name the data by paths relative to the repository
    with tempfile.TemporaryDirectory() as scratch, redirect_stdout(io.StringIO()) if check else nullcontext():
        for path, (kind, args) in GENERATED.items():
            texts[path] = generate(path, kind, args, scratch)
        for path, (kind, args) in FIGURES.items():
            reason = figure_differs(REPO / path, generate(path, kind, args, scratch, figure=True))
            if reason:
                differ.append(f"{path} ({reason})")
                if not check:
                    shutil.copyfile(Path(scratch) / ("report/scaling.png" if kind == "report" else "figure.png"),
                                    REPO / path)
    for doc in DOCS:
        texts[doc] = fill((REPO / doc).read_text(), texts)
    for path, want in texts.items():
        have = (REPO / path).read_text() if (REPO / path).exists() else None
        if have is not None and same(path, have, want):
            continue
        differ.append(path)
        if not check:
            (REPO / path).write_text(want)
    for path in differ:
        print(f"{'differs' if check else 'written'}: {path}")
    return 1 if check and differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
