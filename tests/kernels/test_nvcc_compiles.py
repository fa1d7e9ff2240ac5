"""Every kernel source compiles for a current GPU with the machine's nvcc (to PTX:
no GPU needed). A syntax or type error in a .cu file fails here, not on a GPU."""
import os
import re
import shutil
import subprocess

import pytest

import firecaffe.kernels as kernels


def _arch(nvcc):
    """The newest compute_XX arch among the ones nvcc lists, preferring sm_90 (H100)."""
    listed = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True).stdout
    archs = sorted({int(m) for m in re.findall(r"compute_(\d+)", listed)})
    if 90 in archs or not archs:
        return "sm_90"
    return f"sm_{archs[-1]}"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """nvcc -ptx on every source at once (in parallel): {file: (returncode, log, ptx)}."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed (CUDA toolkit): the kernel compile check needs it")
    arch, out, jobs = _arch(nvcc), tmp_path_factory.mktemp("ptx"), {}
    for file in kernels.SOURCES:
        src = out / file            # the text exactly as cupy.RawModule receives it
        src.write_text(kernels.source(file))
        jobs[file] = subprocess.Popen([nvcc, "-ptx", f"-arch={arch}", *kernels.OPTIONS, str(src),
                                       "-o", str(out / f"{file}.ptx")],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = {}
    for file, job in jobs.items():
        log = job.communicate()[0]
        ptx = (out / f"{file}.ptx").read_text() if job.returncode == 0 else ""
        results[file] = (job.returncode, log, ptx)
    return results


def test_kernel_sources_are_listed():
    on_disk = sorted(f for f in os.listdir(kernels.KERNEL_DIR) if f.endswith(".cu"))
    assert on_disk == sorted(kernels.SOURCES)


@pytest.mark.parametrize("file", kernels.SOURCES)
def test_kernel_compiles_with_nvcc(compiled, file):
    returncode, log, ptx = compiled[file]
    assert returncode == 0, f"nvcc rejects {file}:\n{log}"
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    wanted = {f"{name}_{suffix}" for name in kernels.ENTRY_POINTS[file] for suffix in ("f32", "f64")}
    assert wanted <= entries, f"{file}: missing extern \"C\" kernels {sorted(wanted - entries)}"
