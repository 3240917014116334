"""RFC 9162 §2.1.3.1 and §2.1.4.1 proofs served from stored subtree hashes.

A *node* ``(level, index)`` is the Merkle Tree Hash (§2.1.1) of the perfect subtree over
leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is a leaf hash. Once a
subtree is complete its hash never changes (the log is append-only), so a sequencer can
store it in the same transaction as the entries that complete it
(:meth:`CompactRange.append_completing`).

Every range a proof asks for is either such a perfect subtree or the tree's right edge,
which splits into at most one perfect subtree per bit of its width. A proof therefore
needs O(log n) nodes, all known before reading, so a store fetches them in one batched
read instead of rebuilding the tree from every leaf. The hashes served are the same bytes
:class:`MerkleTree` computes from the leaves (tests cross-check both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .merkle import (
    EMPTY_ROOT,
    MerkleError,
    _consistency_ranges,
    _fold_right,
    _inclusion_ranges,
    root_from_leaf_hashes,
)

NodeId = tuple[int, int]
#: Reads the stored nodes among ``ids`` in one batch; absent ones are simply missing.
NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]
#: Leaf hashes ``[start, end)``, for nodes a store does not hold (see :func:`_fetch`).
LeafReader = Callable[[int, int], Sequence[bytes]]


def perfect_cover(start: int, end: int) -> list[NodeId]:
    """The aligned perfect subtrees that tile leaves ``[start, end)``, left to right.

    For the ranges of §2.1 (``start`` a multiple of a power of two at least ``end - start``)
    they shrink strictly left to right, so folding their hashes from the right gives the
    range's MTH, as the §2.1.1 split at the largest power of two does.
    """
    width = end - start
    if width > 0 and width & (width - 1) == 0 and start % width == 0:
        level = width.bit_length() - 1  # the common case: one aligned perfect subtree
        return [(level, start >> level)]
    out: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        out.append((level, start >> level))
        start += 1 << level
    return out


def _fetch(
    read: NodeReader, ids: Sequence[NodeId], leaves: LeafReader | None
) -> dict[NodeId, bytes]:
    nodes = dict(read(ids))
    for level, index in ids:
        if (level, index) in nodes:
            continue
        if leaves is None:
            raise MerkleError(
                "missing-node",
                f"expected stored node (level {level}, index {index}), the store has none",
            )
        nodes[level, index] = root_from_leaf_hashes(leaves(index << level, (index + 1) << level))
    return nodes


def range_hashes(
    read: NodeReader, ranges: Sequence[tuple[int, int]], leaves: LeafReader | None = None
) -> list[bytes]:
    """The MTH of each leaf range, from one batched :data:`NodeReader` call.

    ``leaves`` rebuilds any node the store lacks from its leaves (a store written before
    nodes were kept); without it a missing node raises :class:`MerkleError`.
    """
    covers = [perfect_cover(a, b) for a, b in ranges]
    wanted = sorted({node for cover in covers for node in cover})
    nodes = _fetch(read, wanted, leaves)
    return [
        nodes[cover[0]]
        if len(cover) == 1
        else _fold_right([nodes[n] for n in cover])
        if cover
        else EMPTY_ROOT
        for cover in covers
    ]


def inclusion_from_nodes(
    read: NodeReader, index: int, size: int, leaves: LeafReader | None = None
) -> tuple[list[bytes], bytes]:
    """§2.1.3.1 ``(PATH(index, D[size]), MTH(D[size]))``."""
    if not 0 <= index < size:
        raise ValueError(f"expected 0 <= index < size, got index {index}, size {size}")
    *path, root = range_hashes(read, [*_inclusion_ranges(index, size), (0, size)], leaves)
    return path, root


def consistency_from_nodes(
    read: NodeReader, old_size: int, new_size: int, leaves: LeafReader | None = None
) -> tuple[list[bytes], bytes, bytes]:
    """§2.1.4.1 ``(PROOF(old_size, D[new_size]), MTH(D[old_size]), MTH(D[new_size]))``."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"expected 0 <= old size <= new size, got {old_size}, {new_size}")
    *proof, old_root, new_root = range_hashes(
        read, [*_consistency_ranges(old_size, new_size), (0, old_size), (0, new_size)], leaves
    )
    return proof, old_root, new_root
