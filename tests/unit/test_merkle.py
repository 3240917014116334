"""RFC 9162 §2.1 Merkle tree hashing and proofs.

Three independent references check :mod:`vettra.domain.merkle`:

- the JSON vectors in tests/vectors/merkle/, shared with the Rust verifier. The reference
  tree's roots and the proofs marked so in ``desc`` are copied from transparency-dev/merkle
  (``proof/verify_test.go``, ``rfc6962/rfc6962_test.go``); the rest were generated here and
  agree with the references below. Each file is ``{"desc", "kind", ..., "want_err"}``:

  * ``hash``: ``op`` ``"leaf"`` (``data``) or ``"node"`` (``left``, ``right``), ``want``;
  * ``root``: ``leaves`` (leaf data), ``want`` (the MTH);
  * ``inclusion``: ``leaf_hash``, ``index``, ``size``, ``proof``, ``root``;
  * ``consistency``: ``old_size``, ``new_size``, ``old_root``, ``new_root``, ``proof``;

  all bytes in lowercase hex. ``want_err`` is ``false`` or the ``MerkleError.reason`` a
  verifier must give. A vector with ``leaves`` also says that a generator given those
  leaves produces exactly ``proof``.
- a naive recursive transcription of the RFC's definitions, written below without the
  module's helpers;
- two PyPI packages, installed for tests only (README test deps), each test skipping
  loudly without them: ``sigstore`` (``sigstore._internal.merkle.verify_merkle_inclusion``,
  an inclusion verifier after Trillian's) and ``pymerkle`` (roots of an RFC 9162 tree).
"""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vettra.domain import merkle
from vettra.domain.errors import VerificationError
from vettra.domain.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    MerkleError,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

from .vectors import vector_files

VECTORS = vector_files("merkle")
REASONS = {"bad-hash", "bad-size", "bad-index", "proof-length", "root-mismatch"}
KIND_FIELDS = {
    "hash": {"op", "want"},
    "root": {"leaves", "want"},
    "inclusion": {"leaf_hash", "index", "size", "proof", "root"},
    "consistency": {"old_size", "new_size", "old_root", "new_root", "proof"},
}
MAX_SIZE = 300

LEAF_DATA = [i.to_bytes(4, "big") for i in range(2 * MAX_SIZE + 2)]


# --- the naive reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 as written -------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_leaf(data: bytes) -> bytes:
    return _h(b"\x00" + data)


def naive_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(d: list[bytes]) -> bytes:
    """MTH over already-hashed leaves."""
    if not d:
        return _h(b"")
    if len(d) == 1:
        return d[0]
    k = naive_k(len(d))
    return _h(b"\x01" + naive_mth(d[:k]) + naive_mth(d[k:]))


def naive_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = naive_k(len(d))
    if m < k:
        return naive_path(m, d[:k]) + [naive_mth(d[k:])]
    return naive_path(m - k, d[k:]) + [naive_mth(d[:k])]


def naive_shape(m: int, n: int) -> list[str]:
    """Which side each sibling of PATH(m, D[n]) sits on, leaf first."""
    if n == 1:
        return []
    k = naive_k(n)
    return naive_shape(m, k) + ["R"] if m < k else naive_shape(m - k, n - k) + ["L"]


def naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = naive_k(n)
    if m <= k:
        return naive_subproof(m, d[:k], b) + [naive_mth(d[k:])]
    return naive_subproof(m - k, d[k:], False) + [naive_mth(d[:k])]


def naive_proof(m: int, d: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else naive_subproof(m, d, True)


LEAVES = [naive_leaf(x) for x in LEAF_DATA]


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


# --- vectors ---------------------------------------------------------------------------


def test_vector_corpus_is_present_and_well_formed():
    assert len(VECTORS) >= 60
    kinds = set()
    for path in VECTORS:
        v = json.loads(path.read_text(encoding="utf-8"))
        kinds.add(v["kind"])
        assert v["desc"] and v["kind"] in KIND_FIELDS, path.name
        assert KIND_FIELDS[v["kind"]] <= set(v), path.name
        assert v["want_err"] is False or v["want_err"] in REASONS, path.name
        assert "leaves" not in v or v["want_err"] is False, path.name
    assert kinds == set(KIND_FIELDS)


def _run_vector(v: dict) -> str | None:
    """None if the vector holds, else what went wrong."""
    x = bytes.fromhex
    if v["kind"] == "hash":
        got = (
            leaf_hash(x(v["data"])) if v["op"] == "leaf" else node_hash(x(v["left"]), x(v["right"]))
        )
        return None if got.hex() == v["want"] else f"expected {v['want']}, got {got.hex()}"
    if v["kind"] == "root":
        hashes = [leaf_hash(x(d)) for d in v["leaves"]]
        got = {
            root_from_leaf_hashes(hashes).hex(),
            MerkleTree(hashes).root().hex(),
            naive_mth(hashes).hex(),
        }
        return None if got == {v["want"]} else f"expected {v['want']}, got {sorted(got)}"
    proof = [x(h) for h in v["proof"]]
    try:
        if v["kind"] == "inclusion":
            verify_inclusion(x(v["leaf_hash"]), v["index"], v["size"], proof, x(v["root"]))
        else:
            verify_consistency(
                v["old_size"], v["new_size"], x(v["old_root"]), x(v["new_root"]), proof
            )
        got_err: str | bool = False
    except MerkleError as exc:
        got_err = exc.reason
    if got_err != v["want_err"]:
        return f"want_err {v['want_err']!r}, got {got_err!r}"
    if "leaves" in v:
        hashes = [leaf_hash(x(d)) for d in v["leaves"]]
        if v["kind"] == "inclusion":
            made = inclusion_proof(hashes, v["index"], v["size"])
        else:
            made = consistency_proof(hashes, v["old_size"], v["new_size"])
        if [h.hex() for h in made] != v["proof"]:
            return f"generator: expected {v['proof']}, got {[h.hex() for h in made]}"
    return None


def test_every_vector():
    failures = []
    for path in VECTORS:
        v = json.loads(path.read_text(encoding="utf-8"))
        try:
            problem = _run_vector(v)
        except Exception as exc:  # report it with the others rather than stop at the first
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"{path.stem}: {problem}")
    assert not failures, "\n".join(failures)


# --- hashing, roots and the compact range ---------------------------------------------


def test_constants_and_error_type():
    assert (merkle.LEAF_PREFIX, merkle.NODE_PREFIX, HASH_SIZE) == (b"\x00", b"\x01", 32)
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert issubclass(MerkleError, VerificationError)
    with pytest.raises(MerkleError) as info:
        verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[1])
    assert f"expected {LEAVES[1].hex()}, got {LEAVES[0].hex()}" in str(info.value)
    assert info.value.problem()["reason"] == "root-mismatch"


@pytest.mark.parametrize("chunk", [1, 2, 4, merkle.CHUNK_SIZE])
def test_small_trees_match_the_naive_reference_exhaustively(monkeypatch, chunk):
    # Small chunks push small trees through the frontier and the subtree memo too.
    monkeypatch.setattr(merkle, "CHUNK_SIZE", chunk)
    tree = MerkleTree(LEAVES[:40])
    for n in range(0, 41):
        d = LEAVES[:n]
        assert root_from_leaf_hashes(d) == tree.root(n) == naive_mth(d), n
        for m in range(n):
            assert tree.inclusion_proof(m, n) == naive_path(m, d), (m, n)
        for m in range(n + 1):
            assert tree.consistency_proof(m, n) == naive_proof(m, d), (m, n)


@pytest.mark.parametrize("n", [1023, 1024, 1025, 2047, 2048, 2049, 3073])
def test_roots_and_proofs_across_chunk_boundaries(n):
    d = [naive_leaf(i.to_bytes(4, "big")) for i in range(n)]
    tree = MerkleTree(d)
    assert root_from_leaf_hashes(d) == tree.root() == naive_mth(d)
    for m in {0, 1, 1023, min(1024, n - 1), n // 2, n - 1, n}:
        if m < n:
            assert tree.inclusion_proof(m, n) == naive_path(m, d), m
        assert tree.consistency_proof(m, n) == naive_proof(m, d), m


def test_compact_range_equals_the_root_for_every_prefix_and_round_trips():
    frontier = CompactRange()
    assert frontier.root() == EMPTY_ROOT and frontier.size == 0
    for n, h in enumerate(LEAVES[: 2 * MAX_SIZE], start=1):
        frontier.append(h)
        assert frontier.size == n
        assert frontier.root() == root_from_leaf_hashes(LEAVES[:n]) == naive_mth(LEAVES[:n]), n
        saved = frontier.to_dict()
        assert len(saved["hashes"]) == bin(n).count("1")
        restored = CompactRange.from_dict(json.loads(json.dumps(saved)))
        assert restored.size == n and restored.root() == frontier.root()
    restored.append(LEAVES[0])
    assert restored.root() == naive_mth(LEAVES[: 2 * MAX_SIZE] + LEAVES[:1])


@pytest.mark.parametrize(
    "saved",
    [
        {"size": 3, "hashes": [EMPTY_ROOT.hex()]},  # 3 needs two hashes
        {"size": 2, "hashes": ["zz" * 32]},
        {"size": 1, "hashes": ["00" * 31]},
        {"size": -1, "hashes": []},
        {"size": True, "hashes": [EMPTY_ROOT.hex()]},
        {"size": 1},
        {"hashes": []},
        {"size": 1, "hashes": [7]},
        None,
        [],
    ],
)
def test_compact_range_refuses_a_bad_frontier(saved):
    with pytest.raises(MerkleError) as info:
        CompactRange.from_dict(saved)
    assert info.value.reason == "bad-frontier"


def test_compact_range_append_refuses_a_bad_hash():
    with pytest.raises(MerkleError):
        CompactRange().append(b"short")


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.inclusion_proof(3, 3),
        lambda t: t.inclusion_proof(-1, 3),
        lambda t: t.inclusion_proof(0, 9),
        lambda t: t.consistency_proof(4, 3),
        lambda t: t.consistency_proof(0, 9),
        lambda t: t.root(9),
    ],
)
def test_generators_refuse_impossible_requests(call):
    with pytest.raises(ValueError):
        call(MerkleTree(LEAVES[:8]))


# --- properties ------------------------------------------------------------------------


@st.composite
def sized_index(draw):
    n = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, n - 1)), n


@st.composite
def sized_pair(draw):
    n = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, n)), n


@given(sized_index())
@settings(max_examples=300)
def test_inclusion_proofs_match_the_reference_and_verify(case):
    m, n = case
    d = LEAVES[:n]
    proof = inclusion_proof(d, m, n)
    assert proof == naive_path(m, d)
    verify_inclusion(d[m], m, n, proof, naive_mth(d))


@given(sized_pair())
@settings(max_examples=300)
def test_consistency_proofs_match_the_reference_and_verify(case):
    m, n = case
    d = LEAVES[:n]
    proof = consistency_proof(d, m, n)
    assert proof == naive_proof(m, d)
    verify_consistency(m, n, naive_mth(d[:m]), naive_mth(d), proof)


@given(sized_index(), st.data())
@settings(max_examples=300)
def test_any_tampering_with_an_inclusion_proof_is_rejected(case, data):
    m, n = case
    d = LEAVES[:n]
    tree = MerkleTree(d)
    proof, root = tree.inclusion_proof(m, n), tree.root(n)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="bit")
        bad = proof[:i] + [_flip(proof[i], bit)] + proof[i + 1 :]
        with pytest.raises(MerkleError):
            verify_inclusion(d[m], m, n, bad, root)
    with pytest.raises(MerkleError):
        verify_inclusion(d[m], m, n, proof, _flip(root, data.draw(st.integers(0, 255))))
    with pytest.raises(MerkleError):
        verify_inclusion(d[m], m, n, proof + [root], root)
    other_index = data.draw(st.integers(0, 2 * MAX_SIZE).filter(lambda j: j != m), label="index")
    with pytest.raises(MerkleError):
        verify_inclusion(d[m], other_index, n, proof, root)
    other_size = data.draw(st.integers(0, 2 * MAX_SIZE).filter(lambda s: s != n), label="size")
    # Against the true root of the other size (a checkpoint an attacker could show): rejected.
    if m < other_size:
        with pytest.raises(MerkleError):
            verify_inclusion(d[m], m, other_size, proof, naive_mth(LEAVES[:other_size]))
    # Against this root, a size whose path has the same shape is indistinguishable: the
    # size is bound by the signed checkpoint carrying the root, not by the proof.
    try:
        verify_inclusion(d[m], m, other_size, proof, root)
    except MerkleError:
        pass
    else:
        assert naive_shape(m, other_size) == naive_shape(m, n)


@given(sized_pair(), st.data())
@settings(max_examples=300)
def test_any_tampering_with_a_consistency_proof_is_rejected(case, data):
    m, n = case
    d = LEAVES[:n]
    tree = MerkleTree(d)
    proof, old_root, new_root = tree.consistency_proof(m, n), tree.root(m), tree.root(n)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="bit")
        bad = proof[:i] + [_flip(proof[i], bit)] + proof[i + 1 :]
        with pytest.raises(MerkleError):
            verify_consistency(m, n, old_root, new_root, bad)
        with pytest.raises(MerkleError):
            verify_consistency(m, n, old_root, new_root, proof[:-1])
    bit = data.draw(st.integers(0, 255), label="root bit")
    if m != n or m == 0:  # for m == n > 0 a flipped pair of equal roots is still "equal"
        with pytest.raises(MerkleError):
            verify_consistency(m, n, _flip(old_root, bit), new_root, proof)
    if m:  # from the empty tree every new root is consistent
        with pytest.raises(MerkleError):
            verify_consistency(m, n, old_root, _flip(new_root, bit), proof)
    with pytest.raises(MerkleError):
        verify_consistency(m, n, old_root, new_root, proof + [new_root])
    # Other sizes with their true roots: rejected unless their honest proof is this one.
    m2 = data.draw(st.integers(0, 2 * MAX_SIZE), label="old size")
    n2 = data.draw(st.integers(0, 2 * MAX_SIZE), label="new size")
    assume((m2, n2) != (m, n))
    r1, r2 = naive_mth(LEAVES[:m2]), naive_mth(LEAVES[:n2])
    if m2 <= n2 and naive_proof(m2, LEAVES[:n2]) == proof:
        verify_consistency(m2, n2, r1, r2, proof)
    else:
        with pytest.raises(MerkleError):
            verify_consistency(m2, n2, r1, r2, proof)


_garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 2**70),
    st.text(max_size=3),
    st.binary(max_size=40),
    st.floats(allow_nan=True),
    st.lists(st.one_of(st.binary(max_size=40), st.integers()), max_size=4),
)


@given(_garbage, _garbage, _garbage, _garbage, _garbage)
@settings(max_examples=500)
def test_verifiers_raise_only_merkle_error(a, b, c, p, r):
    for call in (
        lambda: verify_inclusion(a, b, c, p, r),
        lambda: verify_inclusion(LEAVES[0], b, c, p, LEAVES[1]),
        lambda: verify_consistency(a, b, c, r, p),
        lambda: verify_consistency(b, c, LEAVES[0], LEAVES[1], p),
    ):
        try:
            call()
        except MerkleError:
            pass


def test_verifier_edges():
    h = LEAVES[0]
    for args in [
        (h, 0, 0, [], h),
        (h, 1, 1, [], h),
        (h, 0, 0, [h], h),
        (h, -1, 1, [], h),
        (h, 0, 1, [h], h),
        (h, 0, 1, [], b"x" * 31),
        (b"", 0, 1, [], h),
        (h, 0, 1, h, h),
        (h, 0, 1, "ab", h),
        (h, True, 2, [h], h),
    ]:
        with pytest.raises(MerkleError):
            verify_inclusion(*args)
    verify_inclusion(h, 0, 1, [], h)
    verify_inclusion(h, 0, 1, (), bytearray(h))
    # Sizes are uint64 as in RFC 9162's structures: 2**64 - 1 leaves is a 64-level proof.
    with pytest.raises(MerkleError) as info:
        verify_inclusion(h, 2**64 - 2, 2**64 - 1, [h] * 63, h)
    assert info.value.reason == "root-mismatch"
    with pytest.raises(MerkleError) as info:
        verify_inclusion(h, 0, 2**64, [h] * 64, h)
    assert info.value.reason == "bad-size"
    with pytest.raises(MerkleError) as info:
        verify_consistency(1, 2**64, h, h, [h] * 64)
    assert info.value.reason == "bad-size"
    for args in [
        (2, 1, h, h, []),
        (1, 2, h, h, []),
        (0, 0, h, EMPTY_ROOT, []),
        (1, 1, h, LEAVES[1], []),
        (0, 1, EMPTY_ROOT, h, [h]),
        (1.0, 1, h, h, []),
    ]:
        with pytest.raises(MerkleError):
            verify_consistency(*args)
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, h, [])
    verify_consistency(3, 3, h, h, [])


# --- other implementations -------------------------------------------------------------


def _sigstore_verify():
    try:
        from sigstore._internal.merkle import verify_merkle_inclusion
        from sigstore.errors import VerificationError as SigstoreError
    except ImportError:
        pytest.skip("cross-check needs the PyPI package 'sigstore' (test-only dependency)")
    return verify_merkle_inclusion, SigstoreError


def _sigstore_entry(data: bytes, index: int, size: int, proof: list[bytes], root: bytes):
    # verify_merkle_inclusion reads only these attributes of a Rekor entry.
    ip = SimpleNamespace(log_index=index, tree_size=size, hashes=proof, root_hash=root)
    return SimpleNamespace(_inner=SimpleNamespace(inclusion_proof=ip, canonicalized_body=data))


def test_sigstore_verifies_our_inclusion_proofs():
    verify, sigstore_error = _sigstore_verify()
    for n in range(1, 70):
        tree = MerkleTree(LEAVES[:n])
        root = tree.root()
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            verify(_sigstore_entry(LEAF_DATA[m], m, n, proof, root))
            if proof:
                with pytest.raises(sigstore_error):
                    verify(
                        _sigstore_entry(LEAF_DATA[m], m, n, [_flip(proof[0], 0)] + proof[1:], root)
                    )


@given(sized_index())
@settings(max_examples=200)
def test_sigstore_agrees_on_larger_trees(case):
    verify, _ = _sigstore_verify()
    m, n = case
    verify(
        _sigstore_entry(
            LEAF_DATA[m], m, n, inclusion_proof(LEAVES, m, n), root_from_leaf_hashes(LEAVES[:n])
        )
    )


def test_pymerkle_computes_the_same_roots():
    try:
        from pymerkle import InmemoryTree
    except ImportError:
        pytest.skip("cross-check needs the PyPI package 'pymerkle' (test-only dependency)")
    theirs = InmemoryTree(algorithm="sha256")
    for data in LEAF_DATA[: 2 * MAX_SIZE]:
        theirs.append_entry(data)
    tree = MerkleTree(LEAVES[: 2 * MAX_SIZE])
    assert theirs.get_root(0) == EMPTY_ROOT
    for n in range(1, 2 * MAX_SIZE + 1):
        assert theirs.get_leaf(n) == leaf_hash(LEAF_DATA[n - 1])
        assert theirs.get_root(n) == tree.root(n) == root_from_leaf_hashes(LEAVES[:n]), n


# --- scale -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_million_leaves():
    n = 1_000_000
    hashes = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]
    root = root_from_leaf_hashes(hashes)
    tree = MerkleTree(hashes)
    assert tree.root() == root
    for m in (0, 1, 524_287, 524_288, n - 1):
        verify_inclusion(hashes[m], m, n, tree.inclusion_proof(m, n), root)
    for m in (1, 65_536, 654_321, n - 1):
        verify_consistency(m, n, tree.root(m), root, tree.consistency_proof(m, n))
    # Memoised perfect subtrees stay a small fraction of the leaves.
    assert len(tree._memo) <= 2 * n // merkle.CHUNK_SIZE
