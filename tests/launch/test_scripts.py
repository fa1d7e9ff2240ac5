"""The launch scripts parse, check their arguments, and build the commands docs/launch.md promises."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["launch/mpirun.sh", "launch/slurm/train.sbatch", "launch/slurm/local-cluster.sh", "launch/overlap_links.sh",
           ".ci/install-slurm.sh", ".ci/run"]
SOLVER = "nets/lenet_digits/solver.prototxt"


def bash(args, env=None, **kwargs):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "FIRECAFFE_"))}
    environment.update(env or {})
    return subprocess.run(["bash", *args], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=30, **kwargs)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_valid_bash(script):
    checked = bash(["-n", script])
    assert checked.returncode == 0, checked.stderr


def test_mpirun_sh_runs_one_blas_thread_per_rank_when_ranks_outnumber_cores():
    ranks = (os.cpu_count() or 1) + 1
    dry = bash(["launch/mpirun.sh", str(ranks), SOLVER, "--comm", "ring"], env={"FIRECAFFE_DRY_RUN": "1"})
    assert dry.returncode == 0, dry.stderr
    threads, command = dry.stdout.splitlines()
    assert threads == "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"
    assert command.split()[0].endswith(("mpiexec", "mpirun"))
    assert f"-n {ranks} " in command
    assert command.rstrip().endswith(f"train {SOLVER} --comm ring")


def test_mpirun_sh_keeps_thread_counts_the_user_set():
    dry = bash(["launch/mpirun.sh", "2", SOLVER], env={"FIRECAFFE_DRY_RUN": "1", "OMP_NUM_THREADS": "3",
                                                       "FIRECAFFE_MPIEXEC": "mpirun"})
    threads, command = dry.stdout.splitlines()
    assert threads == "OMP_NUM_THREADS=3 OPENBLAS_NUM_THREADS=3 MKL_NUM_THREADS=3"
    assert command.startswith("mpirun -n 2 ")


@pytest.mark.parametrize("args, message", [(["0", SOLVER], "positive integer"),
                                           (["4", "no/such/solver.prototxt"], "no such solver"),
                                           ([], "Usage")])
def test_mpirun_sh_refuses_bad_arguments(args, message):
    refused = bash(["launch/mpirun.sh", *args])
    assert refused.returncode == 2
    assert message in refused.stderr


def test_train_sbatch_without_a_solver_says_how_to_call_it():
    refused = bash(["launch/slurm/train.sbatch"])
    assert refused.returncode == 2
    assert "usage: sbatch" in refused.stderr


def test_train_sbatch_refuses_an_unknown_launcher():
    refused = bash(["launch/slurm/train.sbatch", SOLVER], env={"FIRECAFFE_LAUNCHER": "aprun"})
    assert refused.returncode == 2
    assert "srun or mpirun" in refused.stderr


def test_local_cluster_sh_needs_an_action():
    refused = bash(["launch/slurm/local-cluster.sh"])
    assert refused.returncode == 2
    assert "start|stop|status" in refused.stderr


def test_install_slurm_exits_zero_and_says_why_where_apt_is_missing(tmp_path):
    # a PATH with bash but neither apt-get nor SLURM: the script says why and the CI goes on (the SLURM tests
    # then skip, or fail where CI=true)
    (tmp_path / "bash").symlink_to("/bin/bash")
    ran = subprocess.run(["/bin/bash", ".ci/install-slurm.sh"], cwd=REPO, capture_output=True, text=True,
                         timeout=30, env={"PATH": str(tmp_path)})
    assert ran.returncode == 0
    assert "install-slurm:" in ran.stderr
