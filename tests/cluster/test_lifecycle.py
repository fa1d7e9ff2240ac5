"""up, down, run: the cluster leaves nothing behind, never clobbers what it did not make, says what it needs."""
import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firecaffe import cluster as emulated
from firecaffe.cluster import state as cluster_state
from firecaffe.errors import FirecaffeError

from .conftest import NAME, REPO, make_cluster, skip_unless_possible


def leftovers(name=NAME):
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return ([line.split()[0] for line in namespaces.splitlines() if line.startswith(f"{name}-")]
            + [word.rstrip(":").split("@")[0] for line in links.splitlines() for word in line.split()[1:2]
               if word.startswith(f"{name}-")]
            + [p.name for p in cluster_state.state_dir().glob(f"{name}*")])


def test_down_removes_every_namespace_link_and_file_it_made():
    with make_cluster(3, "100M") as state:
        assert sorted(leftovers()) == sorted(
            [n["namespace"] for n in state["nodes"]] + [n["veth"] for n in state["nodes"]]
            + [state["bridge"], f"{NAME}.json", f"{NAME}-enter.sh"])
        assert emulated.down(NAME) is True
        assert leftovers() == []
    assert emulated.down(NAME) is False  # idempotent


def test_jumbo_frames_on_every_interface_of_the_links_and_a_wrong_mtu_refused_before_anything_is_made():
    with pytest.raises(FirecaffeError, match="--mtu 100: give 576 to 65535 bytes"):
        emulated.up(2, "100M", name=NAME, mtu=100)
    assert leftovers() == []
    with make_cluster(2, "100M", mtu=9000) as state:
        assert state["mtu"] == 9000
        for node in state["nodes"]:
            assert Path("/sys/class/net", node["veth"], "mtu").read_text().strip() == "9000"
            inside = subprocess.run(["ip", "-n", node["namespace"], "-o", "link", "show", "eth0"],
                                    capture_output=True, text=True).stdout
            assert "mtu 9000" in inside, inside
        assert Path("/sys/class/net", state["bridge"], "mtu").read_text().strip() == "9000"


def test_nodes_use_a_loss_based_tcp_and_one_they_cannot_use_is_refused_before_anything_is_made():
    # BBR (some hosts' default) reads a token bucket's bursts as the link's bandwidth; the nodes get reno
    with pytest.raises(FirecaffeError, match="--tcp no-such-cc: not a congestion control the nodes can use; "
                                             "this host allows .*reno"):
        emulated.up(2, "100M", name=NAME, tcp="no-such-cc")
    assert leftovers() == []
    with make_cluster(2, "100M") as state:
        if state.get("tcp_warning"):
            pytest.skip(state["tcp_warning"])      # /proc/sys read-only here: the warning is what a user sees
        assert state["tcp"] == "reno" and state["tcp_restart_after_idle"] is False
        for node in state["nodes"]:
            for setting, value in (("tcp_congestion_control", "reno"), ("tcp_slow_start_after_idle", "0")):
                inside = subprocess.run(["ip", "netns", "exec", node["namespace"], "cat",
                                         f"/proc/sys/net/ipv4/{setting}"],
                                        capture_output=True, text=True, check=True).stdout.strip()
                assert inside == value, setting
        status = subprocess.run([sys.executable, "-m", "firecaffe", "cluster", "status", "--name", NAME],
                                capture_output=True, text=True, cwd=REPO, timeout=60).stdout
        assert "(MTU 1500, TCP reno)" in status, status


def test_up_refuses_to_clobber_a_cluster_or_a_namespace_it_did_not_make():
    with make_cluster(2, "100M"):
        with pytest.raises(FirecaffeError, match="is already up .* `firecaffe cluster down --name fct` first"):
            emulated.up(2, "100M", name=NAME)
    subprocess.run(["ip", "netns", "add", f"{NAME}-node1"], check=True)
    try:
        with pytest.raises(FirecaffeError, match="fct-node1 already exist.* did not make it"):
            emulated.up(2, "100M", name=NAME)
        assert leftovers() == [f"{NAME}-node1"]   # left as it was, no state file
    finally:
        subprocess.run(["ip", "netns", "del", f"{NAME}-node1"], check=True)


def run_cluster_command(args, **popen):
    env = dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_NO_PROGRESS="1")
    return subprocess.Popen([sys.executable, "-m", "firecaffe", "cluster", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.mpi
def test_run_passes_on_the_jobs_exit_status_and_tears_down():
    skip_unless_possible()
    process = run_cluster_command(["run", "--nodes", "2", "--link", "100M", "--name", NAME, "--",
                                   "sh", "-c", "hostname; exit 3"])
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr
    assert sorted(stdout.split()) == [f"{NAME}-node0", f"{NAME}-node1"]   # one host name per node
    assert leftovers() == []


@pytest.mark.mpi
@pytest.mark.parametrize("sig, to_group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["Ctrl-C-to-the-job", "SIGTERM-to-the-command"])
def test_run_tears_down_on_ctrl_c(sig, to_group):
    skip_unless_possible()
    process = run_cluster_command(["run", "--nodes", "2", "--link", "100M", "--name", NAME, "--",
                                   "sleep", "60"], start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not subprocess.run(
            ["ip", "netns", "pids", f"{NAME}-node1"], capture_output=True, text=True).stdout.strip():
        time.sleep(0.2)
    (os.killpg if to_group else os.kill)(process.pid, sig)     # killpg: what a terminal sends to the whole job
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 128 + sig, stderr
    assert stderr.splitlines()[-1].startswith(f"firecaffe: cluster: stopped by {sig.name}, passed to the job "
                                              "once; mpiexec "), stderr
    assert leftovers() == []


def test_without_the_rights_one_line_and_a_non_zero_status(tmp_path):
    skip_unless_possible()
    # Root without CAP_NET_ADMIN and CAP_SYS_ADMIN, as in a container started without them.
    env = dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_CLUSTER_DIR=str(tmp_path))
    done = subprocess.run(["setpriv", "--bounding-set", "-net_admin,-sys_admin", sys.executable, "-m",
                           "firecaffe", "cluster", "up", "--nodes", "2", "--link", "1G", "--name", NAME],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "firecaffe: error: firecaffe cluster needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network "
        "namespaces, veth pairs and a bridge: run it with sudo, or in CI as root (a container needs "
        "--cap-add NET_ADMIN --cap-add SYS_ADMIN)"]
    assert leftovers() == [] and list(tmp_path.iterdir()) == []


def test_status_of_a_cluster_that_is_not_up_says_how_to_make_one():
    with pytest.raises(FirecaffeError, match="no cluster 'fct' is up: `firecaffe cluster up --nodes N"):
        emulated.status(NAME)


def test_a_node_whose_tcp_cannot_be_set_keeps_its_own_and_says_so(monkeypatch):
    # a container may mount /proc/sys read-only: the cluster still comes up, and the state says what runs
    from firecaffe.cluster import links

    class Done:
        def __init__(self, stdout="", stderr="", returncode=0):
            self.stdout, self.stderr, self.returncode = stdout, stderr, returncode

    def fake_ip(*args, check=True):
        if args[-1].startswith("echo"):
            return Done(stderr="sh: 1: cannot create /proc/sys/net/ipv4/tcp_congestion_control: "
                               "Read-only file system", returncode=2)
        return Done(stdout="bbr\n")

    monkeypatch.setattr(links, "_ip", fake_ip)
    state = {"tcp": "reno"}
    links._set_tcp(state, "fct-node0")
    assert state["tcp"] == "bbr" and state["tcp_restart_after_idle"] is True
    assert state["tcp_warning"] == (
        "the nodes run TCP bbr, not reno (sh: 1: cannot create /proc/sys/net/ipv4/tcp_congestion_control: "
        "Read-only file system): a model-based one such as BBR misreads the token bucket's bursts (docs/launch.md)")


@pytest.mark.mpi
def test_ctrl_c_on_cluster_run_stops_training_with_a_snapshot(tmp_path):
    """The terminal's Ctrl-C reaches mpiexec once (through cluster run): the ranks stop at one iteration
    and snapshot. Before, mpiexec got it twice (the terminal's and the one passed on), hydra's proxies
    failed, no snapshot was written and click said `Aborted.`."""
    skip_unless_possible()
    log = tmp_path / "log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "firecaffe", "cluster", "run", "--nodes", "2", "--link", "1G", "--name", NAME, "--",
             sys.executable, "-m", "firecaffe", "train", "nets/lenet_digits/solver.prototxt", "--max-iter", "100000",
             "--snapshot-prefix", str(tmp_path / "x")], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(REPO), FIRECAFFE_NO_PROGRESS="1"), start_new_session=True)
        deadline = time.monotonic() + 120
        while "Iteration 20" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=90)
    text = log.read_text()
    assert process.returncode == 130, text[-3000:]
    stopped = re.search(r"firecaffe: stopped by SIGINT at iteration (\d+); snapshot (\S+)", text)
    assert stopped, text[-3000:]
    assert (tmp_path / f"x_iter_{stopped.group(1)}.caffemodel").stat().st_size > 0
    assert text.splitlines()[-1] == ("firecaffe: cluster: stopped by SIGINT, passed to the job once; mpiexec "
                                     "ended with status 130")
    assert "Aborted." not in text and leftovers() == []
