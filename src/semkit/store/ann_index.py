"""The approximate (HNSW) index of one embedded collection, and its derived file on disk.

FAISS ``IndexHNSWFlat`` (or ``IndexHNSWSQ`` for float16/int8 collections) won the embedded
store's benchmark (``benchmarks/search.py``) against hnswlib and usearch. Its labels are
*positions* 0..n-1; the embedded store keeps the position → SQLite rowid mapping and passes
tombstones and metadata filters as a bitmap selector, so FAISS never needs removals.

The file is derived data: ``EmbeddedStore`` can always rebuild it from SQLite. Layout::

    b"SEMKIT-ANN\\x01"  | u64 header length | header JSON | rowids (int64 x positions) | FAISS bytes

The header records the collection's change sequence number the index reflects (``seq``),
the parameters, the payload sizes and a CRC-32 of everything after the header. A file is
written to a temporary name, fsynced, renamed over the old one, and the folder is fsynced, so a
crash leaves either the old file or the new one, never a mix; a torn or tampered file fails its
CRC or size check on load and raises ``IndexFileError`` (the store then rebuilds).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependency, StoreError
from ..types import Matrix, Metric, StorageDtype

MAGIC = b"SEMKIT-ANN\x01"
FORMAT = 1


class IndexFileError(StoreError):
    """The index file is missing, torn, corrupt or for other data; rebuild it from SQLite."""


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is part of the store extra
        raise MissingDependency("faiss-cpu", "store", "the embedded store's HNSW index") from exc
    return faiss


@dataclass(frozen=True)
class AnnParams:
    m: int = 16
    ef_construction: int = 64

    def to_json(self) -> dict[str, int]:
        return {"m": self.m, "ef_construction": self.ef_construction}


class AnnIndex:
    """An HNSW graph over positions 0..ntotal-1. Scores are higher-is-better."""

    def __init__(self, dims: int, metric: Metric, dtype: StorageDtype = "float32",
                 params: AnnParams | None = None, *, _index: Any = None) -> None:
        faiss = _faiss()
        self.dims = dims
        self.metric = metric
        self.dtype = dtype
        self.params = params or AnnParams()
        self._l2 = metric == "l2"
        if _index is not None:
            self.index = _index
        else:
            fmetric = faiss.METRIC_L2 if self._l2 else faiss.METRIC_INNER_PRODUCT
            if dtype in ("float16", "int8"):
                qtype = faiss.ScalarQuantizer.QT_fp16 if dtype == "float16" else faiss.ScalarQuantizer.QT_8bit
                self.index = faiss.IndexHNSWSQ(dims, qtype, self.params.m, fmetric)
            else:
                # "binary" has no HNSW of its own here: the graph keeps float32 (documented).
                self.index = faiss.IndexHNSWFlat(dims, self.params.m, fmetric)
            self.index.hnsw.efConstruction = self.params.ef_construction
        self._hnsw = self.index.hnsw
        self._swig_ptr = faiss.swig_ptr
        self._ef = -1

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def needs_rescoring(self) -> bool:
        """Quantised storage gives approximate scores: the store rescores with float32."""
        return self.dtype in ("float16", "int8")

    def add(self, vectors: Matrix) -> None:
        """Append vectors as positions ntotal..ntotal+len-1 (already normalised for cosine)."""
        if len(vectors) == 0:
            return
        if not self.index.is_trained:
            self.index.train(vectors)  # int8 scalar quantiser: per-dimension ranges
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: Matrix, k: int, ef: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k positions and scores per query; position -1 pads when fewer were found.

        ``allowed`` is a bitmap (``np.packbits(mask, bitorder="little")``) over positions:
        excluded positions are skipped during the graph search itself.
        """
        ef = max(ef, k)
        n = len(queries)
        # search_c directly: FAISS's Python wrapper re-validates and re-copies per call, a
        # visible share of a 0.1 ms query. Callers pass C-contiguous float32 (the store does).
        dist = np.empty((n, k), dtype=np.float32)
        pos = np.empty((n, k), dtype=np.int64)
        ptr = self._swig_ptr
        if allowed is None:
            if ef != self._ef:  # a SWIG attribute write costs as much as the id mapping
                self._hnsw.efSearch = self._ef = ef
            self.index.search_c(n, ptr(queries), k, ptr(dist), ptr(pos))
        else:
            faiss = _faiss()
            params = faiss.SearchParametersHNSW()
            params.efSearch = ef
            selector = faiss.IDSelectorBitmap(len(allowed) * 8, ptr(allowed))
            params.sel = selector
            self.index.search_c(n, ptr(queries), k, ptr(dist), ptr(pos), params)
            del selector  # kept alive until the search returned
        if self._l2:
            scores = -np.sqrt(np.maximum(dist, 0.0))
            scores[pos < 0] = -np.inf
        else:
            scores = dist
        return scores, pos

    # --- the derived file -----------------------------------------------------------------

    def save(self, path: Path, *, seq: int, rowids: np.ndarray, tag: dict[str, Any]) -> None:
        """Write atomically: temp file, fsync, rename over ``path``, fsync the folder."""
        faiss = _faiss()
        rowids = np.ascontiguousarray(rowids, dtype="<i8")
        if len(rowids) != self.ntotal:
            raise StoreError(f"index has {self.ntotal} positions but {len(rowids)} rowids")
        payload = faiss.serialize_index(self.index)
        crc = zlib.crc32(payload, zlib.crc32(rowids.data))
        header = json.dumps({
            "format": FORMAT, "seq": seq, "positions": len(rowids), "rowids_bytes": rowids.nbytes,
            "payload_bytes": int(payload.nbytes), "crc32": crc, "dims": self.dims,
            "metric": self.metric, "dtype": self.dtype, **self.params.to_json(), **tag,
        }).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(MAGIC)
                fh.write(struct.pack("<Q", len(header)))
                fh.write(header)
                fh.write(rowids.data)
                fh.write(payload.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path, *, dims: int, metric: Metric, dtype: StorageDtype,
             tag: dict[str, Any]) -> tuple[AnnIndex, int, np.ndarray]:
        """Read and verify a file: ``(index, seq, rowids)``; ``IndexFileError`` if unusable."""
        faiss = _faiss()
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise IndexFileError(f"no index file at {path}") from None
        except OSError as exc:
            raise IndexFileError(f"cannot read index file {path}: {exc}") from None
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
            raise IndexFileError(f"{path} is not a semkit index file (bad magic)")
        (hlen,) = struct.unpack_from("<Q", data, len(MAGIC))
        start = len(MAGIC) + 8
        header = _header(data[start:start + hlen], path)
        body = memoryview(data)[start + hlen:]
        expected = {"format": FORMAT, "dims": dims, "metric": metric, "dtype": dtype, **tag}
        for key, value in expected.items():
            if header.get(key) != value:
                raise IndexFileError(f"{path} was built for {key}={header.get(key)!r}, not {value!r}")
        rbytes, pbytes = header["rowids_bytes"], header["payload_bytes"]
        if len(body) != rbytes + pbytes:
            raise IndexFileError(f"{path} is truncated or padded ({len(body)} of {rbytes + pbytes} bytes)")
        if zlib.crc32(body) != header["crc32"]:
            raise IndexFileError(f"{path} fails its checksum")
        rowids = np.frombuffer(body[:rbytes], dtype="<i8").astype(np.int64)
        try:
            index = faiss.deserialize_index(np.frombuffer(body[rbytes:], dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFileError(f"{path}: FAISS could not read the index ({exc})") from None
        if index.ntotal != len(rowids) or index.d != dims:
            raise IndexFileError(f"{path}: index holds {index.ntotal} vectors for {len(rowids)} rowids")
        params = AnnParams(header.get("m", 16), header.get("ef_construction", 64))
        return cls(dims, metric, dtype, params, _index=index), header["seq"], rowids


_HEADER_INTS = ("rowids_bytes", "payload_bytes", "crc32", "seq")


def _header(raw: bytes, path: Path) -> dict[str, Any]:
    """The parsed header, with every field ``load`` relies on present and of the right type:
    any damage (a flipped bit in a key or a value) is an ``IndexFileError`` and so a rebuild."""
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise IndexFileError(f"{path} has a corrupt header") from None
    if not isinstance(header, dict):
        raise IndexFileError(f"{path} has a corrupt header (not an object)")
    for key in _HEADER_INTS:
        value = header.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise IndexFileError(f"{path} has a corrupt header ({key}={value!r})")
    for key in ("m", "ef_construction"):
        value = header.get(key, 16)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise IndexFileError(f"{path} has a corrupt header ({key}={value!r})")
    return header


def fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX: the directory entry lives in the folder's own data)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
