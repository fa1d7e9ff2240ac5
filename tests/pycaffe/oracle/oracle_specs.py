"""Nets and NetSpec recipes shared by make_fixtures.py (run under BVLC pycaffe) and
test_oracle.py (run under firecaffe). Each recipe takes (L, P, coord_map) so the
same code builds the spec with either library."""

DEPLOY = """name: "small"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

WIRING_NETS = {
    "auto_top": """
layer { name: "in" type: "DummyData" top: "x" top: "t"
        dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 }
                           data_filler { type: "constant" value: 2 } data_filler { type: "constant" value: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "t" }
""",
    "unsorted": """
layer { name: "in" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
layer { name: "z" type: "ReLU" bottom: "x" top: "zeta" }
layer { name: "a" type: "ReLU" bottom: "t" top: "alpha" }
layer { name: "m" type: "ReLU" bottom: "alpha" top: "alpha" }
""",
}


def lenet_spec(L, P, coord_map):
    n = _netspec(L)
    n.data, n.label = L.HDF5Data(batch_size=64, source="train.txt", ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool1, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label, include=dict(phase=0))
    return n.to_proto()


def unnamed_and_crop_spec(L, P, coord_map):
    n = _netspec(L)
    n.data = L.Input(shape=dict(dim=[1, 3, 64, 64]))
    conv = L.Convolution(n.data, kernel_size=3, pad=100, num_output=4)
    relu = L.ReLU(conv, in_place=True)
    pool = L.Pooling(relu, kernel_size=32, stride=32, pool=P.Pooling.AVE)
    score = L.Convolution(pool, kernel_size=7, num_output=2)
    n.up = L.Deconvolution(score, convolution_param=dict(kernel_size=64, stride=32, num_output=2, bias_term=False))
    n.score = coord_map.crop(n.up, n.data)
    n.silence = L.Silence(L.Reshape(n.score, shape=dict(dim=[-1])), ntop=0)
    return n.to_proto()


def _netspec(L):
    import sys
    return sys.modules[type(L).__module__].NetSpec()


SPECS = {"lenet": lenet_spec, "unnamed_and_crop": unnamed_and_crop_spec}
