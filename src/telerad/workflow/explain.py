"""Every assignment explains itself: "why me" for the reader, "why now" for the moment."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telerad.workflow.routing import Decision


def span(delta: timedelta) -> str:
    """A span of time as people say it: "12 min", "3.5 h"."""
    minutes = delta.total_seconds() / 60
    if abs(minutes) >= 120:
        return f"{minutes / 60:.1f} h"
    return f"{minutes:.0f} min"


def _qualifications(decision: Decision) -> str:
    study = decision.study
    parts = [
        f"licensed in {study.jurisdiction}",
        f"privileged at facility {study.facility_id}",
        f"reads {study.modality}",
    ]
    if study.subspecialty:
        parts.append(f"{study.subspecialty} subspecialist")
    parts.append(f"does {study.read_kind} reads")
    parts.append("on shift and signed in")
    return ", ".join(parts)


def _left_out(decision: Decision) -> str:
    if not decision.left_out:
        return ""
    counts = sorted(decision.left_out.items(), key=lambda kv: (-kv[1], kv[0]))
    return "; left out: " + ", ".join(f"{n} {why}" for why, n in counts)


def why_me(decision: Decision) -> str:
    score, reader = decision.score, decision.reader
    assert score is not None and reader is not None
    terms = score.terms
    out = [f"Why {reader.label}: {_qualifications(decision)}"]
    if terms["same_patient"]:
        out.append(f"holds another open study of this patient ({terms['same_patient']:+.2f})")
    if terms["priors"]:
        out.append(f"read this patient's priors ({terms['priors']:+.2f})")
    out.append(f"queue {score.load:g} of {score.cap:g} RVU ({terms['load']:+.2f})")
    left = max(decision.time_to_due, timedelta(minutes=1))
    share = score.wait_minutes / (left.total_seconds() / 60)
    when = "after their shift ends" if score.leaves_first else f"{share:.0%} of the time left"
    out.append(
        f"would start it in about {score.wait_minutes:.0f} min, {when} ({terms['wait']:+.2f})"
    )
    text = "; ".join(out) + f". Score {score.total:+.2f}"
    if decision.runner_up is not None:
        text += (
            f"; next best reader {decision.runner_up.user_id} scored "
            f"{decision.runner_up.total:+.2f}"
        )
    return text + f"; {decision.considered} eligible reader(s) scored{_left_out(decision)}."


def why_now(decision: Decision) -> str:
    study = decision.study
    target = study.turnaround
    deadline = study.deadline.strftime("%Y-%m-%d %H:%M %Z").strip()
    parts = [f"Why now: {decision.trigger}"]
    if decision.time_left > timedelta(0):
        parts.append(f"{span(decision.time_left)} left of its {span(target)} target")
    else:
        parts.append(f"{span(-decision.time_left)} past its {span(target)} target")
    parts[-1] += f" (deadline {deadline})"
    if decision.due is not None and decision.due < study.deadline:
        due = decision.due.strftime("%H:%M %Z").strip()
        parts.append(f"due by {due}: nobody qualified is on shift from then until the deadline")
    if decision.step is not None:
        parts.append(f"escalation step reached: {decision.step.action} at {decision.step.at:.0%}")
    if decision.bypassed_cap:
        parts.append(f"{study.priority} bypasses the queue cap")
    elif decision.widened:
        parts.append("the pool is widened to readers over their cap")
    return "; ".join(parts) + "."


def nobody(decision: Decision) -> str:
    study = decision.study
    if not decision.left_out and not decision.considered:
        needs = [
            f"licensed in {study.jurisdiction}",
            f"privileged at facility {study.facility_id}",
            f"reading {study.modality}",
        ]
        if study.subspecialty:
            needs.append(f"in {study.subspecialty}")
        needs.append(f"doing {study.read_kind} reads")
        return f"No reader: nobody on the roster is {', '.join(needs)}."
    counts = sorted(decision.left_out.items(), key=lambda kv: (-kv[1], kv[0]))
    return (
        "No reader now: the qualified readers are "
        + ", ".join(f"{n} {why}" for why, n in counts)
        + "."
    )


def explain(decision: Decision) -> str:
    head = f"Study {decision.study.describe}"
    if decision.reader is None:
        return f"{head}: {nobody(decision)} {why_now(decision)}"
    return f"{head} → {decision.reader.label}.\n{why_me(decision)}\n{why_now(decision)}"


def summary(decision: Decision) -> str:
    """The decision in one short line, for a worklist row ("neuro, licensed in US-TX,
    least loaded of 3"); :func:`explain` has the whole of it."""
    study, score, runner_up = decision.study, decision.score, decision.runner_up
    if decision.reader is None or score is None:
        return nobody(decision)
    parts = [study.subspecialty or study.modality, f"licensed in {study.jurisdiction}"]
    if decision.trigger.startswith(("assigned by", "pulled from the pool")):
        parts.append(decision.trigger)
    elif score.terms["same_patient"]:
        parts.append("holds this patient's other study")
    elif score.terms["priors"]:
        parts.append("read this patient's priors")
    if decision.considered <= 1 and not decision.trigger.startswith("assigned by"):
        parts.append("the only eligible reader")
    elif runner_up is not None and score.load < runner_up.load:
        parts.append(f"least loaded of {decision.considered}")
    elif runner_up is not None:
        parts.append(f"best placed of {decision.considered}")
    return ", ".join(parts)
