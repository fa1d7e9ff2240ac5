"""Reading and writing Caffe files: prototxt errors, caffemodels, blobs."""
import os
import pathlib

import numpy as np
import pytest

from firecaffe.errors import PrototxtError
from firecaffe.proto import caffe_pb2, io

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def test_alexnet_train_val_reads_in_the_current_form():
    net = io.read_net(FIXTURES / "alexnet_train_val.prototxt")
    assert net.name == "AlexNetLike"
    assert not net.layers
    data_train, data_test = net.layer[0], net.layer[1]
    assert data_train.include[0].phase == caffe_pb2.TRAIN
    assert data_test.include[0].phase == caffe_pb2.TEST
    assert data_train.transform_param.crop_size == 227
    assert list(data_test.transform_param.mean_value) == [104, 117, 123]
    assert data_train.data_param.backend == caffe_pb2.DataParameter.LMDB
    conv2 = next(layer for layer in net.layer if layer.name == "conv2")
    assert list(conv2.convolution_param.pad) == [2]
    assert conv2.convolution_param.group == 2
    assert [p.lr_mult for p in conv2.param] == [1, 2]
    pool5 = next(layer for layer in net.layer if layer.name == "pool5")
    assert pool5.pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert pool5.pooling_param.round_mode == caffe_pb2.PoolingParameter.CEIL


def test_unknown_field_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  kernel: 3\n}\n')
    with pytest.raises(PrototxtError) as err:
        io.read_net(path)
    assert str(err.value).startswith(f"{path}:4:3: ")
    assert '"kernel"' in str(err.value)


def test_syntax_error_names_file_and_line():
    with pytest.raises(PrototxtError) as err:
        io.parse_net('layer {\n  name: "a"\n  top: \n}\n', "net.prototxt")
    assert str(err.value).startswith("net.prototxt:4:1: ")


def test_bad_enum_value_names_file_and_line():
    with pytest.raises(PrototxtError, match=r"^s\.prototxt:2:\d+: .*MAXIMUM"):
        io.parse_net('layer {\n pooling_param { pool: MAXIMUM } }', "s.prototxt")


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.prototxt"
    with pytest.raises(PrototxtError, match="nowhere.prototxt"):
        io.read_net(missing)
    with pytest.raises(PrototxtError, match="nowhere.caffemodel"):
        io.read_caffemodel(tmp_path / "nowhere.caffemodel")


def test_solver_type_enum_becomes_type_string():
    solver = io.read_solver(FIXTURES / "solver_nesterov.prototxt")
    assert solver.type == "Nesterov"
    assert not solver.HasField("solver_type")
    assert list(solver.stepvalue) == [5000, 7000]
    assert solver.solver_mode == caffe_pb2.SolverParameter.CPU
    assert solver.random_seed == 1701
    assert solver.momentum2 == pytest.approx(0.999)


def test_solver_with_both_spellings_is_refused():
    with pytest.raises(PrototxtError, match="solver_type"):
        io.parse_solver('type: "Adam"\nsolver_type: ADAM', "s.prototxt")


def test_inline_solver_net_is_upgraded():
    solver = io.parse_solver('net_param { layers { name: "r" type: RELU } }')
    assert solver.net_param.layer[0].type == "ReLU"


def _weights_net():
    rng = np.random.default_rng(0)
    net = io.parse_net('name: "w" layer { name: "conv" type: "Convolution" } '
                       'layer { name: "fc" type: "InnerProduct" }')
    net.layer[0].blobs.add().CopyFrom(io.array_to_blob(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)))
    net.layer[0].blobs.add().CopyFrom(io.array_to_blob(rng.standard_normal(4).astype(np.float32)))
    net.layer[1].blobs.add().CopyFrom(io.array_to_blob(rng.standard_normal((2, 36))))
    return net


def test_caffemodel_round_trip_is_bit_identical(tmp_path):
    net = _weights_net()
    path = tmp_path / "w.caffemodel"
    io.write_caffemodel(net, path)
    back = io.read_caffemodel(path)
    assert back.SerializeToString() == path.read_bytes() == net.SerializeToString()
    for layer, again in zip(net.layer, back.layer):
        for blob, blob_again in zip(layer.blobs, again.blobs):
            a, b = io.blob_to_array(blob), io.blob_to_array(blob_again)
            assert a.tobytes() == b.tobytes() and a.shape == b.shape
    assert io.read_net(path) == back


def test_float64_array_keeps_every_bit():
    values = np.array([[1 / 3, np.pi], [1e-300, -2.5]])
    blob = io.array_to_blob(values)
    assert len(blob.data) == 0 and len(blob.double_data) == 4
    assert io.blob_to_array(blob, np.float64).tobytes() == values.tobytes()


def test_blob_to_array_reads_legacy_4d_shape():
    blob = caffe_pb2.BlobProto(num=2, channels=1, height=2, width=3, data=range(12))
    array = io.blob_to_array(blob)
    assert array.shape == (2, 1, 2, 3) and array.dtype == np.float32
    assert array[1, 0, 1, 2] == 11


def test_blob_to_array_prefers_double_data():
    blob = caffe_pb2.BlobProto(double_data=[0.1, 0.2])
    blob.shape.dim.append(2)
    assert io.blob_to_array(blob, np.float64).tolist() == [0.1, 0.2]


def test_blob_with_wrong_count_is_refused():
    blob = caffe_pb2.BlobProto(data=[1, 2, 3])
    blob.shape.dim.extend([2, 2])
    with pytest.raises(PrototxtError, match="3 values"):
        io.blob_to_array(blob)


def test_read_blobproto_reads_a_mean_file(tmp_path):
    mean = np.arange(3 * 4 * 5, dtype=np.float32).reshape(1, 3, 4, 5)
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(io.array_to_blob(mean).SerializeToString())
    assert np.array_equal(io.blob_to_array(io.read_blobproto(path)), mean)


def test_garbage_caffemodel_is_refused(tmp_path):
    path = tmp_path / "junk.caffemodel"
    path.write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(PrototxtError, match="junk.caffemodel"):
        io.read_caffemodel(path)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    path = tmp_path / "w.caffemodel"
    io.write_caffemodel(_weights_net(), path)
    io.write_caffemodel(_weights_net(), path)
    io.write_text(io.parse_net('name: "t"'), tmp_path / "t.prototxt")
    assert sorted(os.listdir(tmp_path)) == ["t.prototxt", "w.caffemodel"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "w.caffemodel"
    io.write_caffemodel(_weights_net(), path)
    before = path.read_bytes()
    bad = caffe_pb2.NetParameter()
    bad.layer.add().clip_param.min = 0  # required `max` missing
    with pytest.raises(PrototxtError):
        io.write_caffemodel(bad, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.caffemodel"]


def test_text_round_trip(tmp_path):
    net = io.read_net(FIXTURES / "alexnet_train_val.prototxt")
    io.write_text(net, tmp_path / "again.prototxt")
    assert io.read_net(tmp_path / "again.prototxt") == net
    assert io.parse_net(io.net_to_text(net)) == net


def test_a_blob_without_shape_or_legacy_dims_is_0d_as_caffe_writes_it():
    blob = caffe_pb2.BlobProto(data=[0.25])            # no shape, no num/channels/height/width
    array = io.blob_to_array(blob)
    assert array.shape == () and float(array) == 0.25
    legacy = caffe_pb2.BlobProto(num=1, data=[0.25])   # one legacy field set: the 4-D shape it names
    with pytest.raises(PrototxtError, match=r"1 values but its shape \(1, 0, 0, 0\)"):
        io.blob_to_array(legacy)


def test_a_caffemodel_written_by_caffe_with_a_shared_prelu_slope_loads(tmp_path):
    # written by BVLC Caffe 9b891540 (shared/caffe-oracle): MemoryData -> PReLU channel_shared, slope 0.375
    import firecaffe
    net = firecaffe.Net(str(FIXTURES / "prelu_channel_shared.prototxt"),
                        str(FIXTURES / "prelu_channel_shared_caffe.caffemodel"), firecaffe.TEST)
    assert net.params["prelu"][0].data.shape == () and float(net.params["prelu"][0].data) == 0.375
    assert net.blobs["label"].data.shape == (2,)                     # Caffe's, after setup
    net.set_input_arrays(np.arange(-6, 6, dtype=np.float32).reshape(2, 2, 1, 3), np.array([3, 4], np.float32))
    net.forward()
    assert net.blobs["label"].data.shape == (2, 1, 1, 1)             # Caffe's, after a forward
    np.testing.assert_array_equal(net.blobs["out"].data.ravel(),
                                  [-2.25, -1.875, -1.5, -1.125, -0.75, -0.375, 0, 1, 2, 3, 4, 5])
