"""Regenerate caffe_pb2.py from caffe.proto with the protoc bundled in grpcio-tools.

    python -m firecaffe.proto.regen

The generated module is committed, so only someone who edits caffe.proto needs
grpcio-tools. The output needs a protobuf runtime at least as new as the
protoc that wrote it (its header names that version).

protoc runs from the folder that holds the ``firecaffe`` package, so the file is
registered in the descriptor pool as ``firecaffe/proto/caffe.proto``, not as
pycaffe's ``caffe.proto``: the two modules can then be imported together.
"""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent          # holds firecaffe/


def main():
    """Run protoc on caffe.proto, writing caffe_pb2.py next to it; return its status."""
    from grpc_tools import protoc

    status = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={ROOT}", str(HERE / "caffe.proto")])
    if status != 0:
        print(f"protoc failed on {HERE / 'caffe.proto'} (status {status})", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
