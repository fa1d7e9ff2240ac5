"""`firecaffe train --timeline`: a valid Trace Event Format file with every layer's
forward and backward, an update per iteration, bucket reductions on their own
thread, events nested within each thread, and ranks on one clock."""
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from firecaffe.engine.testing import run_job

from tests import _required

REPO = Path(__file__).resolve().parents[2]
SOLVER = "nets/lenet_digits/solver.prototxt"
NET = "nets/lenet_digits/train_test.prototxt"
TOLERANCE_US = 0.01        # ns -> us rounding


def train(tmp_path, *args, ranks=None, timeout=120):
    done = run_job([sys.executable, "-m", "firecaffe", "train", SOLVER, "--test-interval", 0, "--display", 0,
                    "--snapshot-prefix", tmp_path / "snap", "--timeline", tmp_path / "trace.json", *args],
                   ranks=ranks, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with open(tmp_path / "trace.json") as f:
        trace = json.load(f)
    events = sum(e["ph"] == "X" or e["ph"] == "M" for e in trace["traceEvents"])
    assert f"Timeline: {events} events of {ranks or 1} rank(s)" in done.stderr, done.stderr[-2000:]
    assert f"written to {tmp_path / 'trace.json'} (open it in ui.perfetto.dev" in done.stderr
    return trace


def complete_events(trace):
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    for e in events:
        assert {"name", "cat", "ph", "ts", "dur", "pid", "tid"} <= set(e), e
        assert isinstance(e["ts"], (int, float)) and e["dur"] >= 0, e
    return events


def assert_nested(events):
    """Within each (pid, tid), any two events are disjoint or one holds the other."""
    by_thread = defaultdict(list)
    for e in events:
        by_thread[e["pid"], e["tid"]].append(e)
    for thread, group in by_thread.items():
        group.sort(key=lambda e: (e["ts"], -e["dur"]))
        open_ends = []
        for e in group:
            while open_ends and open_ends[-1] <= e["ts"] + TOLERANCE_US:
                open_ends.pop()
            end = e["ts"] + e["dur"]
            assert not open_ends or end <= open_ends[-1] + TOLERANCE_US, (thread, e)
            open_ends.append(end)


def inside(event, outer):
    return outer["ts"] - TOLERANCE_US <= event["ts"] and \
        event["ts"] + event["dur"] <= outer["ts"] + outer["dur"] + TOLERANCE_US


def train_layer_names():
    from firecaffe import TRAIN
    from firecaffe.engine.net import Net
    return [layer.name for layer in Net(str(REPO / NET), phase=TRAIN).layers]


def test_one_process_records_every_layer_and_an_update_per_iteration_for_the_first_n(tmp_path):
    trace = train(tmp_path, "--max-iter", 4, "--timeline-iters", 2)
    events = complete_events(trace)
    iterations = [e for e in events if e["cat"] == "iteration"]
    assert [e["args"]["iteration"] for e in iterations] == [0, 1]        # bounded by --timeline-iters
    layers = train_layer_names()
    for it in iterations:
        within = [e for e in events if e is not it and inside(e, it)]
        for phase in ("forward", "backward"):
            assert Counter(e["name"] for e in within if e["cat"] == phase) == Counter(layers), phase
        assert [e["name"] for e in within if e["cat"] == "update"] == ["update"]
    for phase in ("forward", "backward"):     # nothing after the recorder detached itself
        assert sum(e["cat"] == phase for e in events) == 2 * len(layers)
    assert {e["pid"] for e in events} == {0} and {e["tid"] for e in events} == {0}
    assert_nested(events)
    names = {(e["name"], e["pid"]): e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"
             and e["name"] in ("process_name", "thread_name")}
    assert names == {("process_name", 0): "rank 0", ("thread_name", 0): "main"}


@pytest.mark.mpi
def test_three_ranks_merge_into_one_file_with_buckets_on_their_own_thread(tmp_path):
    _required.mpi4py()
    trace = train(tmp_path, "--max-iter", 3, "--global-batch", 60, "--comm", "tree", "--bucket-mb", 0.02,
                  ranks=3, timeout=180)
    events = complete_events(trace)
    assert {e["pid"] for e in events} == {0, 1, 2}
    assert_nested(events)
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert processes == {0: "rank 0", 1: "rank 1", 2: "rank 2"}
    layers = Counter(train_layer_names())
    for rank in range(3):
        mine = [e for e in events if e["pid"] == rank]
        main = [e for e in mine if e["tid"] == 0]
        buckets = [e for e in mine if e["cat"] == "bucket"]
        assert buckets and all(e["tid"] != 0 for e in buckets), rank        # the reducer's own thread
        assert len({e["tid"] for e in buckets}) == 1
        for cat in ("iteration", "wait", "step", "update"):
            assert sum(e["cat"] == cat for e in main) == 3, (rank, cat)
        assert Counter(e["name"] for e in main if e["cat"] == "backward") == Counter({n: 3 * k for n, k in layers.items()})
        for wait in (e for e in main if e["cat"] == "wait"):     # each iteration: backward, wait, step, update
            it = next(e for e in main if e["cat"] == "iteration" and inside(wait, e))
            step = next(e for e in main if e["cat"] == "step" and inside(e, it))
            update = next(e for e in main if e["cat"] == "update" and inside(e, it))
            assert wait["ts"] + wait["dur"] <= step["ts"] + TOLERANCE_US and inside(update, step)
            last_backward = max(e["ts"] for e in main if e["cat"] == "backward" and inside(e, it))
            assert last_backward <= wait["ts"]
    # a bucket's allreduce ends on no rank before it has started on every rank (one clock for all)
    occurrences = defaultdict(list)
    for rank in range(3):
        seen = Counter()
        for e in sorted((e for e in events if e["pid"] == rank and e["cat"] == "bucket"), key=lambda e: e["ts"]):
            occurrences[e["name"], seen[e["name"]]].append(e)
            seen[e["name"]] += 1
    assert len(occurrences) >= 6
    for key, group in occurrences.items():
        assert len(group) == 3, key
        assert max(e["ts"] for e in group) <= min(e["ts"] + e["dur"] for e in group) + 100, key


def test_a_trace_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    done = run_job([sys.executable, "-m", "firecaffe", "train", SOLVER, "--max-iter", 1,
                    "--timeline", tmp_path / "missing" / "trace.json"], timeout=60, cwd=REPO)
    log = done.stdout + done.stderr
    assert done.returncode != 0
    assert "--timeline" in log and "missing" in log and "does not exist" in log, log[-2000:]
    assert "Traceback" not in log and "Solving" not in log, log[-2000:]


@pytest.mark.mpi
def test_a_parameter_server_rank_shows_its_step_and_update_and_no_layers(tmp_path):
    _required.mpi4py()
    trace = train(tmp_path, "--max-iter", 2, "--global-batch", 40, "--comm", "ps", ranks=3, timeout=180)
    events = complete_events(trace)
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert processes == {0: "rank 0", 1: "rank 1", 2: "rank 2 (parameter server)"}
    assert_nested(events)
    server = Counter(e["cat"] for e in events if e["pid"] == 2)
    assert server["step"] == 2 and server["update"] == 2 and server["forward"] == 0
    for worker in (0, 1):
        mine = Counter(e["cat"] for e in events if e["pid"] == worker)
        assert mine["step"] == 2 and mine["update"] == 0 and mine["forward"] > 0
