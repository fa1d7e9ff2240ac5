"""pycaffe's Detector (R-CNN style): classify given windows of images with a TEST net.

detect_windows takes [(image path, [(ymin, xmin, ymax, xmax), ...]), ...] and returns
one dict per window with its 'window', 'prediction' (first output, flattened) and
'filename'. Context padding (configure_crop's context_pad) is not supported: windows
are cropped exactly and warped to the input size.
"""
import numpy as np

from . import io
from .engine.net import Net
from .errors import FirecaffeError


class Detector(Net):
    def __init__(self, model_file, pretrained_file=None, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None, context_pad=None):
        super().__init__(model_file, pretrained_file, "TEST")
        if context_pad:
            raise FirecaffeError("Detector: context_pad is not supported by firecaffe; crop windows exactly")
        name = self.inputs[0]
        self.transformer = io.Transformer({name: self.blobs[name].shape})
        self.transformer.set_transpose(name, (2, 0, 1))
        for setter, value in ((self.transformer.set_mean, mean), (self.transformer.set_input_scale, input_scale),
                              (self.transformer.set_raw_scale, raw_scale),
                              (self.transformer.set_channel_swap, channel_swap)):
            if value is not None:
                setter(name, value)

    def crop(self, image, window):
        """The window (ymin, xmin, ymax, xmax) of an H x W x K image."""
        ymin, xmin, ymax, xmax = (int(v) for v in window)
        return image[ymin:ymax, xmin:xmax]

    def detect_windows(self, images_windows):
        name = self.inputs[0]
        size = self.blobs[name].shape[2:]
        crops, meta = [], []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            for window in windows:
                crops.append(self.transformer.preprocess(name, io.resize_image(self.crop(image, window), size)))
                meta.append((filename, window))
        if not crops:
            return []
        scores = self.forward_all(**{name: np.stack(crops)})[self.outputs[0]]
        return [{"window": np.asarray(window), "prediction": scores[k].ravel(), "filename": filename}
                for k, (filename, window) in enumerate(meta)]
