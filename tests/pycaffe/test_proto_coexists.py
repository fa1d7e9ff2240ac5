"""firecaffe's caffe_pb2 and pycaffe's own (file 'caffe.proto', package 'caffe')
load in one process, in either order, and read each other's bytes and text."""
import subprocess
import sys
import textwrap

import pytest

from firecaffe.proto import caffe_pb2

# A stand-in for pycaffe's generated module: the same schema registered under
# Caffe's own keys, built the way protoc's output registers a file.
PYCAFFE_MODULE = '''
from google.protobuf import descriptor_pool
from google.protobuf.internal import builder
DESCRIPTOR = descriptor_pool.Default().AddSerializedFile({serialized!r})
builder.BuildMessageAndEnumDescriptors(DESCRIPTOR, globals())
builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, "caffe_pb2", globals())
'''


def caffes_own_descriptor():
    from google.protobuf import descriptor_pb2
    proto = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(proto)
    assert proto.name != "caffe.proto" and proto.package != "caffe"
    proto.name, proto.package = "caffe.proto", "caffe"

    def rename(messages):
        for message in messages:
            for field in message.field:
                if field.HasField("type_name"):
                    field.type_name = field.type_name.replace(".firecaffe.caffe.", ".caffe.")
            rename(message.nested_type)
    rename(proto.message_type)
    return proto.SerializeToString()


@pytest.fixture
def pycaffe_dir(tmp_path):
    (tmp_path / "caffe_pb2.py").write_text(PYCAFFE_MODULE.format(serialized=caffes_own_descriptor()))
    return tmp_path


CHECK = textwrap.dedent('''
    import sys
    sys.path.insert(0, {folder!r})
    {first}
    {second}
    from google.protobuf import text_format
    net = theirs.NetParameter(name="n")
    layer = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    layer.convolution_param.num_output = 8
    layer.convolution_param.kernel_size.append(3)
    ours = fc.NetParameter.FromString(net.SerializeToString())
    assert ours.layer[0].convolution_param.num_output == 8
    assert text_format.MessageToString(ours) == text_format.MessageToString(net)
    assert theirs.DESCRIPTOR.name == "caffe.proto" and theirs.NetParameter.DESCRIPTOR.full_name == "caffe.NetParameter"
    print("ok")
''')


@pytest.mark.parametrize("firecaffe_first", [True, False])
def test_firecaffe_and_pycaffe_protos_load_together(pycaffe_dir, firecaffe_first):
    ours = "from firecaffe.proto import caffe_pb2 as fc"
    theirs = "import caffe_pb2 as theirs"
    first, second = (ours, theirs) if firecaffe_first else (theirs, ours)
    done = subprocess.run([sys.executable, "-c", CHECK.format(folder=str(pycaffe_dir), first=first, second=second)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_messages_and_field_numbers_are_caffes():
    layer = caffe_pb2.LayerParameter.DESCRIPTOR
    assert layer.fields_by_name["convolution_param"].number == 106
    assert layer.fields_by_name["python_param"].number == 130
    assert caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name["layer"].number == 100
    assert (caffe_pb2.TRAIN, caffe_pb2.TEST) == (0, 1)


def test_parse_errors_name_caffes_message_types():
    from firecaffe.errors import PrototxtError
    from firecaffe.proto import io
    with pytest.raises(PrototxtError, match=r'Message type "caffe.LayerParameter" has no field named "bogus"'):
        io.parse_net('layer { bogus: 1 }')
