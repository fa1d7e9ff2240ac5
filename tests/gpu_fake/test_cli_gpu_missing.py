"""`firecaffe train|time|test --gpu` without CuPy, or with CuPy but no usable GPU:
one line that says what is missing and how to install it, exit status 1, no traceback.

A fake ``cupy`` package first on PYTHONPATH stands for each situation (and hides a
real CuPy, so these run the same on a GPU machine)."""
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENET = os.path.join(REPO, "nets", "lenet_digits", "train_test.prototxt")

FAKE_CUPY = {
    "not installed": 'raise ModuleNotFoundError("No module named \'cupy\'", name="cupy")\n',
    "no driver": """
        class CUDARuntimeError(RuntimeError):
            pass
        def _no_driver():
            raise CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
        class cuda:
            class runtime:
                getDeviceCount = staticmethod(_no_driver)
        """,
    "no device": """
        class cuda:
            class runtime:
                getDeviceCount = staticmethod(lambda: 0)
        """,
}
SAYS = {
    "not installed": ("No module named 'cupy'", "pip install 'firecaffe[gpu]'"),
    "no driver": ("cudaErrorInsufficientDriver", "pip install 'firecaffe[gpu]'"),
    "no device": ("no GPU", "--cpu"),
}


def commands(tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{LENET}"\nbase_lr: 0.01\nmax_iter: 1\nsolver_mode: CPU\n')
    gpu_solver = tmp_path / "gpu_solver.prototxt"
    gpu_solver.write_text(f'net: "{LENET}"\nbase_lr: 0.01\nmax_iter: 1\nsolver_mode: GPU\n')
    return {
        "train --gpu": ["train", str(solver), "--gpu"],
        "train (solver_mode: GPU)": ["train", str(gpu_solver)],
        "time --gpu 0": ["time", "--model", LENET, "--gpu", "0"],
        "test --gpu": ["test", "--model", LENET, "--gpu"],
    }


@pytest.mark.parametrize("situation", list(FAKE_CUPY))
def test_gpu_commands_say_what_is_missing_in_one_line(tmp_path, situation):
    fake = tmp_path / "fake" / "cupy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(textwrap.dedent(FAKE_CUPY[situation]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), REPO]))
    env.pop("OMPI_COMM_WORLD_SIZE", None)
    jobs = {name: subprocess.Popen([sys.executable, "-m", "firecaffe", *argv], cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, argv in commands(tmp_path).items()}
    for name, job in jobs.items():
        _, err = job.communicate(timeout=60)
        lines = [line for line in err.splitlines() if line.strip()]
        where = f"`firecaffe {name}` with CuPy {situation}:\n{err}"
        assert job.returncode == 1, where
        assert "Traceback" not in err and len(lines) == 1, where
        asked = "the solver asks for GPU mode (solver_mode: GPU)" if "solver_mode" in name else "--gpu"
        assert lines[0].startswith(f"firecaffe: error: {asked}"), where
        for words in SAYS[situation]:
            assert words in lines[0], where
