"""The edges (adapters, web, cli) write no audit record themselves (issue 10, part 4): they
hand the actor and the request's facts to a service, which decides what is recorded.

Read from the source, so a new route or adapter that calls ``audit.record`` or the access
log (``access.access``, ``access.query``) fails here, directly or through a name bound to
them (``access = platform.access``, ``run_in_threadpool(access.access, ...)``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "telerad"
EDGES = ("adapters", "web", "cli")
#: (what it is reached through, the attribute): the audit service and the access log.
FORBIDDEN = {("audit", "record"), ("access", "access"), ("access", "query")}


def _name(node: ast.expr) -> str | None:
    """The last name of ``x``, ``a.x``, ``a.b.x`` (None for calls, subscripts…)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def audit_writes(source: str, filename: str = "<source>") -> list[str]:
    """Where ``source`` reaches an audit write: ``line: audit.record`` for each."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and (_name(node.value), node.attr) in FORBIDDEN:
            found.append(f"{node.lineno}: {_name(node.value)}.{node.attr}")
        # The audit service or the access log bound from the platform, written through later.
        if isinstance(node, ast.Attribute) and (_name(node.value), node.attr) == (
            "platform",
            "access",
        ):
            found.append(f"{node.lineno}: platform.access")
    return sorted(found)


def test_the_scan_sees_every_way_of_writing() -> None:
    source = """
platform.audit.record(EventID.QUERY, "x")
self.platform.access.access(actor, EventID.EXPORT, uid)
access = platform.access
run_in_threadpool(access.query, actor, "detail")
audit.record(EventID.QUERY, "x")
"""
    assert audit_writes(source) == [
        "2: audit.record",
        "3: access.access",
        "3: platform.access",
        "4: platform.access",
        "5: access.query",
        "6: audit.record",
    ]
    allowed = "platform.audit.verify()\nplatform.audit.export(fmt)\nplatform.studies.search(a)"
    assert audit_writes(allowed) == []


def test_no_edge_writes_an_audit_record() -> None:
    offences = []
    for edge in EDGES:
        for path in sorted((SRC / edge).rglob("*.py")):
            for hit in audit_writes(path.read_text(encoding="utf-8"), str(path)):
                offences.append(f"{path.relative_to(SRC)}:{hit}")
    assert offences == [], "edges call a service, which writes the audit record:\n" + "\n".join(
        offences
    )
