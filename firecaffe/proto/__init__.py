"""Caffe protobuf messages (caffe_pb2) and prototxt / caffemodel input and output."""
