"""Options and device choice shared by the commands."""
import click

from ..core import backend
from ..errors import FirecaffeError

GPU_OPTION = click.option("--gpu", type=int, is_flag=False, flag_value=0, default=None, metavar="[ID]",
                          help="Run on GPU ID (default 0) through CuPy.")
CPU_OPTION = click.option("--cpu", is_flag=True, help="Run on the CPU with NumPy (the default).")


def choose_device(cpu, gpu, solver_param=None, local_rank=0):
    if cpu and gpu is not None:
        raise click.UsageError("give --cpu or --gpu, not both")
    from_solver = (gpu is None and not cpu and solver_param is not None and solver_param.HasField("solver_mode")
                   and solver_param.solver_mode == solver_param.GPU)
    if from_solver:
        gpu = solver_param.device_id
    if gpu is not None:
        try:
            backend.set_mode_gpu(gpu + local_rank, wrap=local_rank > 0)
        except FirecaffeError as exc:
            if not from_solver:
                raise
            detail = str(exc).replace("--gpu needs", "that needs").replace("--gpu: ", "")
            raise FirecaffeError("the solver asks for GPU mode (solver_mode: GPU) but " + detail.replace(
                ", or run with --cpu", "; run with --cpu or set solver_mode: CPU")) from None
    else:
        backend.set_mode_cpu()
