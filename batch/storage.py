"""Input and output locations: any URI the Hadoop filesystem layer reads, and the few operations the job needs.

A location with a scheme (`file:///data/in.jsonl`, `hdfs://nn:8020/in/`, `s3a://bucket/in/` where the cluster
has the connector) is used as it is; a path without one is a local path, made absolute against the working
directory (`file:///...`). Spark reads and writes the data itself; the driver's own operations on the output
(the lock, the staging directory, the renames, summary.json) go through Hadoop's FileSystem API, reached
through the session's JVM gateway (pyspark has no public binding for it), on an instance of its own.

Replacing an output atomically needs an atomic directory rename: POSIX filesystems (`file`) and HDFS (`hdfs`,
`viewfs`) have one. On object stores (any other scheme) a rename copies object by object, so there the job
writes straight into the output path and refuses a path that already holds something: a new path per run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ATOMIC_RENAME = ("file", "hdfs", "viewfs")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def uri(location: str | Path) -> str:
    """The location as a URI: one with a scheme unchanged, a local path as file:// and absolute."""
    text = str(location)
    if _SCHEME.match(text) and len(_SCHEME.match(text).group(1)) > 1:  # not a Windows drive letter
        return text
    return "file://" + str(Path(text).expanduser().resolve())


def scheme(location: str) -> str:
    return _SCHEME.match(uri(location)).group(1).lower()


def local_path(location: str) -> Path | None:
    """The local path of a file: location (before Spark starts, to check it), None for any other scheme."""
    if scheme(location) != "file":
        return None
    return Path(re.sub(r"^file:(//)?", "", uri(location)))


def name(location: str) -> str:
    """The last component of a location's path (what the format is told from, and what the lock is named for)."""
    return uri(location).rstrip("/").rsplit("/", 1)[-1]


def child(location: str, *names: str) -> str:
    return "/".join([uri(location).rstrip("/"), *names])


def parent(location: str) -> str:
    return uri(location).rstrip("/").rsplit("/", 1)[0]


def renames_atomically(location: str) -> bool:
    return scheme(location) in ATOMIC_RENAME


class Storage:
    """Hadoop FileSystem operations on one location's filesystem, from the driver."""

    def __init__(self, spark: SparkSession, location: str) -> None:
        sc = spark.sparkContext
        self._jvm = sc._jvm
        self._path = self._jvm.org.apache.hadoop.fs.Path
        root = self._path(uri(location))
        # an instance of our own: Spark's cached one stays as it is, and this one writes no .crc files beside ours
        self._fs = self._jvm.org.apache.hadoop.fs.FileSystem.newInstance(root.toUri(), sc._jsc.hadoopConfiguration())
        self._fs.setWriteChecksum(False)

    def close(self) -> None:
        self._fs.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def exists(self, location: str) -> bool:
        return self._fs.exists(self._path(location))

    def mkdirs(self, location: str) -> None:
        if not self._fs.mkdirs(self._path(location)):
            raise OSError(f"cannot create {location}")

    def rename(self, source: str, target: str) -> None:
        if not self._fs.rename(self._path(source), self._path(target)):
            raise OSError(f"cannot rename {source} to {target}")

    def delete(self, location: str) -> None:
        self._fs.delete(self._path(location), True)

    def children(self, location: str) -> list[str]:
        """The names in a directory ([] when it does not exist)."""
        if not self.exists(location):
            return []
        return sorted(status.getPath().getName() for status in self._fs.listStatus(self._path(location)))

    def modified(self, location: str) -> float:
        """Seconds since the epoch of the last change."""
        return self._fs.getFileStatus(self._path(location)).getModificationTime() / 1000

    def touch(self, location: str, when: float) -> None:
        self._fs.setTimes(self._path(location), int(when * 1000), -1)

    def write(self, location: str, data: bytes, overwrite: bool = True) -> None:
        """Write a small file; with overwrite False, fail when it exists (atomic on HDFS)."""
        out = self._fs.create(self._path(location), overwrite)
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    def read(self, location: str) -> bytes:
        stream = self._fs.open(self._path(location))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()
