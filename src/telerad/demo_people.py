"""The demo's facilities and accounts, created on the first ``telerad serve --demo``.

Passwords are random and kept in ``demo-accounts.txt`` in the data dir (readable
by its owner only), so a demo never ships a known password. Only where that file
is gets printed: the console of ``telerad serve`` often ends up in a log.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from telerad.bootstrap import Platform
from telerad.demo import DEMO_FACILITY
from telerad.domain.identity import Role
from telerad.services.people import Administration

ACCOUNTS_FILE = "demo-accounts.txt"
OTHER_FACILITY = "Demo Imaging Center"
ACTOR = "demo"


def _password() -> str:
    return secrets.token_urlsafe(12)


def ensure_demo_people(platform: Platform) -> Path:
    """Create the demo facilities and accounts once; print how to sign in. Returns the file."""
    path = platform.settings.data_dir / ACCOUNTS_FILE
    if path.exists() or platform.auth.has_users():
        if path.exists():
            _say_where(path)
        return path
    admin = Administration(platform.index, platform.auth, platform.audit)
    # dcmtk's tools call as STORESCU/FINDSCU/MOVESCU: registered from this machine only.
    admin.add_facility(
        DEMO_FACILITY,
        ACTOR,
        ae_title="STORESCU",
        host="127.0.0.1",
        country="US",
        state="CA",
        region="us",
    )
    admin.add_facility(
        OTHER_FACILITY,
        ACTOR,
        ae_title="IMAGING1",
        host="127.0.0.1",
        country="US",
        state="NY",
        region="us",
    )
    for ae in ("FINDSCU", "MOVESCU", "GETSCU"):
        admin.add_node(ae, "127.0.0.1", 104, ACTOR, DEMO_FACILITY)
    passwords = {name: _password() for name in ("dr.reed", "tech.demo", "admin", "auditor")}
    admin.add_user(
        "dr.reed",
        Role.RADIOLOGIST,
        ACTOR,
        password=passwords["dr.reed"],
        display_name="Dr. Alex Reed",
        licences=["US-CA"],
        privileges=[DEMO_FACILITY],
    )
    _demo_reader(platform)
    admin.add_user(
        "tech.demo",
        Role.FACILITY_USER,
        ACTOR,
        facility=DEMO_FACILITY,
        password=passwords["tech.demo"],
        display_name="CT technologist",
    )
    network_admin = admin.add_user(
        "admin",
        Role.NETWORK_ADMIN,
        ACTOR,
        password=passwords["admin"],
        display_name="Network administrator",
    )
    otp = admin.enroll_totp(network_admin, ACTOR)
    admin.add_user("auditor", Role.AUDITOR, ACTOR, password=passwords["auditor"])
    s = platform.settings
    lines = [
        "telerad demo accounts (sign in at /login):",
        f"  dr.reed    {passwords['dr.reed']}  radiologist, privileged at {DEMO_FACILITY}"
        " (worklist at /worklist)",
        f"  tech.demo  {passwords['tech.demo']}  facility user at {DEMO_FACILITY}",
        f"  admin      {passwords['admin']}  network admin; second factor: {otp}",
        f"  auditor    {passwords['auditor']}  auditor (audit trail only)",
        f"DICOM: storescu -aet STORESCU {s.dicom_host} {s.dicom_port} FILE.dcm"
        f"  (sends for {DEMO_FACILITY})",
        "API token: telerad token create dr.reed",
    ]
    text = "\n".join(lines) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    _say_where(path)
    return path


def _say_where(path: Path) -> None:
    print(
        f"telerad demo: accounts, passwords and the admin's second factor are in {path}"
        " (readable by you only)",
        flush=True,
    )


def _demo_reader(platform: Platform) -> None:
    """dr.reed reads everything the demo sends, at any hour, so the worklist always works."""
    from telerad.domain.readers import weekly_rule
    from telerad.services.readers import ProfileChange, ReaderAdmin

    readers = ReaderAdmin(platform.reading.store, platform.identity, platform.audit)
    modalities = ("CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "OT")
    subspecialties = ("neuro", "body", "chest", "msk", "breast", "nm")
    change = ProfileChange(subspecialties, modalities, rvu_per_hour=12, tz="America/Los_Angeles")
    readers.set_profile("dr.reed", change, ACTOR)
    readers.add_shift("dr.reed", weekly_rule("daily", "00:00", "24:00"), ACTOR)
