"""Routing rules as data: one TOML (or JSON) file per reading network.

:func:`parse_rules` turns the file's mapping into a checked :class:`Rules` value,
with errors that name the key (``escalation[1].at: must be in (0, 1], got 1.5``).
The engine only ever sees a :class:`Rules` value; :class:`RulesSource` re-reads the
file when its modification time changes and keeps the last good rules when an
edit breaks it, so a typo never stops routing. The format is in docs/routing.md.
"""

from __future__ import annotations

import enum
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from telerad.workflow.model import Contract, Priority


class RulesError(ValueError):
    """A rules file that cannot be used, with the key at fault."""


class EscalationAction(enum.StrEnum):
    """What happens when a share of a study's turnaround has gone."""

    WIDEN_POOL = "widen-pool"  # readers over their queue cap become candidates
    ALERT_SUPERVISOR = "alert-supervisor"
    BREACH = "breach"  # the deadline has passed: recorded against the contract


@dataclass(frozen=True)
class EscalationStep:
    at: float  # share of the turnaround gone, (0, 1]
    action: EscalationAction


@dataclass(frozen=True)
class Weights:
    """Weights of the scoring terms; a reader's score is their weighted sum."""

    wait: float = 4.0  # share of the time left the study would wait in the reader's queue
    load: float = 1.0  # the reader's queue against their cap
    same_patient: float = 2.0  # the reader holds another open study of this patient
    priors: float = 1.0  # the reader read this patient's earlier studies


_DEFAULT_TARGETS = {
    Priority.STROKE: 20,
    Priority.TRAUMA: 30,
    Priority.STAT: 60,
    Priority.URGENT: 240,
    Priority.ROUTINE: 1440,
}


_UNCLAIMED = dict(zip(Priority, (3, 5, 10, 30, 120), strict=True))
_CLAIMED = dict(zip(Priority, (15, 20, 45, 120, 480), strict=True))


@dataclass(frozen=True)
class Rules:
    network: str = "default"
    targets: dict[Priority, int] = field(default_factory=lambda: dict(_DEFAULT_TARGETS))
    contracts: dict[int, Contract] = field(default_factory=dict)
    weights: Weights = Weights()
    queue_cap_rvu: float = 20.0
    #: Tiers that bypass the queue cap (a stroke goes to the best reader, full or not).
    bypass_cap: frozenset[Priority] = frozenset({Priority.STROKE, Priority.TRAUMA})
    escalation: tuple[EscalationStep, ...] = (
        EscalationStep(0.5, EscalationAction.WIDEN_POOL),
        EscalationStep(0.8, EscalationAction.ALERT_SUPERVISOR),
        EscalationStep(1.0, EscalationAction.BREACH),
    )
    #: Minutes a pushed study may wait unopened before it goes to someone else.
    unclaimed_minutes: dict[Priority, int] = field(default_factory=lambda: dict(_UNCLAIMED))
    #: Minutes a reader may hold an opened study before it goes to someone else.
    claimed_minutes: dict[Priority, int] = field(default_factory=lambda: dict(_CLAIMED))
    pull_pool: bool = False
    #: Tiers readers may pull from the pool themselves when it is on.
    pull_tiers: frozenset[Priority] = frozenset({Priority.ROUTINE})

    def __post_init__(self) -> None:
        for name in ("targets", "unclaimed_minutes", "claimed_minutes"):
            missing = set(Priority) - set(getattr(self, name))
            if missing:
                raise RulesError(f"{name}: no minutes for {', '.join(sorted(missing))}")
        if self.queue_cap_rvu <= 0:
            raise RulesError(f"queue.cap_rvu: must be positive, got {self.queue_cap_rvu}")
        both = self.pull_tiers & self.bypass_cap
        if both:
            raise RulesError(
                f"pull_pool.tiers: {', '.join(sorted(both))} bypass the queue cap and are "
                "always pushed; take them out of the pull pool"
            )

    def target(self, facility_id: int, priority: Priority) -> timedelta:
        contract = self.contracts.get(facility_id)
        minutes = contract.target(priority, self.targets) if contract else self.targets[priority]
        return timedelta(minutes=minutes)

    def deadline(self, facility_id: int, priority: Priority, ready_at: datetime) -> datetime:
        return ready_at + self.target(facility_id, priority)

    def cap_of(self, reader_cap: float | None) -> float:
        return self.queue_cap_rvu if reader_cap is None else reader_cap

    def step_at(self, fraction: float) -> EscalationStep | None:
        """The last escalation step reached when ``fraction`` of the turnaround has gone."""
        reached = None
        for step in self.escalation:
            if fraction >= step.at:
                reached = step
        return reached

    def widened(self, fraction: float) -> bool:
        return any(
            s.action is EscalationAction.WIDEN_POOL and fraction >= s.at for s in self.escalation
        )


# -- parsing -------------------------------------------------------------------------

_TOP_KEYS = {
    "network",
    "targets",
    "contracts",
    "weights",
    "queue",
    "escalation",
    "reassignment",
    "pull_pool",
}


def _table(data: Mapping[str, Any], key: str, where: str, allowed: set[str]) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise RulesError(f"{where}{key}: must be a table, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise RulesError(f"{where}{key}: unknown key(s) {', '.join(unknown)}; known: {known}")
    return value


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RulesError(f"{where}: must be a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise RulesError(f"{where}: must be {'positive' if positive else '≥ 0'}, got {value!r}")
    return float(value)


def _minutes(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RulesError(f"{where}: must be a whole number of minutes > 0, got {value!r}")
    return value


def _tier(name: Any, where: str) -> Priority:
    try:
        return Priority(name)
    except ValueError:
        known = ", ".join(p.value for p in Priority)
        raise RulesError(f"{where}: unknown tier {name!r}; known: {known}") from None


_TIER_NAMES = {p.value for p in Priority}


def _tier_minutes(
    data: Mapping[str, Any], key: str, where: str, defaults: dict[Priority, int]
) -> dict[Priority, int]:
    table = _table(data, key, where, _TIER_NAMES)
    out = dict(defaults)
    for name, value in table.items():
        out[Priority(name)] = _minutes(value, f"{where}{key}.{name}")
    return out


def _tiers(value: Any, where: str) -> frozenset[Priority]:
    if not isinstance(value, list):
        raise RulesError(f"{where}: must be a list of tiers, got {value!r}")
    return frozenset(_tier(v, f"{where}[{i}]") for i, v in enumerate(value))


def parse_rules(data: Mapping[str, Any]) -> Rules:
    """Check a rules mapping (a parsed TOML/JSON file) and build :class:`Rules`."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RulesError(
            f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}"
        )
    base = Rules()
    network = data.get("network", base.network)
    if not isinstance(network, str) or not network:
        raise RulesError(f"network: must be a non-empty string, got {network!r}")

    targets = _tier_minutes(data, "targets", "", base.targets)

    contracts: dict[int, Contract] = {}
    raw_contracts = data.get("contracts", {})
    if not isinstance(raw_contracts, Mapping):
        raise RulesError("contracts: must be a table of facility ids")
    for key in raw_contracts:
        try:
            facility_id = int(key)
        except (TypeError, ValueError):
            raise RulesError(f"contracts.{key}: the key must be a facility id") from None
        minutes = _tier_minutes(raw_contracts, key, "contracts.", {})
        contracts[facility_id] = Contract(facility_id, minutes)

    raw_weights = _table(data, "weights", "", {"wait", "load", "same_patient", "priors"})
    weights = Weights(**{k: _number(v, f"weights.{k}") for k, v in raw_weights.items()})

    queue = _table(data, "queue", "", {"cap_rvu", "bypass_cap"})
    cap = _number(queue.get("cap_rvu", base.queue_cap_rvu), "queue.cap_rvu", positive=True)
    bypass = (
        _tiers(queue["bypass_cap"], "queue.bypass_cap")
        if "bypass_cap" in queue
        else base.bypass_cap
    )

    escalation = base.escalation
    if "escalation" in data:
        escalation = _escalation(data["escalation"])

    reassignment = _table(data, "reassignment", "", {"unclaimed_minutes", "claimed_minutes"})
    unclaimed = _tier_minutes(
        reassignment, "unclaimed_minutes", "reassignment.", base.unclaimed_minutes
    )
    claimed = _tier_minutes(reassignment, "claimed_minutes", "reassignment.", base.claimed_minutes)

    pull = _table(data, "pull_pool", "", {"enabled", "tiers"})
    enabled = pull.get("enabled", base.pull_pool)
    if not isinstance(enabled, bool):
        raise RulesError(f"pull_pool.enabled: must be true or false, got {enabled!r}")
    pull_tiers = _tiers(pull["tiers"], "pull_pool.tiers") if "tiers" in pull else base.pull_tiers

    return Rules(
        network=network,
        targets=targets,
        contracts=contracts,
        weights=weights,
        queue_cap_rvu=cap,
        bypass_cap=bypass,
        escalation=escalation,
        unclaimed_minutes=unclaimed,
        claimed_minutes=claimed,
        pull_pool=enabled,
        pull_tiers=pull_tiers,
    )


def _escalation(value: Any) -> tuple[EscalationStep, ...]:
    if not isinstance(value, list):
        raise RulesError("escalation: must be a list of steps ([[escalation]] tables)")
    steps: list[EscalationStep] = []
    for i, raw in enumerate(value):
        where = f"escalation[{i}]"
        if not isinstance(raw, Mapping) or set(raw) != {"at", "action"}:
            raise RulesError(f"{where}: a step has exactly 'at' and 'action', got {raw!r}")
        at = _number(raw["at"], f"{where}.at")
        if not 0 < at <= 1:
            raise RulesError(f"{where}.at: must be in (0, 1], a share of the turnaround, got {at}")
        try:
            action = EscalationAction(raw["action"])
        except ValueError:
            known = ", ".join(a.value for a in EscalationAction)
            raise RulesError(
                f"{where}.action: unknown action {raw['action']!r}; known: {known}"
            ) from None
        if steps and at <= steps[-1].at:
            raise RulesError(f"{where}.at: steps must be in increasing order of 'at'")
        steps.append(EscalationStep(at, action))
    return tuple(steps)


# -- files ---------------------------------------------------------------------------


def rules_from_bytes(raw: bytes, name: str) -> Rules:
    """Parse a file's bytes: JSON when ``name`` ends in .json, TOML otherwise."""
    try:
        if name.endswith(".json"):
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise RulesError("the top level must be an object")
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        kind = "JSON" if name.endswith(".json") else "TOML"
        raise RulesError(f"{name}: not valid {kind}: {exc}") from None
    except RulesError as exc:
        raise RulesError(f"{name}: {exc}") from None
    try:
        return parse_rules(data)
    except RulesError as exc:
        raise RulesError(f"{name}: {exc}") from None


def load_rules(path: Path) -> Rules:
    return rules_from_bytes(path.read_bytes(), path.name)


def default_rules() -> Rules:
    """The rules shipped with telerad (src/telerad/workflow/default_rules.toml)."""
    raw = resources.files("telerad.workflow").joinpath("default_rules.toml").read_bytes()
    return rules_from_bytes(raw, "default_rules.toml")


def _mtime(path: Path) -> int:
    return os.stat(path).st_mtime_ns


class RulesSource:
    """The current rules of a file, re-read when its modification time changes.

    A file that stops parsing keeps the last good rules in force and sets
    :attr:`error`, which the supervisor's board shows until the file is fixed.
    """

    def __init__(
        self,
        path: Path,
        *,
        load: Callable[[Path], Rules] = load_rules,
        mtime: Callable[[Path], int] = _mtime,
    ) -> None:
        self.path = path
        self._load = load
        self._mtime = mtime
        self._seen = mtime(path)
        self._rules = load(path)  # a broken file at start-up is an error, not a fallback
        self.error: str | None = None
        self.reloads = 0

    def current(self) -> Rules:
        try:
            seen = self._mtime(self.path)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror or exc}"
            return self._rules
        if seen != self._seen:
            self._seen = seen
            try:
                self._rules = self._load(self.path)
            except (RulesError, OSError) as exc:
                self.error = str(exc)
            else:
                self.error = None
                self.reloads += 1
        return self._rules
