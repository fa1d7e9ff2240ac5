"""MemoryData: batches from arrays handed over in Python, pycaffe's
``net.set_input_arrays(data, labels)``.

Caffe type "MemoryData", memory_data_param { batch_size, channels, height, width }.
Tops: data (batch_size, channels, height, width) and label: (batch_size,) after
setup and (batch_size, 1, 1, 1) from the first forward on, as in Caffe.
``set_input_arrays`` takes data (n, channels, height, width) and n labels (shape
(n,) or (n, 1, 1, 1)), n a multiple of batch_size, and starts reading at the
first sample; forward steps through them and wraps around.

Difference from Caffe, chosen on purpose: the arrays are copied (Caffe keeps
pointers to the caller's memory). As in Caffe,
transform_param is not applied to the arrays (a warning says so). Under MPI each
rank reads its shard of every global batch of the arrays it was given, so ranks
given the same arrays read what one rank of the global batch would.
"""
import numpy as np

from ..core import backend
from ..core.log import LOGGER
from ..errors import DataError, PrototxtError
from . import register
from .data import _SourceLayer


@register("MemoryData")
class MemoryData(_SourceLayer):
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.memory_data_param
        self.batch_size = int(p.batch_size)
        self.sample_shape = (int(p.channels), int(p.height), int(p.width))
        if self.batch_size <= 0 or min(self.sample_shape) <= 0:
            self.fail("memory_data_param: batch_size, channels, height and width must all be set "
                      "and positive", PrototxtError)
        self.data = self.labels = self.cursor = None

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + self.sample_shape)
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    def set_input_arrays(self, data, labels):
        """Read batches from ``data`` (n, C, H, W) and ``labels`` (n,) from now on."""
        data, labels = np.asarray(data), np.asarray(labels)
        if data.ndim != 4 or data.shape[1:] != self.sample_shape:
            self.fail(f"set_input_arrays: data must have shape (n, {', '.join(map(str, self.sample_shape))}) "
                      f"as memory_data_param says, got {data.shape}", DataError)
        if labels.shape not in ((len(data),), (len(data), 1, 1, 1)):
            self.fail(f"set_input_arrays: labels must have shape ({len(data)},) or ({len(data)}, 1, 1, 1) "
                      f"for {len(data)} samples, got {labels.shape}", DataError)
        if len(data) == 0 or len(data) % self.batch_size:
            self.fail(f"set_input_arrays: the number of samples ({len(data)}) must be a positive multiple "
                      f"of batch_size ({self.batch_size})", DataError)
        if self.param.HasField("transform_param"):
            LOGGER.warning("layer '%s' (MemoryData) does not transform array data (as in Caffe)", self.name)
        self.data = data.astype(self.dtype)
        self.labels = labels.reshape(-1).astype(self.dtype)
        self.cursor = self._cursor(len(data))

    def forward(self, bottom, top):
        if self.data is None:
            self.fail("no data yet: call net.set_input_arrays(data, labels) before the first forward",
                      DataError)
        indices = self.cursor.next()
        self.batch_indices = indices
        xp = backend.xp_of(top[0].data)
        top[0].data[...] = xp.asarray(self.data[indices])
        if len(top) > 1:
            top[1].reshape((self.batch_size, 1, 1, 1))          # Caffe's Forward_cpu does the same
            top[1].data[...] = xp.asarray(self.labels[indices]).reshape(top[1].shape)

    def _describe_index(self, index):
        return f"sample {index} of the arrays given to set_input_arrays"

    def get_state(self):
        """Nothing to resume: the arrays come from the caller again (Caffe restarts at 0)."""
        return None

    def set_state(self, state):
        pass
