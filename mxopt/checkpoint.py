"""Saving optimizer states without pickle.

A checkpoint is bytes laid out as::

    MAGIC | header length (8 bytes, little-endian) | header (UTF-8 JSON) | array data | SHA-256

The header names the optimizer, the update counters and, for every index,
its state arrays (name, dtype, shape, where its bytes are). Loading only
parses JSON and copies bytes into new float arrays, so a checkpoint can
never run code; the digest rejects any corrupted byte, and the header is
checked against the optimizer it is loaded into.
"""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

from . import _arrays
from .optimizer import _check_index
from .state import State

MAGIC = b"MXOPT-STATES\x00v1\n"
_DTYPES = {"<f2": np.float16, "<f4": np.float32, "<f8": np.float64}
_DIGEST = 32


def dumps(optimizer, states):
    """Serialise ``states`` (index -> State) and the counters of ``optimizer``."""
    entries, chunks, offset = [], [], 0
    for index, state in states.items():
        arrays = []
        for arr in state.arrays:
            host = np.ascontiguousarray(_arrays.to_host(arr))
            raw = host.astype(host.dtype.newbyteorder("<"), copy=False).tobytes()
            arrays.append({"dtype": host.dtype.newbyteorder("<").str, "shape": list(host.shape),
                           "offset": offset, "nbytes": len(raw)})
            chunks.append(raw)
            offset += len(raw)
        entries.append({"index": index, "names": list(state.names), "arrays": arrays})
    header = json.dumps({
        "optimizer": type(optimizer).__name__,
        "num_update": optimizer.num_update,
        "index_update_count": [[k, v] for k, v in optimizer._index_update_count.items()],
        "states": entries,
    }, sort_keys=True).encode()
    body = MAGIC + struct.pack("<Q", len(header)) + header + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def _fail(why):
    raise ValueError(f"not a valid mxopt checkpoint: {why}")


def loads(data, optimizer):
    """Parse a checkpoint for ``optimizer``: (states, index_update_count, num_update).

    Raises ValueError for anything corrupted, truncated, or made by another
    optimizer; nothing is returned half-built.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(MAGIC):
        _fail("wrong magic bytes (not made by get_states)")
    if len(data) < len(MAGIC) + 8 + _DIGEST:
        _fail("truncated")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        _fail("checksum mismatch (the data is corrupted or truncated)")
    (hlen,) = struct.unpack_from("<Q", body, len(MAGIC))
    start = len(MAGIC) + 8
    if start + hlen > len(body):
        _fail("header length out of range")
    try:
        header = json.loads(body[start:start + hlen].decode())
        payload = memoryview(body)[start + hlen:]
        if header["optimizer"] != type(optimizer).__name__:
            raise ValueError(f"checkpoint is for {header['optimizer']}, not {type(optimizer).__name__}")
        counts = {_check_index(k): int(v) for k, v in header["index_update_count"]}
        num_update = int(header["num_update"])
        states = {}
        for entry in header["states"]:
            index = _check_index(entry["index"])
            names = tuple(entry["names"])
            allowed = optimizer.rule.state_names
            if names not in (allowed, allowed + ("weight32",)):
                raise ValueError(f"state names {names} do not match {type(optimizer).__name__}'s {allowed}")
            arrays = []
            for spec in entry["arrays"]:
                dtype = np.dtype(_DTYPES[spec["dtype"]])
                shape = tuple(int(s) for s in spec["shape"])
                off, nbytes = int(spec["offset"]), int(spec["nbytes"])
                if min(shape, default=0) < 0 or nbytes != int(np.prod(shape)) * dtype.itemsize:
                    raise ValueError(f"array size mismatch at index {index!r}")
                if off < 0 or off + nbytes > len(payload):
                    raise ValueError(f"array data out of range at index {index!r}")
                arrays.append(np.frombuffer(payload[off:off + nbytes], dtype).reshape(shape).copy())
            if len(arrays) != len(names):
                raise ValueError(f"{len(names)} names but {len(arrays)} arrays at index {index!r}")
            states[index] = State(header["optimizer"], index, names, arrays)
    except ValueError as e:
        _fail(str(e))
    except (KeyError, TypeError, UnicodeDecodeError, AttributeError) as e:
        _fail(f"malformed header ({type(e).__name__}: {e})")
    return states, counts, num_update
