"""Proofs from stored subtree nodes equal the proofs rebuilt from every leaf, byte for byte,
and need O(log n) node reads in one batch."""

from __future__ import annotations

import hashlib

import pytest

from vettra.domain.merkle import (
    CompactRange,
    MerkleError,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from vettra.domain.merkle_nodes import consistency_from_nodes, inclusion_from_nodes, perfect_cover


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


def _stored(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    tree, nodes = CompactRange(), {}
    for i, h in enumerate(leaves):
        nodes[0, i] = h
        for level, index, node in tree.append_completing(h):
            nodes[level, index] = node
    return nodes


class Reader:
    """Serves from a node table and counts batches and nodes read."""

    def __init__(self, nodes: dict[tuple[int, int], bytes]):
        self.nodes, self.batches, self.read = nodes, 0, 0

    def __call__(self, ids):
        self.batches += 1
        self.read += len(ids)
        return {i: self.nodes[i] for i in ids if i in self.nodes}


N = 70
LEAVES = _leaves(N)
NODES = _stored(LEAVES)


def test_append_completing_stores_each_perfect_subtree_once() -> None:
    tree = MerkleTree(LEAVES)
    for (level, index), h in NODES.items():
        assert h == tree._root(index << level, (index + 1) << level)
    assert len(NODES) == N + sum(N >> level for level in range(1, 8))


@pytest.mark.parametrize("size", range(1, N + 1))
def test_inclusion_from_nodes_is_byte_identical(size: int) -> None:
    tree = MerkleTree(LEAVES[:size])
    for index in range(size):
        reader = Reader(NODES)
        path, root = inclusion_from_nodes(reader, index, size)
        assert path == tree.inclusion_proof(index, size)
        assert root == tree.root(size)
        verify_inclusion(LEAVES[index], index, size, path, root)
        assert reader.batches == 1


@pytest.mark.parametrize("new", range(1, N + 1))
def test_consistency_from_nodes_is_byte_identical(new: int) -> None:
    tree = MerkleTree(LEAVES[:new])
    for old in range(0, new + 1):
        proof, old_root, new_root = consistency_from_nodes(Reader(NODES), old, new)
        assert proof == tree.consistency_proof(old, new)
        assert (old_root, new_root) == (tree.root(old), tree.root(new))
        verify_consistency(old, new, old_root, new_root, proof)


def test_a_proof_reads_logarithmically_many_nodes() -> None:
    size = 2**20 + 12345
    reader = Reader({})
    with pytest.raises(MerkleError, match="missing-node"):
        inclusion_from_nodes(reader, 777_777, size)
    assert reader.read <= 2 * size.bit_length()
    assert reader.batches == 1
    assert len(perfect_cover(0, size)) == size.bit_count()


def test_missing_nodes_are_rebuilt_from_leaves_when_a_leaf_reader_is_given() -> None:
    only_leaves = {k: v for k, v in NODES.items() if k[0] == 0}
    path, root = inclusion_from_nodes(Reader(only_leaves), 5, 67, leaves=lambda a, b: LEAVES[a:b])
    assert path == MerkleTree(LEAVES).inclusion_proof(5, 67)
    assert root == MerkleTree(LEAVES).root(67)


def test_the_node_cache_keeps_only_upper_levels_and_stays_bounded() -> None:
    from vettra.adapters.sqlite_merkle import NodeCache

    cache = NodeCache(max_nodes=3, min_level=2)
    cache.put("c", {(1, 0): b"a" * 32, (2, 0): b"b" * 32, (3, 0): b"c" * 32, (2, 1): b"d" * 32})
    assert len(cache) == 3 and cache.get("c", [(1, 0)]) == {}
    assert cache.get("c", [(2, 0)]) == {(2, 0): b"b" * 32}  # now the most recently used
    cache.put("c", {(4, 0): b"e" * 32})
    assert cache.get("c", [(3, 0)]) == {} and set(cache.get("c", [(2, 0), (2, 1), (4, 0)])) == {
        (2, 0),
        (2, 1),
        (4, 0),
    }
    assert cache.get("other", [(2, 0)]) == {}
