"""Twelve-factor configuration: one pydantic-settings class per concern.

Each function loads only the classes it needs, so a function never requires a
secret it does not use (least privilege in production). A missing required
variable fails at start-up with a message naming it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """A required setting is missing or invalid."""


class _EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)


class CoreSettings(_EnvSettings):
    """Read by every function."""

    gcp_project: str = Field(validation_alias="GCP_PROJECT")
    region: str = Field("us-central1", validation_alias="REGION")
    default_region: str = Field("US", validation_alias="DEFAULT_REGION")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    # "HH:MM-HH:MM": the local period in which nothing is sent (TCPA window).
    quiet_hours_default: str = Field(
        "21:00-08:00", validation_alias="QUIET_HOURS_DEFAULT"
    )
    # "N/H": at most N messages per recipient in H hours across campaigns; empty = none.
    global_frequency_cap: str = Field("", validation_alias="GLOBAL_FREQUENCY_CAP")
    opt_out_footer: str = Field(
        "Reply STOP to opt out", validation_alias="OPT_OUT_FOOTER"
    )
    add_opt_out_footer: bool = Field(True, validation_alias="ADD_OPT_OUT_FOOTER")
    prohibited_patterns: str = Field("", validation_alias="PROHIBITED_PATTERNS")
    help_reply: str = Field(
        "Event Stream Engine: reply STOP to unsubscribe. Msg&data rates may apply.",
        validation_alias="HELP_REPLY",
    )
    stop_reply: str = Field(
        "You are unsubscribed and will receive no more messages. "
        "Reply START to resubscribe.",
        validation_alias="STOP_REPLY",
    )
    start_reply: str = Field(
        "You are subscribed again. Reply STOP to unsubscribe.",
        validation_alias="START_REPLY",
    )
    # Twilio Advanced Opt-Out may already answer keywords; then keep these off.
    send_help_reply: bool = Field(False, validation_alias="SEND_HELP_REPLY")
    send_opt_confirmations: bool = Field(
        False, validation_alias="SEND_OPT_CONFIRMATIONS"
    )
    sending_lease_seconds: int = Field(120, validation_alias="SENDING_LEASE_SECONDS")
    # A SENT message counts as settled when no callback moved it for this long.
    settle_seconds: int = Field(600, validation_alias="SETTLE_SECONDS")
    # A QUEUED message this long past its send_at has no live send task: the
    # task ran out of attempts, or its enqueue was lost. Longer than the send
    # queue's whole retry budget (about 1.9 h with infra's defaults; a unit
    # test holds the two apart), so a task still retrying is never doubled.
    stranded_queued_seconds: int = Field(
        3 * 3600, validation_alias="STRANDED_QUEUED_SECONDS"
    )
    campaign_cache_seconds: float = Field(
        2.0, validation_alias="CAMPAIGN_CACHE_SECONDS"
    )
    raw_retention_days: int = Field(30, validation_alias="RAW_RETENTION_DAYS")
    # A message document expires this long after its final status (GOV.UK
    # Notify's default retention); a Firestore TTL policy deletes it.
    message_retention_days: int = Field(
        90, ge=0, validation_alias="MESSAGE_RETENTION_DAYS"
    )
    # Recipients per `recipient-batches` message; tests lower it so a small
    # campaign still spans several batches.
    fanout_batch_size: int = Field(
        500, ge=1, le=500, validation_alias="FANOUT_BATCH_SIZE"
    )

    @property
    def prohibited_pattern_list(self) -> list[str]:
        return [p for p in self.prohibited_patterns.split("||") if p.strip()]


class TwilioSettings(_EnvSettings):
    """Read by the functions that talk to Twilio or check its signatures."""

    public_base_url: str = Field(validation_alias="PUBLIC_BASE_URL")
    account_sid: str = Field(validation_alias="TWILIO_ACCOUNT_SID")
    messaging_service_sid: str = Field(
        "", validation_alias="TWILIO_MESSAGING_SERVICE_SID"
    )
    from_number: str = Field("", validation_alias="TWILIO_FROM")
    # Set only by the local stack: the Twilio simulator's base URL.
    api_base_url: str = Field("", validation_alias="TWILIO_API_BASE_URL")
    request_timeout_seconds: float = Field(
        10.0, validation_alias="TWILIO_TIMEOUT_SECONDS"
    )

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class TwilioApiKeySettings(_EnvSettings):
    """Read by the functions that call Twilio's REST API.

    An API key (revocable, rotatable on its own) rather than the account's auth
    token, which is a master credential: a leaked sender environment is then
    not an account takeover.
    """

    api_key_sid: str = Field(validation_alias="TWILIO_API_KEY_SID")
    api_key_secret: str = Field(validation_alias="TWILIO_API_KEY_SECRET", repr=False)


class TwilioSignatureSettings(_EnvSettings):
    """Read only by webhook intake: Twilio signs webhooks with the auth token.

    "NEW,OLD" during a rotation: a signature by either is accepted.
    """

    auth_token: str = Field(validation_alias="TWILIO_AUTH_TOKEN", repr=False)


class ApiSettings(_EnvSettings):
    """Read by the REST API."""

    api_keys: str = Field(validation_alias="API_KEYS", repr=False)
    # Cloud Functions refuses a larger request before it reaches the code.
    max_upload_bytes: int = Field(32 * 1024 * 1024, validation_alias="MAX_UPLOAD_BYTES")

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


class PrivacySettings(_EnvSettings):
    """Read by the functions that derive message ids or suppression keys."""

    # HMAC key for recipient keys (message ids) and suppression entries.
    recipient_key: str = Field(
        validation_alias="RECIPIENT_KEY", min_length=16, repr=False
    )


class TaskSettings(_EnvSettings):
    """Read by the functions that enqueue sends."""

    backend: Literal["cloud", "local"] = Field(
        "cloud", validation_alias="TASKS_BACKEND"
    )
    queue: str = Field("message-sends", validation_alias="TASKS_QUEUE")
    location: str = Field("us-central1", validation_alias="TASKS_LOCATION")
    message_sender_url: str = Field(validation_alias="MESSAGE_SENDER_URL")
    service_account_email: str = Field("", validation_alias="TASKS_SERVICE_ACCOUNT")
    local_dispatcher_url: str = Field("", validation_alias="LOCAL_TASKS_URL")


SettingsT = TypeVar("SettingsT", bound=_EnvSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build a settings class from the environment, naming what is missing."""
    try:
        return cls()
    except ValidationError as exc:
        names = [str(err["loc"][0]) for err in exc.errors() if err.get("loc")]
        raise ConfigurationError(
            f"{cls.__name__}: missing or invalid setting(s): {', '.join(names)}"
        ) from exc


@lru_cache(maxsize=1)
def core_settings() -> CoreSettings:
    return load_settings(CoreSettings)


@lru_cache(maxsize=1)
def twilio_settings() -> TwilioSettings:
    return load_settings(TwilioSettings)


@lru_cache(maxsize=1)
def twilio_api_key_settings() -> TwilioApiKeySettings:
    return load_settings(TwilioApiKeySettings)


@lru_cache(maxsize=1)
def twilio_signature_settings() -> TwilioSignatureSettings:
    return load_settings(TwilioSignatureSettings)


@lru_cache(maxsize=1)
def api_settings() -> ApiSettings:
    return load_settings(ApiSettings)


@lru_cache(maxsize=1)
def privacy_settings() -> PrivacySettings:
    return load_settings(PrivacySettings)


@lru_cache(maxsize=1)
def task_settings() -> TaskSettings:
    return load_settings(TaskSettings)


# Which settings each deployed function reads; infra tests check the Terraform
# sets every required variable of these classes on that function.
FUNCTION_SETTINGS: dict[str, tuple[type[_EnvSettings], ...]] = {
    "api": (CoreSettings, ApiSettings, TaskSettings, PrivacySettings),
    "twilio_webhooks": (CoreSettings, TwilioSettings, TwilioSignatureSettings),
    "campaign_scheduler": (CoreSettings, TaskSettings),
    "segment_evaluator": (CoreSettings,),
    "campaign_fanout": (CoreSettings, TaskSettings, PrivacySettings),
    "message_sender": (
        CoreSettings,
        TwilioSettings,
        TwilioApiKeySettings,
        TaskSettings,
    ),
    "receipt_updater": (CoreSettings,),
    "inbound_processor": (CoreSettings, TwilioSettings, TwilioApiKeySettings),
    "event_router": (CoreSettings, TaskSettings, PrivacySettings),
    # Reads suppression entries (keyed hashes) so a re-import keeps an opt-out.
    "contact_importer": (CoreSettings, PrivacySettings),
}
