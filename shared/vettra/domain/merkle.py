"""Merkle tree hashing and proofs for the audit log, RFC 9162 (Certificate Transparency 2.0) §2.1.

- §2.1.1 Merkle Tree Hash: SHA-256; a leaf hashes as ``SHA-256(0x00 || data)``, an inner
  node as ``SHA-256(0x01 || left || right)``, the empty tree as ``SHA-256("")``; a tree of
  ``n`` leaves splits at ``k``, the largest power of two smaller than ``n``.
- §2.1.3.1 inclusion proof generation, ``PATH(m, D[n])``; §2.1.3.2 its verification.
- §2.1.4.1 consistency proof generation, ``PROOF(m, D[n])``; §2.1.4.2 its verification.

Verifiers return ``None`` or raise :class:`MerkleError` ("expected X, got Y", hashes in
hex). They check in a fixed order so every implementation (this one, the Rust verifier)
rejects a bad input for the same ``reason``: argument types and hash lengths, then sizes
and index, then proof length, then the recomputed root(s).

:class:`CompactRange` keeps the right edge of a growing tree (O(log n) hashes) so a
sequencer keeps the root current without re-reading the log; :class:`MerkleTree` builds
proofs over any sliceable sequence of leaf hashes (a list, or a store-backed view),
memoising the roots of perfect subtrees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from .errors import VerificationError

HASH_SIZE = 32
MAX_TREE_SIZE = 2**64 - 1  # tree sizes and leaf indices are uint64 in RFC 9162's §4 structures
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Leaves hashed together level by level before the per-subtree bookkeeping kicks in (a power
# of two): large enough to amortise Python's loop overhead, small enough to stay in cache.
CHUNK_SIZE = 1024

_sha256 = hashlib.sha256


class MerkleError(VerificationError):
    """A Merkle proof, root or frontier did not verify; ``reason`` is a stable code.

    Reasons, in the order verifiers check them: ``bad-hash``, ``bad-size``, ``bad-index``,
    ``proof-length``, ``root-mismatch``, ``bad-frontier``.
    """

    slug = "merkle-verification-failed"
    title = "Merkle proof verification failed"

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}", extra={"reason": reason})
        self.reason = reason


def leaf_hash(data: bytes) -> bytes:
    """§2.1.1: ``MTH({d}) = SHA-256(0x00 || d)``."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """§2.1.1: ``SHA-256(0x01 || left || right)``."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _level_root(level: Sequence[bytes]) -> bytes:
    """MTH of a non-empty short list, pairing neighbours level by level.

    A lone last node moves up a level unchanged; that builds exactly the §2.1.1 tree,
    because the split always gives the left side a perfect subtree.
    """
    sha256, prefix = _sha256, NODE_PREFIX
    while len(level) > 1:
        paired = [
            sha256(prefix + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _fold_right(subtree_roots: list[bytes]) -> bytes:
    """Join adjacent subtrees of strictly decreasing size: the tree's right border."""
    acc = subtree_roots[-1]
    for h in reversed(subtree_roots[:-1]):
        acc = node_hash(h, acc)
    return acc


class CompactRange:
    """The right edge ("frontier") of the tree over leaves ``[0, size)``.

    One hash per set bit of ``size``: the roots of the perfect subtrees the tree
    decomposes into, largest (leftmost) first. ``append`` is amortised O(1) hashes and
    ``root`` O(log n), so memory stays O(log n) however long the log grows.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()):
        if type(size) is not int or size < 0:
            raise MerkleError("bad-frontier", f"expected a size >= 0, got {size!r}")
        if len(hashes) != size.bit_count():
            raise MerkleError(
                "bad-frontier",
                f"expected {size.bit_count()} hashes for size {size}, got {len(hashes)}",
            )
        for h in hashes:
            _check_hash("frontier hash", h, reason="bad-frontier")
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf's hash; merge equal-sized subtrees as a binary counter carries."""
        _check_hash("leaf hash", leaf_hash, reason="bad-hash")
        self._push(bytes(leaf_hash), 0)

    def append_leaf_data(self, data: bytes) -> None:
        """``append(leaf_hash(data))`` for data the caller produced itself (no checks).

        The audit verifier's hot loop: one call, no validation of a hash it just
        computed, the carry loop inlined.
        """
        hashes, sha256 = self._hashes, _sha256
        hashes.append(sha256(LEAF_PREFIX + data).digest())
        carry = self._size
        self._size = carry + 1
        while carry & 1:
            right = hashes.pop()
            hashes[-1] = sha256(NODE_PREFIX + hashes[-1] + right).digest()
            carry >>= 1

    def copy(self) -> CompactRange:
        """An independent copy (the hashes are immutable bytes; no re-validation)."""
        twin = CompactRange.__new__(CompactRange)
        twin._size, twin._hashes = self._size, list(self._hashes)
        return twin

    def append_completing(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """``append``, returning the perfect subtrees this leaf completes above the leaves.

        Each is ``(level, index, hash)``: the MTH of leaves ``[index * 2**level,
        (index + 1) * 2**level)``. A sequencer stores them as it goes, so proofs can be
        served from O(log n) stored nodes (see :mod:`vettra.domain.merkle_nodes`).
        """
        _check_hash("leaf hash", leaf_hash, reason="bad-hash")
        hashes, index = self._hashes, self._size
        hashes.append(bytes(leaf_hash))
        self._size = index + 1
        completed, carry, level = [], index, 0
        while carry & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            carry, level = carry >> 1, level + 1
            completed.append((level, index >> level, hashes[-1]))
        return completed

    def _push(self, subtree_root: bytes, height: int) -> None:
        # Push a perfect subtree of 2**height leaves, aligned at ``size``.
        self._hashes.append(subtree_root)
        carry = self._size >> height
        self._size += 1 << height
        while carry & 1:
            right = self._hashes.pop()
            self._hashes[-1] = node_hash(self._hashes[-1], right)
            carry >>= 1

    def root(self) -> bytes:
        """§2.1.1 MTH of the leaves so far."""
        return _fold_right(self._hashes) if self._hashes else EMPTY_ROOT

    def to_dict(self) -> dict[str, Any]:
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_dict(cls, data: Any) -> CompactRange:
        try:
            return cls(data["size"], [bytes.fromhex(h) for h in data["hashes"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise MerkleError(
                "bad-frontier",
                f"expected {{'size', 'hashes'}} with hex hashes, got {type(exc).__name__}: {exc}",
            ) from exc


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """§2.1.1 MTH(D[n]) of a list of leaf hashes: iterative, O(n) time, O(log n) extra memory."""
    frontier, n = CompactRange(), len(hashes)
    whole = n - n % CHUNK_SIZE
    for start in range(0, whole, CHUNK_SIZE):
        frontier._push(_level_root(hashes[start : start + CHUNK_SIZE]), CHUNK_SIZE.bit_length() - 1)
    # The tail is smaller than every frontier subtree, so it is the rightmost piece.
    tail = [_level_root(hashes[whole:n])] if whole < n else []
    return _fold_right(frontier._hashes + tail) if n else EMPTY_ROOT


class MerkleTree:
    """Roots and proofs over a sliceable sequence of leaf hashes (``len`` and ``[a:b]``).

    The roots of perfect subtrees wider than :data:`CHUNK_SIZE` are memoised, so after
    the first proof over a tree the next ones cost O(CHUNK_SIZE * log n) hashes; the memo
    holds at most ``2 n / CHUNK_SIZE`` hashes, and relies on the log being append-only
    (entries below ``len`` never change). Bad arguments raise ``ValueError``: asking
    for a proof the tree cannot have is a caller's bug, not a failed verification.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]):
        self._leaves = leaf_hashes
        self._memo: dict[tuple[int, int], bytes] = {}

    def _root(self, start: int, end: int) -> bytes:
        n = end - start
        if n <= CHUNK_SIZE:
            return _level_root(self._leaves[start:end])
        perfect = n & (n - 1) == 0
        if perfect and (start, end) in self._memo:
            return self._memo[start, end]
        k = _split(n)  # recursion depth is log2(n), at most 64
        root = node_hash(self._root(start, start + k), self._root(start + k, end))
        if perfect:
            self._memo[start, end] = root
        return root

    def _check(self, what: str, *bounds: int) -> None:
        if sorted((0, *bounds, len(self._leaves))) != [0, *bounds, len(self._leaves)]:
            raise ValueError(f"expected 0 <= {what} <= {len(self._leaves)} leaves, got {bounds}")

    def root(self, size: int | None = None) -> bytes:
        size = len(self._leaves) if size is None else size
        self._check("size", size)
        return self._root(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """§2.1.3.1 PATH(index, D[size])."""
        self._check("index < size", index, index + 1, size)
        return [self._root(a, b) for a, b in _inclusion_ranges(index, size)]

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """§2.1.4.1 PROOF(old_size, D[new_size])."""
        self._check("old size <= new size", old_size, new_size)
        return [self._root(a, b) for a, b in _consistency_ranges(old_size, new_size)]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PATH(index, D[size]) (§2.1.3.1), leaf first: the RFC's
    recursion walked from the root down, taking the half that does not hold ``index``."""
    ranges, start, end = [], 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return ranges[::-1]


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges of PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (§2.1.4.1), leaf first; none
    if m is 0 or n. Within ``D[start:end]`` the RFC's m is ``old_size - start``."""
    if old_size in (0, new_size):
        return []
    ranges, start, end, complete = [], 0, new_size, True
    while old_size != end:
        k = _split(end - start)
        if old_size <= start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, complete = start + k, False
    if not complete:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        ranges.append((start, end))
    return ranges[::-1]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """§2.1.3.1 PATH(index, D[size]) over ``leaf_hashes[:size]``."""
    return MerkleTree(leaf_hashes).inclusion_proof(index, size)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """§2.1.4.1 PROOF(old_size, D[new_size]) over ``leaf_hashes[:new_size]``."""
    return MerkleTree(leaf_hashes).consistency_proof(old_size, new_size)


def _check_hash(name: str, value: Any, *, reason: str = "bad-hash") -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        got = (
            f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
        )
        raise MerkleError(reason, f"{name}: expected {HASH_SIZE} bytes, got {got}")


def _check_proof(proof: Any) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Sequence):
        raise MerkleError(
            "bad-hash", f"proof: expected a sequence of hashes, got {type(proof).__name__}"
        )
    for i, h in enumerate(proof):
        _check_hash(f"proof[{i}]", h)
    return [bytes(h) for h in proof]


def _check_int(name: str, value: Any, reason: str) -> None:
    if type(value) is not int or not 0 <= value <= MAX_TREE_SIZE:
        raise MerkleError(reason, f"{name}: expected an integer in [0, 2**64), got {value!r}")


def _check_length(path: list[bytes], ranges: list[tuple[int, int]]) -> None:
    # Checked up front, this stands in for the RFC's "sn is 0" tests during and after the loop.
    if len(path) != len(ranges):
        raise MerkleError("proof-length", f"expected {len(ranges)} hashes, got {len(path)}")


def _check_root(which: str, expected: bytes, got: bytes) -> None:
    if got != expected:
        raise MerkleError("root-mismatch", f"{which}: expected {expected.hex()}, got {got.hex()}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """§2.1.3.2: check that ``leaf_hash`` is leaf ``index`` of the tree ``(size, root)``."""
    for name, value in (("leaf hash", leaf_hash), ("root", root)):
        _check_hash(name, value)
    path = _check_proof(proof)
    _check_int("size", size, "bad-size")
    _check_int("index", index, "bad-index")
    if index >= size:
        raise MerkleError("bad-index", f"expected an index below the tree size {size}, got {index}")
    _check_length(path, _inclusion_ranges(index, size))
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in path:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    _check_root("root", bytes(root), r)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """§2.1.4.2: check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    ``old_size == 0`` needs an empty proof and ``old_root`` equal to the empty-tree hash.
    """
    for name, value in (("old root", old_root), ("new root", new_root)):
        _check_hash(name, value)
    path = _check_proof(proof)
    _check_int("old size", old_size, "bad-size")
    _check_int("new size", new_size, "bad-size")
    if old_size > new_size:
        raise MerkleError("bad-size", f"expected an old size <= {new_size}, got {old_size}")
    _check_length(path, _consistency_ranges(old_size, new_size))
    if old_size == 0:
        return _check_root("old root", EMPTY_ROOT, bytes(old_root))
    if old_size == new_size:
        return _check_root("new root", bytes(old_root), bytes(new_root))
    if old_size & (old_size - 1) == 0:  # a perfect old tree is itself a node of the new one
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    _check_root("old root", bytes(old_root), fr)
    _check_root("new root", bytes(new_root), sr)
