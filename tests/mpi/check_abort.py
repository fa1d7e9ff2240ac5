"""One rank fails, the others wait in a collective: ``check_abort.py RANK KIND``.

KIND is ``firecaffe`` (a FirecaffeError), ``python`` (any other exception) or
``thread`` (an exception in a background thread while the main thread sleeps).
Under ``abort_on_error`` the job must end at once, naming the failed rank.
"""
import sys
import threading
import time

from firecaffe.errors import FirecaffeError
from firecaffe.run.mpi_util import abort_on_error, world


def fail(kind):
    if kind == "firecaffe":
        raise FirecaffeError("solver.prototxt:3: unknown field 'base_lrr'")
    if kind == "thread":
        threading.Thread(target=fail, args=("python",)).start()
        time.sleep(600)
    raise ZeroDivisionError("gradient scale is zero")


def main():
    abort_on_error()
    comm = world()
    if comm.Get_rank() == int(sys.argv[1]):
        fail(sys.argv[2])
    comm.Barrier()  # without the abort, the other ranks would wait here forever


if __name__ == "__main__":
    main()
