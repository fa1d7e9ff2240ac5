"""The wire-level .caffemodel reader gives the arrays protobuf's parser gives, or steps aside."""
import numpy as np

from firecaffe.proto import caffe_pb2, caffemodel, io


def test_reader_matches_protobuf_on_shapes_legacy_dims_and_doubles(tmp_path):
    gen = np.random.default_rng(0)
    net = caffe_pb2.NetParameter(name="n")
    conv = net.layer.add(name="conv", type="Convolution")
    conv.convolution_param.num_output = 4
    conv.blobs.add().CopyFrom(io.array_to_blob(gen.normal(size=(4, 3, 3, 3)).astype(np.float32)))
    conv.blobs.add().CopyFrom(io.array_to_blob(np.zeros(4, np.float32)))
    net.layer.add(name="relu", type="ReLU")
    fc = net.layer.add(name="fc/a", type="InnerProduct")
    legacy = fc.blobs.add(num=1, channels=1, height=5, width=7)
    legacy.data.extend(gen.normal(size=35).astype(np.float32).tolist())
    fc.blobs.add().CopyFrom(io.array_to_blob(gen.normal(size=5)))          # float64: double_data
    path = tmp_path / "w.caffemodel"
    io.write_caffemodel(net, str(path))
    name, layers = caffemodel.read_weights(str(path))
    assert name == "n" and [(n, t) for n, t, _ in layers] == [("conv", "Convolution"), ("fc/a", "InnerProduct")]
    parsed = {lp.name: lp for lp in io.read_caffemodel(str(path)).layer}
    for layer, kind, arrays in layers:
        for array, blob in zip(arrays, parsed[layer].blobs):
            want = io.blob_to_array(blob, np.float32)
            assert array.dtype == np.float32 and array.shape == want.shape
            np.testing.assert_array_equal(array, want)
    arrays = layers[0][2]
    arrays[0][0, 0, 0, 0] = 5.0                      # views of the process's own buffer: writable
    assert io.read_caffemodel(str(path)).layer[0].blobs[0].data[0] != 5.0


def test_reader_steps_aside_for_v1_layers(tmp_path):
    net = caffe_pb2.NetParameter(name="old")
    net.layers.add(name="fc").blobs.add().CopyFrom(io.array_to_blob(np.ones(3, np.float32)))
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(net.SerializeToString())
    assert caffemodel.read_weights(str(path)) is None
