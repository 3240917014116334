"""The shared vectors of tests/vectors/audit (for the Rust verifier too): exports verified
offline with only the public key against checkpoints saved earlier, through the CLI's
export path (``vettra audit verify`` in-process)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest

from vettra import audit_cli

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "audit" / "saved-checkpoints.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_saved_checkpoint_vectors(case: dict, tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(case["export"]) + "\n")
    saved = []
    for i, note in enumerate(case["saved"]):
        saved.append(str(tmp_path / f"saved-{i}.note"))
        Path(saved[-1]).write_text(note)
    args = argparse.Namespace(
        file=str(export),
        pubkey=[VECTORS["verifier_key"]],
        home=None,
        quiet=True,
        checkpoint=saved,
        require_covered=False,
    )
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = audit_cli.verify(args, lambda h: Path(h))
    expected = case["expected"]
    if expected["valid"]:
        assert code == 0, err.getvalue()
        assert (
            f"{expected['uncovered']} trailing entries under no signed checkpoint" in out.getvalue()
        )
    else:
        assert code == 1
        assert err.getvalue().startswith(
            f"invalid at seq {expected['seq']}: {expected['reason_prefix']}"
        ), err.getvalue()
