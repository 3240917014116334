"""Ports stay small and the store contract suite calls every method of the store's ports
(docs/architecture.md: ports of 1-5 methods; every adapter passes one contract suite)."""

from __future__ import annotations

import abc
import inspect
import re
from pathlib import Path

from vettra import ports

MAX_OWN_METHODS = 5
STORE_PORTS = (
    ports.Store,
    ports.UnitOfWork,
    ports.ActionRepository,
    ports.IdempotencyRepository,
    ports.PolicyRepository,
    ports.DocumentRepository,
    ports.AuditRecorder,
    ports.AuditLog,
)
CONTRACT = Path(__file__).resolve().parents[1] / "contract" / "test_store_contract.py"


def _ports() -> list[type]:
    return [
        cls
        for _, cls in inspect.getmembers(ports, inspect.isclass)
        if cls.__module__ == ports.__name__ and issubclass(cls, abc.ABC) and cls is not abc.ABC
    ]


def _own_abstract(cls: type) -> set[str]:
    return {
        name
        for name, value in vars(cls).items()
        if getattr(value, "__isabstractmethod__", False)
        or getattr(getattr(value, "fget", None), "__isabstractmethod__", False)
    }


def test_every_port_declares_at_most_five_methods_of_its_own() -> None:
    wide = {
        cls.__name__: sorted(_own_abstract(cls))
        for cls in _ports()
        if len(_own_abstract(cls)) > MAX_OWN_METHODS
    }
    assert wide == {}, "split the port by role, as AuditLog and KeyStore are"


def test_the_store_contract_suite_calls_every_method_of_the_store_ports() -> None:
    text = CONTRACT.read_text()
    methods = {name for cls in STORE_PORTS for name in cls.__abstractmethods__}
    assert len(methods) >= 20
    uncalled = sorted(m for m in methods if not re.search(rf"\.{m}\b", text))
    assert uncalled == []
