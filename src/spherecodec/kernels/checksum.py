"""XXH64 (seed 0) of a byte array: the container's checksum.

The published algorithm (github.com/Cyan4973/xxHash, doc/xxhash_spec.md), reimplemented
here so that checking a chunk runs at memory speed inside a nogil kernel; tests compare it
with the reference implementation (the ``xxhash`` package). Each 8-byte word enters one of
four lanes through a bijection, so any change confined to one word always changes its
lane.
"""

import numpy as np
from numba import njit

_U = np.uint64
_P1 = _U(0x9E3779B185EBCA87)
_P2 = _U(0xC2B2AE3D27D4EB4F)
_P3 = _U(0x165667B19E3779F9)
_P4 = _U(0x85EBCA77C2B2AE63)
_P5 = _U(0x27D4EB2F165667C5)


@njit
def _rotl(x, r):
    return (x << _U(r)) | (x >> _U(64 - r))


@njit
def _read64(b, i):
    return (_U(b[i]) | (_U(b[i + 1]) << _U(8)) | (_U(b[i + 2]) << _U(16)) | (_U(b[i + 3]) << _U(24))
            | (_U(b[i + 4]) << _U(32)) | (_U(b[i + 5]) << _U(40)) | (_U(b[i + 6]) << _U(48))
            | (_U(b[i + 7]) << _U(56)))


@njit
def _round(acc, word):
    acc += word * _P2
    return _rotl(acc, 31) * _P1


@njit(nogil=True, cache=True)
def xxh64(b):
    """XXH64 with seed 0 of the uint8 array ``b``, as a uint64."""
    n = b.size
    i = 0
    if n >= 32:
        v1 = _P1 + _P2
        v2 = _P2
        v3 = _U(0)
        v4 = _U(0) - _P1
        while i + 32 <= n:
            v1 = _round(v1, _read64(b, i))
            v2 = _round(v2, _read64(b, i + 8))
            v3 = _round(v3, _read64(b, i + 16))
            v4 = _round(v4, _read64(b, i + 24))
            i += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h ^= _round(_U(0), v)
            h = h * _P1 + _P4
    else:
        h = _P5
    h += _U(n)
    while i + 8 <= n:
        h ^= _round(_U(0), _read64(b, i))
        h = _rotl(h, 27) * _P1 + _P4
        i += 8
    if i + 4 <= n:
        w = _U(b[i]) | (_U(b[i + 1]) << _U(8)) | (_U(b[i + 2]) << _U(16)) | (_U(b[i + 3]) << _U(24))
        h ^= w * _P1
        h = _rotl(h, 23) * _P2 + _P3
        i += 4
    while i < n:
        h ^= _U(b[i]) * _P5
        h = _rotl(h, 11) * _P1
        i += 1
    h ^= h >> _U(33)
    h *= _P2
    h ^= h >> _U(29)
    h *= _P3
    h ^= h >> _U(32)
    return h
