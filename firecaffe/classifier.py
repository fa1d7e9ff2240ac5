"""pycaffe's Classifier: a TEST net plus a Transformer, classifying H x W x K images
(optionally over ten crops: corners, centre and their mirrors)."""
import numpy as np

from . import io
from .engine.net import Net


class Classifier(Net):
    def __init__(self, model_file, pretrained_file=None, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        super().__init__(model_file, pretrained_file, "TEST")
        name = self.inputs[0]
        shape = self.blobs[name].shape
        self.transformer = io.Transformer({name: shape})
        self.transformer.set_transpose(name, (2, 0, 1))
        if mean is not None:
            self.transformer.set_mean(name, mean)
        if input_scale is not None:
            self.transformer.set_input_scale(name, input_scale)
        if raw_scale is not None:
            self.transformer.set_raw_scale(name, raw_scale)
        if channel_swap is not None:
            self.transformer.set_channel_swap(name, channel_swap)
        self.crop_dims = np.array(shape[2:])
        self.image_dims = np.array(image_dims if image_dims is not None else self.crop_dims)

    def predict(self, inputs, oversample=True):
        """Class scores (N x classes) of the first output for a list of images; with
        ``oversample``, the mean over ten crops of each, else the centre crop."""
        images = np.zeros((len(inputs), int(self.image_dims[0]), int(self.image_dims[1]), inputs[0].shape[2]),
                          dtype=np.float32)
        for k, image in enumerate(inputs):
            images[k] = io.resize_image(image, self.image_dims)
        if oversample:
            images = io.oversample(images, self.crop_dims)
        else:
            top, left = ((self.image_dims - self.crop_dims) / 2.0).astype(int)
            images = images[:, top:top + self.crop_dims[0], left:left + self.crop_dims[1], :]
        name = self.inputs[0]
        batch = np.stack([self.transformer.preprocess(name, image) for image in images])
        scores = self.forward_all(**{name: batch})[self.outputs[0]]
        if oversample:
            scores = scores.reshape((len(scores) // 10, 10, -1)).mean(axis=1)
        return scores
