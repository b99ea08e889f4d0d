"""Settings read from the environment (``TELERAD_*``); built in bootstrap, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def vendor_dir(name: str, marker: str) -> Path | None:
    """vendor/<name> (what `make install` fetched) of the source checkout
    (src/telerad/ → repository root), else of the cwd; it must hold ``marker``."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base / "vendor" / name
        if (candidate / marker).is_file():
            return candidate
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELERAD_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./data"), description="Where blobs and the embedded index live"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite in the data dir when unset"
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    dicom_host: str = "127.0.0.1"
    dicom_port: int = 11112
    dicom_aet: str = "TELERAD"
    # Largest PDU we accept; large PDUs cut per-PDU overhead on big images.
    dicom_max_pdu: int = 4 * 1024 * 1024
    dicom_max_associations: int = 32
    # TLS: with a certificate and key (PEM) the web server speaks HTTPS on http_port and
    # a DICOM TLS listener runs on dicom_tls_port; with a client CA, DICOM TLS is mutual.
    tls_cert: Path | None = Field(default=None, description="Server certificate chain (PEM)")
    tls_key: Path | None = Field(default=None, description="Server private key (PEM)")
    tls_client_ca: Path | None = Field(
        default=None, description="CA certificates that sign client certificates (PEM)"
    )
    dicom_tls_port: int = 2762  # the port registered for DICOM over TLS
    # HL7 v2 over MLLP (orders, patient updates): plain on mllp_port, and over TLS on
    # mllp_tls_port when the TLS certificate and key are set (mutual with a client CA).
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575  # the port registered for HL7 over MLLP
    mllp_tls_port: int = 2576
    mllp_max_frame: int = 1024 * 1024  # longest message accepted, in bytes
    mllp_idle_timeout: float = 60.0  # seconds without a byte before a connection is closed
    mllp_max_connections: int = 64
    # The facility of writes that name no other (services/admission.py): any calling AE
    # title while the platform has no account (it listens on loopback only then; once an
    # account exists unregistered AE titles are rejected), a reading hub's C-STOREs (a node
    # registered for no facility), a network-wide account's STOW-RS, `telerad import`.
    default_facility: str = "DEFAULT"
    cors_origins: list[str] = Field(default_factory=list)
    # Hard caps on HTTP request bodies, decoded ones included (web/body_limit.py):
    # STOW-RS takes whole studies, everything else (FHIR, REST, forms) small JSON.
    stow_max_body: int = 2 * 1024 * 1024 * 1024
    http_max_body: int = 1024 * 1024
    # fsync each blob before its store is acknowledged, and the blob directories every 2 s;
    # false: an acknowledged object may be lost in a crash. (The SQLite index's WAL is
    # synced every 2 s either way, and recovered from the blobs after an unclean stop.)
    fsync: bool = True
    # The unmodified OHIF Viewer build (`make install` unpacks it into vendor/ohif).
    viewer_dir: Path | None = Field(
        default_factory=lambda: vendor_dir("ohif", "index.html"),
        description="Directory of the OHIF Viewer build served at /viewer",
    )

    # -- orders and reading ------------------------------------------------------------
    # The procedure catalogue (TOML): modality, body part, RVU and subspecialty per code.
    procedures_file: Path | None = None
    # The reading network's routing rules (TOML or JSON), reloaded when the file changes.
    rules_file: Path | None = None
    # A study is readable once no instance has arrived for this long (and it is complete).
    stable_seconds: int = 120
    # A stable study with something missing is held this long, then read with it shown.
    hold_minutes: int = 30
    # How often reconciliation and readiness look at what changed (seconds).
    reconcile_seconds: float = 5.0
    # How often the reading worklist's clock ticks: sessions, shifts, escalation (seconds).
    worklist_tick_seconds: float = 20.0
    # Where the other processes of a network reach this one's HTTP (default: its host and
    # port, loopback when it listens on every address).
    advertise_url: str | None = None

    @property
    def resolved_advertise_url(self) -> str:
        if self.advertise_url:
            return self.advertise_url
        scheme = "https" if self.tls_cert and self.tls_key else "http"
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
        return f"{scheme}://{host}:{self.http_port}"

    # -- results delivery (the outbox) ----------------------------------------------------
    # How often the outbox worker looks for messages due (seconds); a signature in the
    # same process wakes it at once.
    outbox_seconds: float = 0.5
    # A facility's HL7 endpoint has this long to take the connection, and to answer.
    results_connect_seconds: float = 5.0
    results_answer_seconds: float = 15.0
    # Retries wait from the first to the longest wait, doubling; a message is a dead
    # letter after this many refusals (AE/AR) or this long undelivered.
    results_retry_first_seconds: float = 2.0
    results_retry_longest_seconds: float = 300.0
    results_refusals: int = 5
    results_give_up_hours: float = 24.0
    # CA certificates that sign the facilities' endpoint certificates (PEM; default: the
    # system's). The platform's own TLS certificate is presented for mutual TLS.
    results_tls_ca: Path | None = None
    # Who sends the results (MSH-3, MSH-4).
    hl7_application: str = "TELERAD"
    hl7_facility: str = "TELERAD"

    # The time zone (IANA name) the modality worklist gives scheduled dates and times in.
    worklist_tz: str = "UTC"

    # -- storage protection ----------------------------------------------------------------
    # Data residency: region name → root directory of that region's blobs (JSON object).
    # When set, a facility's objects are kept under its region's root, and a facility
    # whose region is not listed cannot store. Facilities without a region use blob_dir.
    storage_regions: dict[str, Path] = Field(default_factory=dict)
    # Encryption at rest: a 32-byte master key in base64 (or a file holding it) wraps
    # per-facility data keys; objects are sealed with AES-256-GCM.
    master_key: str | None = Field(default=None, repr=False)
    master_key_file: Path | None = None

    # -- sign-in -----------------------------------------------------------------------
    # Signs bearer tokens and encrypts TOTP seeds; generated into the data dir when unset
    # (set it when several machines serve the same network).
    secret_key: str | None = Field(default=None, repr=False)
    token_minutes: int = 60
    session_idle_minutes: int = 30
    # Roles that cannot sign in without a TOTP second factor.
    mfa_roles: list[str] = Field(default_factory=lambda: ["network-admin"])
    # OpenID Connect: on when the issuer and client id are set. The identity provider
    # proves who a person is; the account (role, facilities) is telerad's.
    oidc_issuer: str | None = Field(default=None, description="Issuer URL of the OpenID provider")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = Field(default=None, repr=False)
    oidc_name: str = "your identity provider"  # "Sign in with …" on the sign-in page
    oidc_scopes: str = "openid email profile"
    oidc_username_claim: str = "preferred_username"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"
