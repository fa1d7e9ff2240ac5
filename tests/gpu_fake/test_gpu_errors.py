"""CuPy running out of device memory while a net is built or run is told as the
layer and the batch size per rank, in one line from the command line."""
import pytest
from google.protobuf import text_format

from firecaffe import cli
from firecaffe.cli import inspect as cli_inspect
from firecaffe.errors import FirecaffeError
from firecaffe.engine.gpu_errors import OutOfGPUMemory, is_gpu_oom
from firecaffe.ops import LAYERS, Layer
from firecaffe.engine.net import Net
from firecaffe.proto import caffe_pb2

NET = """name: 'oom' force_backward: true
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 256 dim: 3 dim: 4 dim: 4 } } }
layer { name: 'conv3' type: 'RunsOutOfMemory' bottom: 'data' top: 'out' loss_weight: 1 }
"""


class RunsOutOfMemory(Layer):
    """Raises ``error`` in the step named by ``fail_in`` (setup, forward or backward)."""
    exact_num_bottom = 1
    exact_num_top = 1
    fail_in = None
    error = None

    def _maybe_fail(self, step):
        if self.fail_in == step:
            raise self.error

    def reshape(self, bottom, top):
        self._maybe_fail("setup")
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        self._maybe_fail("forward")

    def backward_cpu(self, top, propagate_down, bottom):
        self._maybe_fail("backward")


@pytest.fixture
def oom_layer(monkeypatch, fake_gpu):
    monkeypatch.setitem(LAYERS, "RunsOutOfMemory", RunsOutOfMemory)
    error = fake_gpu.cuda.memory.OutOfMemoryError("Out of memory allocating 1,073,741,824 bytes")
    monkeypatch.setattr(RunsOutOfMemory, "error", error)
    return RunsOutOfMemory


def build():
    return Net(text_format.Parse(NET, caffe_pb2.NetParameter()), phase="TRAIN")


@pytest.mark.parametrize("step", ["setup", "forward", "backward"])
def test_out_of_gpu_memory_names_the_layer_and_the_batch_per_rank(oom_layer, monkeypatch, step):
    monkeypatch.setattr(oom_layer, "fail_in", step)
    with pytest.raises(OutOfGPUMemory) as caught:
        build().forward_backward()
    message = str(caught.value)
    assert message.startswith("out of GPU memory in layer 'conv3' (batch 256 per rank): "
                              "lower batch_size or use more ranks")
    assert "1,073,741,824 bytes" in message
    assert isinstance(caught.value, FirecaffeError)


def test_other_errors_pass_through_unchanged(oom_layer, monkeypatch):
    error = ValueError("a bug")
    monkeypatch.setattr(oom_layer, "fail_in", "forward")
    monkeypatch.setattr(oom_layer, "error", error)
    with pytest.raises(ValueError) as caught:
        build().forward_range()
    assert caught.value is error


def test_only_cupy_memory_errors_count():
    class CUDARuntimeError(RuntimeError):
        pass
    CUDARuntimeError.__module__ = "cupy_backends.cuda.api.runtime"
    assert is_gpu_oom(CUDARuntimeError("cudaErrorMemoryAllocation: out of memory"))
    assert not is_gpu_oom(CUDARuntimeError("cudaErrorIllegalAddress: an illegal memory access"))
    assert not is_gpu_oom(MemoryError())            # host memory: the command line words that one
    assert not is_gpu_oom(type("OutOfMemoryError", (Exception,), {})())     # not from CuPy


def test_the_command_line_prints_one_line(oom_layer, monkeypatch, tmp_path, capsys):
    model = tmp_path / "oom.prototxt"
    model.write_text(NET)
    monkeypatch.setattr(oom_layer, "fail_in", "forward")
    monkeypatch.setattr(cli_inspect, "choose_device", lambda cpu, gpu, *a, **k: None)   # stay on the fake GPU
    with pytest.raises(SystemExit) as caught:
        cli.main(["time", "--model", str(model), "--iterations", "1"])
    assert caught.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("firecaffe: error: out of GPU memory in layer 'conv3' (batch 256 per rank)")
    assert not any("Traceback" in line for line in err)
