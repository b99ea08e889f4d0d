"""How often the pre-sign checks catch what they are for, and how often they cry wolf.

``python -m bench.report_checks [--reports 2000] [--seed 1] [--json]``

Generates reports as radiologists write them — several exam types, the order's side
and the patient's sex varying, findings and impressions drawn from phrase banks,
comparisons written in the forms reports use — and, for each check, injects its
fault into some of them in the ways the fault really occurs (the other side in the
impression or the findings, abbreviated or spelt out; an organ of the other sex; a
value out of range or not in the pick list; a comparison date the patient has no
study on; an empty impression or required field). Sound reports carry the traps a
check must not fall into: both sides named, "cervical spine", a comparison of
"None", a date within a day of a prior.

It prints per check: faults injected, caught (sensitivity), and sound reports it
flagged (false alarms per 1000), so docs/benchmarks.md can give the hit rate.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from telerad.domain.report_checks import Check, Context, Prior, check
from telerad.domain.reports import Content
from telerad.domain.templates import Field, FieldKind, Heading, Option, Section, Template


def _template(tid: str, fields: tuple[Field, ...]) -> Template:
    return Template(
        tid,
        tid,
        sections=(
            Section("history", "History", Heading.HISTORY),
            Section("comparison", "Comparison", Heading.COMPARISON),
            Section("findings", "Findings", Heading.FINDINGS, fields=fields, required=True),
            Section("impression", "Impression", Heading.IMPRESSION),
        ),
    )


SIZE = Field("size", "Largest lesion (mm)", FieldKind.NUMBER, unit="mm", minimum=0, maximum=300)
GRADE = Field(
    "grade",
    "Effusion",
    FieldKind.CHOICE,
    required=True,
    options=(Option("none", "None"), Option("small", "Small"), Option("large", "Large")),
)
TEMPLATES = {
    "knee": _template("xr-knee", (GRADE,)),
    "breast": _template("us-breast", (SIZE,)),
    "hip": _template("xr-hip", (GRADE,)),
    "pelvis": _template("ct-abdomen-pelvis", (SIZE,)),
    "head": _template("ct-head", (SIZE,)),
}
SIDED = ("knee", "breast", "hip")

FINDINGS = {
    "knee": [
        "No fracture or dislocation of the {side} knee.",
        "Mild medial joint space narrowing of the {side} knee.",
        "{Side} knee: small osteophytes, no effusion of note.",
    ],
    "breast": [
        "The {side} breast shows a simple cyst at 2 o'clock.",
        "No suspicious mass in the {side} breast.",
    ],
    "hip": ["No fracture of the {side} femoral neck.", "Mild degenerative change, {side} hip."],
    "pelvis": [
        "Liver, spleen and pancreas unremarkable.",
        "No free fluid. Bowel loops normal in calibre.",
    ],
    "head": [
        "No intracranial haemorrhage. Ventricles normal.",
        "Cervical spine alignment normal where imaged.",
    ],
}
SEXED = {"F": ["The uterus and ovaries are unremarkable."], "M": ["The prostate is not enlarged."]}
OTHER_SEX = {
    "F": ["Prostatic calcifications.", "The testes are normal.", "Scrotal wall thickening."],
    "M": ["Ovarian cyst noted.", "The uterus is anteverted.", "Endometrial thickening."],
}
IMPRESSIONS = ["No acute abnormality.", "Degenerative change only.", "Benign appearance."]
SIDE_WORDS = {"L": ["left", "Left", "lt.", "LEFT"], "R": ["right", "Right", "rt.", "RIGHT"]}


def date_forms(d: date) -> list[str]:
    return [
        d.isoformat(),
        d.strftime("%m/%d/%Y"),
        d.strftime("%d.%m.%Y"),
        d.strftime("%B %d, %Y").replace(" 0", " "),
        d.strftime("%d %b %Y").lstrip("0"),
        d.strftime("%Y%m%d"),
    ]


@dataclass
class Case:
    template: Template
    content: Content
    context: Context
    fault: Check | None


def sound(rng: random.Random, kind: str) -> tuple[dict[str, str], dict[str, str], Context]:
    side = rng.choice("LR") if kind in SIDED else ""
    sex = "F" if kind == "breast" else rng.choice("FM")
    words = {"side": rng.choice(SIDE_WORDS[side]) if side else "", "Side": ""}
    words["Side"] = words["side"].capitalize()
    findings = rng.choice(FINDINGS[kind]).format(**words)
    if kind == "pelvis":
        findings += " " + rng.choice(SEXED[sex])
    if side and rng.random() < 0.2:  # both sides named (a comparison with the other one)
        other = "right" if side == "L" else "left"
        findings += f" The {other} side, partly seen, is normal too."
    if side and rng.random() < 0.05:  # only the other side named, negated: a false alarm
        other = "right" if side == "L" else "left"
        findings = f"No fracture. No {other}-sided abnormality projected over the film."
    study_day = date(2026, 11, 1) + timedelta(days=rng.randrange(30))
    priors = tuple(
        Prior(study_day - timedelta(days=rng.randrange(30, 2000))) for _ in range(rng.randrange(3))
    )
    if priors and rng.random() < 0.8:
        day = priors[0].study_date + timedelta(days=rng.choice((0, 0, 0, 1, -1)))
        comparison = "Comparison with the study of " + rng.choice(date_forms(day)) + "."
    elif rng.random() < 0.1:  # an outside study this archive never had: flagged
        outside = study_day - timedelta(days=rng.randrange(100, 900))
        comparison = f"Outside CT of {outside.isoformat()}, report only."
    else:
        comparison = rng.choice(["None.", "No prior studies.", "N/A", ""])
    procedure = {
        "knee": "XR KNEE 3 VIEWS",
        "breast": "US BREAST LIMITED",
        "hip": "XR HIP 2 VIEWS",
        "pelvis": "CT ABDOMEN PELVIS W CONTRAST",
        "head": "CT HEAD WO CONTRAST",
    }[kind]
    if side:
        procedure += " " + rng.choice(SIDE_WORDS[side]).upper().rstrip(".")
    sections = {
        "history": "Pain.",
        "comparison": comparison,
        "findings": findings,
        "impression": rng.choice(IMPRESSIONS),
    }
    size = f"{rng.randrange(1, 80)}" + rng.choice(["", "", ",5", ".5"])  # decimal commas too
    fields = {"size": size} if kind in ("breast", "pelvis", "head") else {}
    if kind in ("knee", "hip"):
        fields["grade"] = rng.choice(["none", "small", "large"])
    context = Context(procedure, "", sex, priors, study_day)
    return sections, fields, context


def inject(rng: random.Random, kind: str, fault: Check, sections: dict[str, str],
           fields: dict[str, str], context: Context) -> bool:  # fmt: skip
    """Put ``fault`` into the report; False when it cannot occur in this kind of exam."""
    if fault is Check.LATERALITY:
        if kind not in SIDED:
            return False
        ordered = "L" if "LEFT" in context.procedure or "LT" in context.procedure else "R"
        wrong = rng.choice(SIDE_WORDS["R" if ordered == "L" else "L"])
        roll = rng.random()
        if roll < 0.4:
            sections["impression"] = f"{wrong.capitalize()} {kind}: " + sections["impression"]
        elif roll < 0.8:  # the whole findings written for the other side (a copied report)
            sections["findings"] = rng.choice(FINDINGS[kind]).format(
                side=wrong, Side=wrong.capitalize()
            )
        else:  # one structure given the wrong side amid text of the right one: missed
            right = rng.choice(SIDE_WORDS[ordered])
            sections["findings"] = (
                f"{right.capitalize()} {kind} examined. Tear of the {wrong} medial structure."
            )
        return True
    if fault is Check.SEX:
        sex = context.sex
        if kind == "breast":
            return False
        sections["findings"] += " " + rng.choice(OTHER_SEX[sex])
        return True
    if fault is Check.RANGE:
        if "size" in fields:
            fields["size"] = rng.choice(["450", "-3", "1e4", "12 mm", "twelve"])
        else:
            fields["grade"] = rng.choice(["moderate", "trace", "yes"])
        return True
    if fault is Check.COMPARISON:
        day = (context.study_date or date(2026, 11, 1)) - timedelta(days=rng.randrange(2, 3000))
        if any(abs((day - p.study_date).days) <= 1 for p in context.priors):
            return False
        roll = rng.random()
        if roll < 0.8:
            sections["comparison"] = "Compared with " + rng.choice(date_forms(day)) + "."
        elif roll < 0.9:  # a two-digit year: not read as a date, so missed
            sections["comparison"] = f"Compared with {day.month}/{day.day}/{day.year % 100:02d}."
        else:  # a prior named without a date the patient never had: missed
            sections["comparison"] = "Compared with the prior MRI."
        return True
    if fault is Check.IMPRESSION:
        sections["impression"] = rng.choice(["", "  ", "\n"])
        return True
    if fault is Check.REQUIRED:
        if "grade" in fields:
            fields["grade"] = ""
        else:
            sections["findings"] = ""
        return True
    return False


def cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    out = []
    faults = list(Check)
    while len(out) < n:
        kind = rng.choice(list(TEMPLATES))
        sections, fields, context = sound(rng, kind)
        fault = rng.choice(faults) if rng.random() < 0.5 else None
        if fault is not None and not inject(rng, kind, fault, sections, fields, context):
            continue
        template = TEMPLATES[kind]
        out.append(Case(template, Content(template.id, "1", sections, fields), context, fault))
    return out


def measure(all_cases: list[Case]) -> dict[str, dict[str, float]]:
    injected: Counter[Check] = Counter()
    caught: Counter[Check] = Counter()
    false_alarms: Counter[Check] = Counter()
    clean = 0
    for case in all_cases:
        found = {f.check for f in check(case.template, case.content, case.context)}
        if case.fault is None:
            clean += 1
            for c in found:
                false_alarms[c] += 1
            continue
        injected[case.fault] += 1
        if case.fault in found:
            caught[case.fault] += 1
        for c in found - {case.fault}:
            # A check firing on another check's fault is a false alarm too, except the
            # emptied findings (a required section) which also empties their words.
            if not (case.fault is Check.REQUIRED and c is Check.LATERALITY):
                false_alarms[c] += 1
    return {
        c.value: {
            "injected": injected[c],
            "caught": caught[c],
            "sensitivity": caught[c] / injected[c] if injected[c] else float("nan"),
            "false_alarms_per_1000": 1000 * false_alarms[c] / len(all_cases),
        }
        for c in Check
    } | {"_clean_reports": {"count": clean}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(cases(args.reports, args.seed))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.reports} generated reports (seed {args.seed}), "
          f"{result['_clean_reports']['count']} of them sound")  # fmt: skip
    print(f"{'check':<20} {'injected':>8} {'caught':>7} {'hit rate':>9} {'false alarms/1000':>18}")
    for name, row in result.items():
        if name.startswith("_"):
            continue
        print(
            f"{name:<20} {row['injected']:>8.0f} {row['caught']:>7.0f} "
            f"{row['sensitivity']:>8.1%} {row['false_alarms_per_1000']:>18.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
