"""The approximate (HNSW) index of one embedded collection, and its derived file on disk.

FAISS ``IndexHNSWFlat`` won the embedded store's benchmark (``benchmarks/search.py``) against
hnswlib and usearch. Its labels are *positions* 0..n-1; the embedded store keeps the position →
SQLite rowid mapping and passes tombstones and metadata filters as a bitmap selector, so FAISS
never needs removals.

The collection's ``dtype`` is the type the graph really holds (``benchmarks/compression.py``
measures each one):

==========  ===========================================  ============================
dtype       FAISS index                                  bytes per vector (codes)
==========  ===========================================  ============================
float32     ``IndexHNSWFlat``                            4 x dims
float16     ``IndexHNSWSQ`` (``QT_fp16``)                2 x dims
int8        ``IndexHNSWSQ`` (``QT_8bit``: per-dimension  dims
            min/max trained on the first batch added)
binary      ``IndexBinaryIVF`` over sign bits (Hamming): dims / 8 (+ 8 for the id)
            no graph (see ``binary_lists``)
==========  ===========================================  ============================

plus, for the HNSW indexes, the graph itself (~150 bytes per vector at M=16, the same for every
dtype): a graph would be 3/4 of a binary index, so binary uses inverted lists instead. A quantised
index only finds *candidates*: ``search`` takes ``rescore_factor(dtype) x k`` of them and ranks
those by their exact float32 scores, from the float32 rows the caller passes (``float_rows``;
the embedded store keeps them), so the scores a caller sees are always exact.

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
import math
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependency, StoreError
from ..types import Matrix, Metric, StorageDtype

MAGIC = b"SEMKIT-ANN\x01"
FORMAT = 1

RESCORE_FACTOR: dict[StorageDtype, int] = {"float32": 1, "float16": 2, "int8": 2, "binary": 20}
"""Candidates a quantised index fetches per wanted hit, then rescored with float32.

Measured on 30k real MiniLM vectors (``benchmarks/compression.py``, recall@10 after rescoring,
ef 64): int8 x2 keeps recall at float32's level; binary (384 sign bits) needs x20 with the IVF
probing a third of its lists (x10 gets ~0.95): Hamming distances are coarse (0..dims), many
candidates tie, and rescoring 200 rows costs ~0.03 ms.
"""
IVF_PROBE_FRACTION = 1 / 3
"""Share of a binary index's lists a query scans. k-means over sign bits partitions MiniLM
vectors poorly (a true neighbour is often in a far list). Recall@10 after x20 rescoring on real
MiniLM vectors, two samples of held-out queries: 1/8 of the lists 0.93 at 30k; 1/4 0.951-0.954
at 10k/30k (too close to 0.95), 0.967 at 100k; 1/3 0.959-0.965 at 10k/30k, 0.977 at 100k
(recall rises with the collection at a fixed share)."""
IVF_MIN_PER_LIST = 39
"""FAISS's k-means wants at least 39 training points per centroid; fewer lists below that."""
IVF_TRAIN_PER_LIST = 64
"""Training sample per list: k-means time grows with sample x lists (1,000 lists on 64k codes:
~5 s); more points per list did not raise recall."""


def binary_lists(n: int) -> int:
    """Inverted lists for ``n`` sign-bit codes: ~sqrt(n) (173 at 30k, 1,000 at 1M), fewer when
    there are too few rows to train them. The same rule serves pgvector's ``lists``."""
    return max(1, min(round(n ** 0.5), n // IVF_MIN_PER_LIST))


def binary_probes(lists: int) -> int:
    """Lists one query scans (``nprobe`` / ``ivfflat.probes``)."""
    return max(1, math.ceil(lists * IVF_PROBE_FRACTION))
RESCORE_MIN_EXTRA = 10
"""At least k + 10 candidates whatever the factor: small k gains the most from a few more."""

FloatRows = np.ndarray | Callable[[np.ndarray], np.ndarray]
"""Where a quantised index reads float32 rows to rescore: an array indexed by position (the
embedded store's matrix), or a function from positions to their rows."""


class IndexFileError(StoreError):
    """The index file is missing, torn, corrupt or for other data; rebuild it from SQLite."""


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is part of the store extra
        raise MissingDependency("faiss-cpu", "store", "the embedded store's HNSW index") from exc
    return faiss


def rescore_candidates(dtype: StorageDtype, k: int) -> int:
    """How many candidates a ``dtype`` index fetches for ``k`` hits (``k`` for float32)."""
    factor = RESCORE_FACTOR[dtype]
    return k if factor == 1 else max(factor * k, k + RESCORE_MIN_EXTRA)


def sign_bits(vectors: Matrix, bits: int) -> np.ndarray:
    """One bit per dimension, set where the value is positive, packed little-endian into
    ``bits // 8`` bytes per row (dimensions beyond ``dims`` stay 0, so they never differ)."""
    x = np.asarray(vectors, dtype=np.float32)
    positive = np.zeros((len(x), bits), dtype=bool)
    positive[:, : x.shape[1]] = x > 0
    return np.packbits(positive, axis=1, bitorder="little")


@dataclass(frozen=True)
class AnnParams:
    m: int = 16
    ef_construction: int = 64

    def to_json(self) -> dict[str, int]:
        return {"m": self.m, "ef_construction": self.ef_construction}


class AnnIndex:
    """An HNSW graph over positions 0..ntotal-1. Scores are higher-is-better."""

    _scratch: tuple[np.ndarray, np.ndarray, Any, Any] | None = None
    """One query's output arrays and their FAISS pointers, reused by ``search(scratch=True)``."""
    _selector: tuple[np.ndarray, int, Any, Any] | None = None
    """``(allowed, ef, SearchParametersHNSW, IDSelectorBitmap)`` of the last filtered search."""
    _borrowed: tuple[np.ndarray, Any] | None = None
    """``(rows, IndexFlat)`` while FAISS's float32 storage is a view of the store's rows."""
    _ivf_allowed: tuple[np.ndarray, np.ndarray, float] | None = None
    """``(allowed, mask, share allowed)`` of the last filtered binary search."""

    def __init__(self, dims: int, metric: Metric, dtype: StorageDtype = "float32",
                 params: AnnParams | None = None, *, _index: Any = None) -> None:
        faiss = _faiss()
        self.dims = dims
        self.metric = metric
        self.dtype = dtype
        self.params = params or AnnParams()
        self._l2 = metric == "l2"
        self._binary = dtype == "binary"
        self._bits = -(-dims // 8) * 8  # FAISS binary codes are whole bytes
        if _index is not None:
            self.index = _index
        else:
            fmetric = faiss.METRIC_L2 if self._l2 else faiss.METRIC_INNER_PRODUCT
            if dtype in ("float16", "int8"):
                qtype = faiss.ScalarQuantizer.QT_fp16 if dtype == "float16" else faiss.ScalarQuantizer.QT_8bit
                self.index = faiss.IndexHNSWSQ(dims, qtype, self.params.m, fmetric)
            elif self._binary:
                # Sign bits compared by Hamming distance approximate the angle between vectors
                # whatever the metric; the exact metric ranks the candidates (rescoring). The
                # lists are trained by the first ``add`` (``binary_lists`` of its size).
                self.index = _binary_ivf(self._bits, 1)
            else:
                self.index = faiss.IndexHNSWFlat(dims, self.params.m, fmetric)
            if not self._binary:
                self.index.hnsw.efConstruction = self.params.ef_construction
        self._hnsw: Any = None if self._binary else self.index.hnsw  # binary: inverted lists, no graph
        self._swig_ptr = faiss.swig_ptr
        self._omp_get_max_threads, self._omp_set_num_threads = faiss.omp_get_max_threads, faiss.omp_set_num_threads
        self._ef = -1
        self._plain = dtype == "float32" and not self._l2
        self.needs_vectors = False
        """Loaded from a graph-only file: call ``attach_vectors`` before searching or adding."""

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def quantized(self) -> bool:
        """Whether the graph holds fewer bits than float32 (and so rescores its candidates)."""
        return self.dtype != "float32"

    @property
    def code_bytes(self) -> int:
        """Bytes the index stores per vector for the vector itself (the graph comes on top)."""
        if self._binary:
            return int(self.index.code_size)
        if self.needs_vectors:  # float32 rows not attached yet
            return 4 * self.dims
        return int(_faiss().downcast_index(self.index.storage).code_size)

    def memory_bytes(self) -> int:
        """The index's size as FAISS serialises it: codes + graph, what it holds in memory."""
        if self.needs_vectors:
            return len(self._serialize(graph_only=True)) + self.ntotal * self.code_bytes
        return len(self._serialize())

    def add(self, vectors: Matrix) -> None:
        """Append vectors as positions ntotal..ntotal+len-1 (already normalised for cosine)."""
        if len(vectors) == 0:
            return
        if self._borrowed is not None:
            self._own_vectors()  # FAISS appends to its storage: borrowed rows cannot grow
        if self._binary:
            codes = sign_bits(vectors, self._bits)
            total = self.ntotal + len(codes)
            if not self.index.is_trained or binary_lists(total) >= 2 * self.index.nlist:
                # Untrained, or grown ~4x since the lists were trained: too few lists would make
                # every query scan a third of a much larger index. Retrain from the codes the
                # index holds (they are exactly the sign bits) plus the new ones.
                self._retrain_binary(np.concatenate([self._binary_codes(), codes]))
            else:
                self.index.add(codes)
            return
        if not self.index.is_trained:
            self.index.train(vectors)  # int8 scalar quantiser: per-dimension ranges
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def _binary_codes(self) -> np.ndarray:
        """Every code the binary IVF holds, in position order."""
        faiss, ivf = _faiss(), self.index
        size = int(ivf.code_size)
        codes = np.zeros((self.ntotal, size), dtype=np.uint8)
        lists = ivf.invlists
        for i in range(ivf.nlist if self.ntotal else 0):
            n = lists.list_size(i)
            if n:
                ids = faiss.rev_swig_ptr(lists.get_ids(i), n)
                codes[ids] = faiss.rev_swig_ptr(lists.get_codes(i), n * size).reshape(n, size)
        return codes

    def _retrain_binary(self, codes: np.ndarray) -> None:
        nlist = binary_lists(len(codes))
        ivf = _binary_ivf(self._bits, nlist)
        step = max(1, len(codes) // (IVF_TRAIN_PER_LIST * nlist))
        ivf.train(np.ascontiguousarray(codes[::step]))
        ivf.add(codes)
        self.index = ivf

    def search(self, queries: Matrix, k: int, ef: int, allowed: np.ndarray | None = None,
               float_rows: FloatRows | None = None, *, scratch: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-k positions and scores per query; position -1 pads when fewer were found.

        ``allowed`` is a bitmap (``np.packbits(mask, bitorder="little")``) over positions:
        excluded positions are skipped during the graph search itself. A quantised index
        fetches ``rescore_candidates(dtype, k)`` candidates and, given ``float_rows``, returns
        them ranked by their exact float32 scores; without it, its own approximate scores.

        ``scratch=True`` (one query): the answer may come in arrays the index reuses, valid
        until its next search; for a caller that reads them at once under its own lock (the
        embedded store), it saves two allocations per query.
        """
        if allowed is None and self._plain:
            # The hot path (float32 inner product, nothing excluded): FAISS straight away.
            n = len(queries)
            if ef != self._ef:
                self._hnsw.efSearch = self._ef = ef
            ptr = self._swig_ptr
            if scratch and n == 1:
                buffers = self._scratch
                if buffers is None or buffers[0].shape[1] != k:
                    dist, found = np.empty((1, k), dtype=np.float32), np.empty((1, k), dtype=np.int64)
                    buffers = self._scratch = (dist, found, ptr(dist), ptr(found))
                self.index.search_c(1, ptr(queries), k, buffers[2], buffers[3])
                return buffers[0], buffers[1]
            dist = np.empty((n, k), dtype=np.float32)
            found = np.empty((n, k), dtype=np.int64)
            self.index.search_c(n, ptr(queries), k, ptr(dist), ptr(found))
            return dist, found
        fetch = rescore_candidates(self.dtype, k) if float_rows is not None else k
        scores, pos = self._graph_search(queries, fetch, max(ef, fetch), allowed)
        if float_rows is None or not self.quantized:
            return scores, pos
        return self._rescore(queries, pos, float_rows, k)

    def _graph_search(self, queries: Matrix, k: int, ef: int,
                      allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        n = len(queries)
        dist: np.ndarray
        if self._binary:
            queries = sign_bits(queries, self._bits)
            dist = np.empty((n, k), dtype=np.int32)  # Hamming distances
        else:
            dist = np.empty((n, k), dtype=np.float32)
        # search_c directly: FAISS's Python wrapper re-validates and re-copies per call, a
        # visible share of a 0.1 ms query. Callers pass C-contiguous float32 (the store does).
        pos = np.empty((n, k), dtype=np.int64)
        # FAISS's binary HNSW opens an OpenMP team even for one query (the float HNSW does not):
        # on a busy machine its threads spin-wait for each other, measured at 15-30 ms instead
        # of 0.3 ms. One query runs on this thread alone (the setting is per calling thread).
        single = self._binary and n == 1
        threads = self._omp_get_max_threads() if single else 0
        if single:
            self._omp_set_num_threads(1)
        try:
            (self._ivf_search_c if self._binary else self._search_c)(n, queries, k, ef, allowed, dist, pos)
        finally:
            if single:
                self._omp_set_num_threads(threads)
        if self._binary:
            scores = -dist.astype(np.float32)
            scores[pos < 0] = -np.inf
        elif self._l2:
            scores = -np.sqrt(np.maximum(dist, 0.0))
            scores[pos < 0] = -np.inf
        else:
            scores = dist
        return scores, pos

    def _search_c(self, n: int, queries: np.ndarray, k: int, ef: int, allowed: np.ndarray | None,
                  dist: np.ndarray, pos: np.ndarray) -> None:
        ptr = self._swig_ptr
        if allowed is None:
            if ef != self._ef:  # a SWIG attribute write costs as much as the id mapping
                self._hnsw.efSearch = self._ef = ef
            self.index.search_c(n, ptr(queries), k, ptr(dist), ptr(pos))
        else:
            # The store passes the same tombstone bitmap (a cached array) until something is
            # deleted: its FAISS parameters are built once, not per query (two SWIG objects).
            cached = self._selector
            if cached is None or cached[0] is not allowed or cached[1] != ef:
                faiss = _faiss()
                params = faiss.SearchParametersHNSW()
                params.efSearch = ef
                selector = faiss.IDSelectorBitmap(len(allowed) * 8, ptr(allowed))
                params.sel = selector
                # holding `allowed` and `selector` keeps the memory FAISS points to alive
                cached = self._selector = (allowed, ef, params, selector)
            self.index.search_c(n, ptr(queries), k, ptr(dist), ptr(pos), cached[2])

    def _ivf_search_c(self, n: int, codes: np.ndarray, k: int, ef: int, allowed: np.ndarray | None,
                      dist: np.ndarray, pos: np.ndarray) -> None:
        """The binary IVF's search (``ef`` has no meaning for it: ``binary_probes`` of the lists)."""
        ivf, ptr = self.index, self._swig_ptr
        probes = binary_probes(ivf.nlist)
        if ivf.nprobe != probes:
            ivf.nprobe = probes
        if allowed is None:
            ivf.search_c(n, ptr(codes), k, ptr(dist), ptr(pos))
            return
        # FAISS 1.15's IndexBinaryIVF refuses an IDSelector: fetch more candidates, in
        # proportion to the share the filter/tombstones exclude, and keep the allowed ones. A
        # short answer (the filter's rows lie outside the probed lists) makes the embedded
        # store answer exactly, as for a graph search that ran dry.
        cached = self._ivf_allowed
        if cached is None or cached[0] is not allowed:
            mask = np.unpackbits(allowed, bitorder="little").view(bool)
            cached = self._ivf_allowed = (allowed, mask, max(float(mask[: self.ntotal].mean()), 1e-6))
        mask, share = cached[1], cached[2]
        wide = int(min(max(self.ntotal, 1), k + 2 * k / share))
        wdist = np.empty((n, wide), dtype=np.int32)
        wpos = np.empty((n, wide), dtype=np.int64)
        ivf.search_c(n, ptr(codes), wide, ptr(wdist), ptr(wpos))
        keep = (wpos >= 0) & mask[np.maximum(wpos, 0)]
        pos.fill(-1)
        dist.fill(np.iinfo(np.int32).max)
        for r in range(n):
            chosen = np.flatnonzero(keep[r])[:k]
            pos[r, : len(chosen)] = wpos[r, chosen]
            dist[r, : len(chosen)] = wdist[r, chosen]

    def _rescore(self, queries: Matrix, candidates: np.ndarray, float_rows: FloatRows,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` candidates of each query by their exact float32 score."""
        n, m = candidates.shape
        k = min(k, m)
        read = float_rows if callable(float_rows) else float_rows.__getitem__
        out_scores = np.full((n, k), -np.inf, dtype=np.float32)
        out_pos = np.full((n, k), -1, dtype=np.int64)
        # Bound the gathered block (queries x candidates x dims floats) to ~16 MB.
        block = max(1, (4 << 20) // max(m * self.dims, 1))
        for start in range(0, n, block):
            cand = candidates[start:start + block]
            found = cand >= 0
            rows = np.asarray(read(np.where(found, cand, 0).ravel()), dtype=np.float32)
            rows = rows.reshape(len(cand), m, self.dims)
            q = np.asarray(queries[start:start + block], dtype=np.float32)
            exact = -np.linalg.norm(rows - q[:, None, :], axis=2) if self._l2 else np.einsum("qmd,qd->qm", rows, q)
            exact = np.where(found, exact, -np.inf).astype(np.float32)
            order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            best = np.take_along_axis(exact, order, axis=1)
            out_scores[start:start + block] = best
            out_pos[start:start + block] = np.where(np.isfinite(best), np.take_along_axis(cand, order, axis=1), -1)
        return out_scores, out_pos

    def _serialize(self, graph_only: bool = False) -> np.ndarray:
        faiss = _faiss()
        if self._binary:
            return faiss.serialize_index_binary(self.index)
        if not graph_only:
            return faiss.serialize_index(self.index)
        writer = faiss.VectorIOWriter()
        faiss.write_index(self.index, writer, faiss.IO_FLAG_SKIP_STORAGE)
        return faiss.vector_to_array(writer.data)

    @property
    def _vectors_outside(self) -> bool:
        """A float32 graph's vectors are the store's float32 rows: the file keeps the graph
        only and ``attach_vectors`` puts the rows back on load (float32 is not kept twice on
        disk). Quantised codes are not in SQLite, so those files keep them."""
        return self.dtype == "float32"

    def attach_vectors(self, vectors: Matrix, *, borrow: bool = False) -> None:
        """Give a graph loaded without its vectors (``needs_vectors``) the float32 rows of its
        positions 0..ntotal-1, in position order.

        ``borrow=True``: FAISS's storage becomes a view of the caller's rows instead of a copy
        (the embedded store's matrix: one copy of every vector in memory, and opening a store
        skips copying them all). The index keeps a reference to the rows, which must not change
        while it does (the store's rows never do: positions are append-only); the first ``add``
        copies them into storage of the index's own, since a view cannot grow."""
        faiss = _faiss()
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(rows) != self.ntotal:
            raise StoreError(f"the index has {self.ntotal} positions but {len(rows)} vectors were given")
        flat = faiss.IndexFlat(self.dims, faiss.METRIC_L2 if self._l2 else faiss.METRIC_INNER_PRODUCT)
        # Older FAISS keeps the codes in a plain std::vector, which cannot be a view: copy there.
        if borrow and len(rows) and hasattr(flat.codes, "is_owned"):
            # A non-owned MaybeOwnedVector, as FAISS's own zero-copy readers make: it frees nothing.
            codes, ptr = flat.codes, self._swig_ptr(rows.reshape(-1).view(np.uint8))
            codes.is_owned = False
            codes.view_data = codes.c_ptr = ptr
            codes.view_size = codes.c_size = rows.nbytes
            flat.ntotal = len(rows)
            # Python owns this IndexFlat (so never the HNSW index, own_fields False): it is freed
            # with this object or when ``add`` replaces it, never while the rows are in use.
            self._borrowed = (rows, flat)
            self.index.storage = flat
            self.index.own_fields = False
        else:
            flat.add(rows)
            flat.this.disown()  # the HNSW index owns (and frees) its storage
            self.index.storage = flat
            self.index.own_fields = True
            # A borrowed view's IndexFlat is freed only now: the HNSW index no longer points to it.
            self._borrowed = None
        self.needs_vectors = False

    def _own_vectors(self) -> None:
        """Replace borrowed storage (``attach_vectors(borrow=True)``) with a copy of its own."""
        if self._borrowed is None:
            return
        self.attach_vectors(self._borrowed[0])

    # --- the derived file -----------------------------------------------------------------

    def save(self, path: Path, *, seq: int, rowids: np.ndarray, tag: dict[str, Any]) -> None:
        """Write atomically: temp file, fsync, rename over ``path``, fsync the folder."""
        rowids = np.ascontiguousarray(rowids, dtype="<i8")
        if len(rowids) != self.ntotal:
            raise StoreError(f"index has {self.ntotal} positions but {len(rowids)} rowids")
        payload = self._serialize(graph_only=self._vectors_outside)
        crc = zlib.crc32(payload.data, zlib.crc32(rowids.data))
        header = json.dumps({
            "format": FORMAT, "seq": seq, "positions": len(rowids), "rowids_bytes": rowids.nbytes,
            "payload_bytes": int(payload.nbytes), "crc32": crc, "dims": self.dims,
            "metric": self.metric, "dtype": self.dtype, **self.params.to_json(), **tag,
            "vectors": "outside" if self._vectors_outside else "inside",
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
        read = faiss.deserialize_index_binary if dtype == "binary" else faiss.deserialize_index
        # Files written before "vectors" existed hold them inside: they load as they are.
        outside = header.get("vectors") == "outside"
        try:
            payload = np.frombuffer(body[rbytes:], dtype=np.uint8)
            index = read(payload, faiss.IO_FLAG_SKIP_STORAGE) if outside else read(payload)
        except RuntimeError as exc:
            raise IndexFileError(f"{path}: FAISS could not read the index ({exc})") from None
        if dtype == "binary" and not isinstance(index, faiss.IndexBinaryIVF):
            # Earlier versions kept binary collections in an IndexBinaryHNSW (a graph 3x the codes).
            raise IndexFileError(f"{path} holds an older binary index ({type(index).__name__}); "
                                 "it is rebuilt as inverted lists")
        index_dims = -(-dims // 8) * 8 if dtype == "binary" else dims  # binary: bits, whole bytes
        if index.ntotal != len(rowids) or index.d != index_dims:
            raise IndexFileError(f"{path}: index holds {index.ntotal} vectors for {len(rowids)} rowids")
        params = AnnParams(header.get("m", 16), header.get("ef_construction", 64))
        loaded = cls(dims, metric, dtype, params, _index=index)
        loaded.needs_vectors = outside
        return loaded, header["seq"], rowids


def _binary_ivf(bits: int, nlist: int) -> Any:
    """An empty ``IndexBinaryIVF`` that owns its (flat, Hamming) coarse quantiser."""
    faiss = _faiss()
    quantizer = faiss.IndexBinaryFlat(bits)
    ivf = faiss.IndexBinaryIVF(quantizer, bits, nlist)
    quantizer.this.disown()
    ivf.own_fields = True
    return ivf


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
