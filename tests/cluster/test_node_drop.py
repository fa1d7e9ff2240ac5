"""A node that drops off the network mid-training ends the job within 30 s, naming the node: never a hang;
with --stall-timeout 8 (the stall watchdog or the peer monitor, whichever speaks first) and with the
defaults (the peer monitor's 30 s)."""
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from .conftest import NAME, REPO, make_cluster

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("comm, stall", [("tree", ["--stall-timeout", "8"]), ("ring", ["--stall-timeout", "8"]),
                                         ("tree", [])])
def test_a_node_whose_link_goes_down_is_named_and_the_job_ends(comm, stall):
    with make_cluster(3, "100M") as state:
        env = dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_NO_PROGRESS="1")
        job = subprocess.Popen(
            [sys.executable, "-m", "firecaffe", "cluster", "exec", "--name", NAME, "--timeout", "90", "--",
             "python", "-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt", "--max-iter", "100000",
             "--test-interval", "0", "--display", "10", "--global-batch", "24", "--comm", comm,
             *stall],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines, training = [], threading.Event()

        def read_log():
            for line in job.stderr:
                lines.append(line)
                if "Iteration 20 " in line:
                    training.set()
        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        try:
            assert training.wait(60), "".join(lines[-20:])
            subprocess.run(["ip", "link", "set", state["nodes"][2]["veth"], "down"], check=True)
            cut = time.monotonic()
            job.wait(timeout=60)
            ended = time.monotonic() - cut
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
        reader.join(5)
    log = "".join(lines)
    assert job.returncode != 0, log[-3000:]
    print(f"{comm} {stall}: the job ended {ended:.1f} s after the link went down")
    assert ended < (30 if stall else 45), log[-3000:]
    stalled = f"unreachable over the network: rank 2 (on {NAME}-node2)"
    silent = rf"rank 2 \(worker, pid \d+ on {NAME}-node2\) has not answered for \d+ s: unreachable over the network"
    assert stalled in log or re.search(silent, log), log[-3000:]
