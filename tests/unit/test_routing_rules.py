"""Rules: the shipped defaults, contracts, errors that name the key, escalation steps
(files and their reloading: tests/integration/test_routing_rule_files.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.test_routing_support import NOW

from telerad.workflow.model import Priority
from telerad.workflow.rules import (
    EscalationAction,
    EscalationStep,
    Rules,
    RulesError,
    default_rules,
    parse_rules,
    rules_from_bytes,
)


def test_the_shipped_file_parses_to_the_documented_defaults() -> None:
    rules = default_rules()
    assert rules.targets[Priority.STROKE] == 20
    assert rules.targets[Priority.ROUTINE] == 1440
    assert rules.queue_cap_rvu == 20.0
    assert rules.bypass_cap == {Priority.STROKE, Priority.TRAUMA}
    assert [s.action for s in rules.escalation] == list(EscalationAction)
    assert rules.unclaimed_minutes[Priority.STROKE] == 3
    assert rules.pull_pool is False
    assert rules == Rules()  # the file and the code's defaults say the same


def test_contracts_override_some_tiers() -> None:
    rules = parse_rules({"targets": {"stat": 50}, "contracts": {"7": {"stat": 45}}})
    assert rules.target(7, Priority.STAT) == timedelta(minutes=45)
    assert rules.target(7, Priority.STROKE) == timedelta(minutes=20)  # the default tier
    assert rules.target(8, Priority.STAT) == timedelta(minutes=50)  # no contract
    assert rules.deadline(7, Priority.STAT, NOW) == NOW + timedelta(minutes=45)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "blue"}, "unknown key(s) colour"),
        ({"targets": {"stroek": 20}}, "targets: unknown key(s) stroek"),
        ({"targets": {"stroke": 0}}, "targets.stroke: must be a whole number of minutes > 0"),
        ({"targets": {"stroke": 2.5}}, "targets.stroke: must be a whole number"),
        ({"contracts": {"north": {"stat": 5}}}, "contracts.north: the key must be a facility id"),
        ({"contracts": {"7": {"stat": -5}}}, "contracts.7.stat: must be a whole number"),
        ({"weights": {"wait": "high"}}, "weights.wait: must be a number"),
        ({"weights": {"load": -1}}, "weights.load: must be ≥ 0"),
        ({"queue": {"cap_rvu": 0}}, "queue.cap_rvu: must be positive"),
        ({"queue": {"bypass_cap": ["code-red"]}}, "queue.bypass_cap[0]: unknown tier 'code-red'"),
        ({"escalation": [{"at": 1.5, "action": "breach"}]}, "escalation[0].at: must be in (0, 1]"),
        ({"escalation": [{"at": 0.5, "action": "panic"}]}, "escalation[0].action: unknown action"),
        ({"escalation": [{"at": 0.5}]}, "escalation[0]: a step has exactly 'at' and 'action'"),
        (
            {"escalation": [{"at": 0.8, "action": "breach"}, {"at": 0.5, "action": "breach"}]},
            "escalation[1].at: steps must be in increasing order",
        ),
        ({"reassignment": {"unclaimed_minutes": {"stat": 0}}}, "unclaimed_minutes.stat"),
        ({"pull_pool": {"enabled": "yes"}}, "pull_pool.enabled: must be true or false"),
        ({"pull_pool": {"tiers": ["stroke"]}}, "pull_pool.tiers: stroke bypass the queue cap"),
        ({"network": ""}, "network: must be a non-empty string"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(data)
    assert message in str(caught.value)


def test_syntax_errors_name_the_file() -> None:
    with pytest.raises(RulesError, match="net.toml: not valid TOML"):
        rules_from_bytes(b"[targets\nstroke = 20", "net.toml")
    with pytest.raises(RulesError, match="net.json: not valid JSON"):
        rules_from_bytes(b"{", "net.json")
    with pytest.raises(RulesError, match="net.json: the top level must be an object"):
        rules_from_bytes(b"[]", "net.json")
    with pytest.raises(RulesError, match="net.toml: queue.cap_rvu"):
        rules_from_bytes(b"[queue]\ncap_rvu = -3\n", "net.toml")


def test_rules_built_in_code_are_checked_too() -> None:
    with pytest.raises(RulesError, match="targets: no minutes for stroke"):
        Rules(targets={p: 10 for p in Priority if p is not Priority.STROKE})


def test_escalation_steps_reached() -> None:
    rules = Rules()
    assert rules.step_at(0.49) is None
    assert rules.step_at(0.5) == EscalationStep(0.5, EscalationAction.WIDEN_POOL)
    assert rules.step_at(0.95) == EscalationStep(0.8, EscalationAction.ALERT_SUPERVISOR)
    assert rules.step_at(3.0) == EscalationStep(1.0, EscalationAction.BREACH)
    assert not rules.widened(0.49) and rules.widened(0.5)
