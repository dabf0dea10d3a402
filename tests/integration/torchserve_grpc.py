"""A gRPC client of TorchServe's own API, built at test time from the definitions TorchServe ships.

The installed TorchServe carries no .proto file: its frontend jar holds the classes protoc generated, and each
outer class keeps its .proto as a serialized FileDescriptorProto in string constants of its class file. Those
bytes are read here (the class file's constant pool), loaded into a protobuf descriptor pool, and the message
classes and method paths come from them: the client speaks exactly the installed TorchServe's definitions.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import grpc
import ts
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, empty_pb2, message_factory
from google.rpc import status_pb2

JAR = Path(ts.__file__).parent / "frontend" / "model-server.jar"
OUTER_CLASSES = {
    "inference.proto": "org/pytorch/serve/grpc/inference/Inference.class",
    "management.proto": "org/pytorch/serve/grpc/management/Management.class",
}
# constant pool tags -> bytes that follow the tag (Utf8, whose length is its own, aside)
CONSTANT_SIZES = {
    3: 4,
    4: 4,
    5: 8,
    6: 8,
    7: 2,
    8: 2,
    9: 4,
    10: 4,
    11: 4,
    12: 4,
    15: 3,
    16: 2,
    17: 4,
    18: 4,
    19: 2,
    20: 2,
}


def _strings(class_file: bytes) -> list[str]:
    """The class file's Utf8 constants in pool order (Java's modified UTF-8 decoded)."""
    count = struct.unpack_from(">H", class_file, 8)[0]
    out, pos, index = [], 10, 1
    while index < count:
        tag = class_file[pos]
        if tag == 1:
            length = struct.unpack_from(">H", class_file, pos + 1)[0]
            raw = class_file[pos + 3 : pos + 3 + length].replace(b"\xc0\x80", b"\x00")
            out.append(raw.decode("utf-8", "surrogatepass"))
            pos += 3 + length
        else:
            pos += 1 + CONSTANT_SIZES[tag]
        index += 2 if tag in (5, 6) else 1
    return out


def file_descriptor(proto_name: str) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto of one of TorchServe's .proto files, from its generated class in the jar."""
    with zipfile.ZipFile(JAR) as jar:
        strings = _strings(jar.read(OUTER_CLASSES[proto_name]))
    start = next(i for i, s in enumerate(strings) if s.startswith("\n" + chr(len(proto_name)) + proto_name))
    data = b""
    for chunk in strings[start:]:  # protoc splits long descriptors over several constants, in order
        data += chunk.encode("latin-1")  # each char is one byte of the serialized descriptor
        found = descriptor_pb2.FileDescriptorProto()
        try:
            found.ParseFromString(data)
        except Exception:  # noqa: BLE001, S112 - a prefix of the descriptor: read on
            continue
        if found.syntax == "proto3":  # the last field protoc serializes: the descriptor is whole
            return found
    raise ValueError(f"no whole descriptor of {proto_name} in {JAR}")


class TorchServeGrpc:
    """Unary calls of TorchServe's InferenceAPIsService and ManagementAPIsService on one channel each."""

    def __init__(self, inference: str, management: str) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        for dependency in (empty_pb2, any_pb2, status_pb2):  # what TorchServe's files import
            self.pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
        for name in OUTER_CLASSES:
            self.pool.Add(file_descriptor(name))
        self.channels = {
            "inference.proto": grpc.insecure_channel(inference),
            "management.proto": grpc.insecure_channel(management),
        }

    def message(self, full_name: str):
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))

    def call(self, proto_name: str, method: str, request, token: str | None = None, timeout: float = 30.0):
        """Call `method` of the file's one service; `request` is a message built with `message`."""
        file = self.pool.FindFileByName(proto_name)
        [service] = file.services_by_name.values()
        descriptor = service.methods_by_name[method]
        stub = self.channels[proto_name].unary_unary(
            f"/{service.full_name}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.message(descriptor.output_type.full_name).FromString,
        )
        metadata = [("authorization", f"Bearer {token}")] if token else None
        return stub(request, metadata=metadata, timeout=timeout)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
