"""The Terraform in infra/ matches the code it deploys.

`terraform validate` needs the providers, which need the registry; these checks
need neither. They parse infra/*.tf with python-hcl2 and hold it against
functions/, shared.platform.config.FUNCTION_SETTINGS, shared.platform.pubsub
.Topic and the Firestore queries the code runs.

The resolver below understands the few expression shapes infra/ uses on
purpose (`local.x`, `var.x`, `toset(local.x)`, `merge(local.a, local.b, ...)`,
`"${each.key}-dlq"`); anything else fails loudly instead of passing silently.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from shared.platform.config import (
    FUNCTION_SETTINGS,
    CoreSettings,
    TaskSettings,
)
from shared.platform.pubsub import Topic

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra"
FUNCTIONS = sorted(
    p.parent.name for p in (REPO / "functions").glob("*/main.py") if p.is_file()
)

# Which function consumes which topic (docs/architecture.md §2).
CONSUMERS = {
    Topic.CAMPAIGN_LAUNCHES: "segment_evaluator",
    Topic.RECIPIENT_BATCHES: "campaign_fanout",
    Topic.DELIVERY_RECEIPTS: "receipt_updater",
    Topic.INBOUND_MESSAGES: "inbound_processor",
    Topic.EVENTS: "event_router",
    Topic.IMPORT_CHUNKS: "contact_importer",
}

# Composite queries the code runs today: (collection, ((field, order), ...)).
REQUIRED_COMPOSITE_INDEXES = [
    # shared/delivery/sender.py count_recent_sends: frequency cap
    ("messages", (("phone", "ASCENDING"), ("sent_at", "ASCENDING"))),
    # shared/api/messages.py list_user_messages: a contact's messages, newest first
    ("messages", (("phone", "ASCENDING"), ("created_at", "DESCENDING"))),
    # shared/campaigns/scheduler.py status_counts / is_finished, api paging by status
    ("messages", (("campaign_id", "ASCENDING"), ("status_rank", "ASCENDING"))),
    # shared/campaigns/scheduler.py is_finished: unsettled SENT messages
    (
        "messages",
        (
            ("campaign_id", "ASCENDING"),
            ("status_rank", "ASCENDING"),
            ("sent_at", "ASCENDING"),
        ),
    ),
    # shared/campaigns/scheduler.py sweep_stuck_sends: expired claims
    ("messages", (("status_rank", "ASCENDING"), ("lease_until", "ASCENDING"))),
    # shared/campaigns/scheduler.py sweep_stranded_queued: queued long past send_at
    (
        "messages",
        (
            ("held", "ASCENDING"),
            ("status_rank", "ASCENDING"),
            ("send_at", "ASCENDING"),
        ),
    ),
    # shared/campaigns/scheduler.py launch_due: due scheduled campaigns
    ("campaigns", (("status", "ASCENDING"), ("schedule_at", "ASCENDING"))),
    # shared/campaigns/summary.py: sends and their segments, first and last send
    (
        "messages",
        (
            ("campaign_id", "ASCENDING"),
            ("sent_at", "ASCENDING"),
            ("segments", "ASCENDING"),
        ),
    ),
    ("messages", (("campaign_id", "ASCENDING"), ("sent_at", "DESCENDING"))),
    # shared/campaigns/summary.py: opt-outs after send (triggered campaigns)
    (
        "messages",
        (
            ("campaign_id", "ASCENDING"),
            ("phone", "ASCENDING"),
            ("sent_at", "ASCENDING"),
        ),
    ),
    # shared/api/reports.py dashboard: messages per status over 24 h
    ("messages", (("status_rank", "ASCENDING"), ("created_at", "ASCENDING"))),
    # shared/api/reports.py dashboard: inbound per classification over 24 h
    ("inbound", (("classification", "ASCENDING"), ("received_at", "ASCENDING"))),
    # shared/events/republish.py republish_stranded_events
    ("events", (("status", "ASCENDING"), ("republish_at", "ASCENDING"))),
    # shared/campaigns/summary.py: STOPs in the campaign's window (group query)
    ("consent_events", (("to", "ASCENDING"), ("at", "ASCENDING"))),
]

TTL_FIELDS = [
    ("receipts", "expire_at"),
    ("inbound", "expire_at"),
    ("events", "expire_at"),
    ("provider_sids", "expire_at"),
    ("imports", "expire_at"),
    ("chunks", "expire_at"),  # imports/{id}/chunks: the per-chunk markers
    ("parts", "expire_at"),
    # Retention (docs/architecture.md §3): messages after their final status.
    ("messages", "expire_at"),
]


def test_fields_erasure_queries_stay_indexed() -> None:
    # shared/privacy/erasure.py finds a number's documents by these fields.
    exempt = {
        (o["collectionGroup"], o["fieldPath"])
        for o in firestore_spec()["fieldOverrides"]
        if o.get("indexes") == []
    }
    for field in (
        ("messages", "phone"),
        ("inbound", "phone"),
        ("events", "phone"),
        ("receipts", "params"),
    ):
        assert field not in exempt, field


PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}

# --------------------------------------------------------------------------
# Parsing and a small normaliser for python-hcl2 v8 output
# --------------------------------------------------------------------------

_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _clean(node: Any) -> Any:
    """Drop hcl2 markers and quotes, whatever the serialisation options did."""
    if isinstance(node, dict):
        return {
            _unquote(str(k)): _clean(v)
            for k, v in node.items()
            if not str(k).startswith("__")
        }
    if isinstance(node, list):
        return [_clean(v) for v in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


def expr(value: Any) -> str:
    """The expression inside a `${...}` wrapper; other strings as they are."""
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        inner = text[2:-1]
        if "${" not in inner:
            return inner
    return text


@cache
def terraform() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            doc = _clean(hcl2.load(handle, serialization_options=_OPTIONS))
        for key, items in doc.items():
            merged.setdefault(key, []).extend(items)
    return merged


def resources(rtype: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in terraform().get("resource", []):
        for name, body in block.get(rtype, {}).items():
            found[name] = body
    return found


def all_resources() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for block in terraform().get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                yield rtype, name, body


@cache
def tf_locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in terraform().get("locals", []):
        merged.update(block)
    return merged


@cache
def tf_variables() -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for block in terraform().get("variable", []):
        merged.update(block)
    return merged


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    value = body.get(name)
    if isinstance(value, list):
        assert len(value) == 1, f"expected one {name} block, got {len(value)}"
        value = value[0]
    assert isinstance(value, dict), f"missing {name} block"
    return value


def resolve(value: Any) -> Any:
    """Resolve `local.x`, `var.x` (its default) and `toset(...)` to a value."""
    if not isinstance(value, str):
        return value
    text = expr(value)
    if match := re.fullmatch(r"toset\((.+)\)", text):
        return resolve("${" + match.group(1) + "}")
    if match := re.fullmatch(r"local\.(\w+)", text):
        return resolve(tf_locals()[match.group(1)])
    if match := re.fullmatch(r"var\.(\w+)", text):
        return resolve(tf_variables()[match.group(1)].get("default"))
    return value


def _split_args(text: str) -> list[str]:
    args, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        depth += char in "([{"
        depth -= char in ")]}"
        current += char
    if current.strip():
        args.append(current.strip())
    return args


def map_keys(value: Any) -> set[str]:
    """Keys of a map expression: a literal map, a local, a var, or merge(...)."""
    if isinstance(value, dict):
        return set(value)
    text = expr(value)
    if text.startswith("{") and text.endswith("}"):  # an inline object
        return {
            item.split("=")[0].strip()
            for item in _split_args(text[1:-1])
            if "=" in item
        }
    if match := re.fullmatch(r"merge\((.*)\)", text, flags=re.DOTALL):
        keys: set[str] = set()
        for arg in _split_args(match.group(1)):
            keys |= map_keys("${" + arg + "}")
        return keys
    resolved = resolve(value)
    if resolved is None:
        return set()
    assert resolved is not value, f"cannot resolve map expression {text!r}"
    return map_keys(resolved)


def for_each_items(body: dict[str, Any]) -> dict[str, Any]:
    """each.key -> each.value of a resource (one None key without for_each)."""
    if "for_each" not in body:
        return {"": None}
    resolved = resolve(body["for_each"])
    if isinstance(resolved, list):
        return {str(item): item for item in resolved}
    assert isinstance(resolved, dict), f"cannot resolve for_each {body['for_each']!r}"
    return resolved


def render(value: Any, key: str, item: Any) -> str:
    """An expression with each.key / each.value substituted."""
    text = str(value)
    for pattern, sub in (("each.key", key), ("each.value", str(item))):
        if expr(text) == pattern:
            return sub
        text = text.replace("${" + pattern + "}", sub)
        text = text.replace(f"[{pattern}]", f'["{sub}"]')
    return text


# --------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------


# The one google_cloudfunctions2_function: for_each over local.function_specs.
FUNCTION_RESOURCE = "fn"


def _fill(text: str, names: dict[str, Any]) -> Any:
    """`text` with each reference in `names` (e.g. each.key, each.value.env)
    replaced: a whole-expression reference by its value as it is, one inside a
    larger expression by its expression text, an index by a quoted key."""
    for ref, value in names.items():
        if expr(text) == ref:
            return value
        inner = expr(value) if isinstance(value, str) else json.dumps(value)
        text = text.replace("${" + ref + "}", str(value))
        text = text.replace(f"[{ref}]", f'["{value}"]')
        text = re.sub(rf"(?<![\w.]){re.escape(ref)}(?![\w])", inner, text)
    return text


def _instantiate(node: Any, names: dict[str, Any]) -> Any:
    """A resource body for one for_each instance: references filled in and
    `dynamic` blocks expanded into the blocks they generate."""
    if isinstance(node, list):
        return [_instantiate(item, names) for item in node]
    if isinstance(node, str):
        return _fill(node, names)
    if not isinstance(node, dict):
        return node
    body: dict[str, Any] = {}
    for key, value in node.items():
        if key != "dynamic":
            body[key] = _instantiate(value, names)
            continue
        for dynamic in value:
            for label, spec in dynamic.items():
                items = _instantiate(spec["for_each"], names)
                assert isinstance(items, list), f"cannot expand dynamic {label}"
                for item in items:
                    inner = {**names, f"{label}.value": item}
                    body.setdefault(label, []).extend(
                        _instantiate(spec["content"], inner)
                    )
    return body


@cache
def function_instances() -> dict[str, dict[str, Any]]:
    """Function name -> its resource body as Terraform instantiates it."""
    body = resources("google_cloudfunctions2_function")[FUNCTION_RESOURCE]
    assert expr(body["for_each"]) == "local.function_specs"
    specs = tf_locals()["function_specs"]
    instances = {}
    for name, spec in specs.items():
        names = {f"each.value.{field}": value for field, value in spec.items()}
        # Longer references first: each.value.x before each.key's prefix.
        names = dict(sorted(names.items(), key=lambda kv: -len(kv[0])))
        instances[name] = _instantiate(body, {**names, "each.key": name})
    return instances


def functions_by_entry_point() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for body in function_instances().values():
        found.setdefault(block(body, "build_config")["entry_point"], []).append(body)
    return found


def function(name: str) -> dict[str, Any]:
    return function_instances()[name]


def test_functions_folder_list_is_not_empty() -> None:
    assert "message_sender" in FUNCTIONS
    assert set(FUNCTION_SETTINGS) == set(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_function_folder_is_deployed_once(name: str) -> None:
    deployed = functions_by_entry_point().get(name, [])
    assert len(deployed) == 1, (
        f"{name}: {len(deployed)} google_cloudfunctions2_function"
    )
    build = block(deployed[0], "build_config")
    assert build["runtime"] == "python312"
    assert build["environment_variables"]["GOOGLE_FUNCTION_SOURCE"] == (
        f"functions/{name}/main.py"
    )
    source = (REPO / "functions" / name / "main.py").read_text(encoding="utf-8")
    assert re.search(rf"^def {name}\(", source, flags=re.MULTILINE)


def test_no_function_without_a_folder() -> None:
    assert set(functions_by_entry_point()) == set(FUNCTIONS)
    assert set(function_instances()) == set(FUNCTIONS)
    # One definition for all of them: what differs is data in function_specs.
    assert set(resources("google_cloudfunctions2_function")) == {FUNCTION_RESOURCE}


def moved_blocks() -> dict[str, str]:
    return {
        expr(moved["from"]): expr(moved["to"]) for moved in terraform().get("moved", [])
    }


def unmoved(rtype: str, resource: str, keys: Iterable[str]) -> list[str]:
    """The keys whose old `rtype.<key>` does not move to `rtype.resource["<key>"]`."""
    moves = moved_blocks()
    return [
        key
        for key in keys
        if moves.get(f"{rtype}.{key}") != f'{rtype}.{resource}["{key}"]'
    ]


def test_each_function_keeps_its_state_from_its_old_address() -> None:
    # Each function was its own resource; `moved` carries its state to its
    # for_each instance, so an existing deployment updates in place.
    rtype = "google_cloudfunctions2_function"
    assert unmoved(rtype, FUNCTION_RESOURCE, FUNCTIONS) == []


def env_keys(name: str) -> tuple[set[str], set[str]]:
    service = block(function(name), "service_config")
    plain = map_keys(service.get("environment_variables", {}))
    secrets = {s["key"] for s in service.get("secret_environment_variables", [])}
    return plain, secrets


def required_env(name: str) -> set[str]:
    return {
        str(field.validation_alias)
        for cls in FUNCTION_SETTINGS[name]
        for field in cls.model_fields.values()
        if field.is_required()
    }


@pytest.mark.parametrize("name", FUNCTIONS)
def test_required_settings_are_set(name: str) -> None:
    plain, secrets = env_keys(name)
    missing = required_env(name) - plain - secrets
    assert not missing, f"{name} lacks required settings {sorted(missing)}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_secrets_only_as_secret_env_and_only_where_read(name: str) -> None:
    plain, secrets = env_keys(name)
    assert not set(SECRET_ENV.values()) & plain
    readers = {env: env in required_env(name) for env in SECRET_ENV.values()}
    assert secrets == {key for key, reads in readers.items() if reads}


# Terraform secret → the environment variable it is mounted as.
SECRET_ENV = {
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_api_key_sid": "TWILIO_API_KEY_SID",
    "twilio_api_key_secret": "TWILIO_API_KEY_SECRET",
    "recipient_key": "RECIPIENT_KEY",
    "api_keys": "API_KEYS",
}


# The one google_secret_manager_secret: for_each over local.secrets.
SECRET_RESOURCE = "secret"


def test_the_secrets_are_one_definition_over_a_map() -> None:
    assert set(resources("google_secret_manager_secret")) == {SECRET_RESOURCE}
    secrets = tf_locals()["secrets"]
    assert set(secrets) == set(SECRET_ENV)
    # Each Secret Manager id is the one the deployment already has.
    assert secrets == {key: key.replace("_", "-") for key in SECRET_ENV}
    secret = resources("google_secret_manager_secret")[SECRET_RESOURCE]
    assert expr(secret["for_each"]) == "local.secrets"
    assert expr(secret["secret_id"]) == "each.value"
    assert expr(tf_locals()["secret_ids"]) == (
        "{for key, secret in google_secret_manager_secret.secret"
        " : key => secret.secret_id}"
    )


def test_each_secret_keeps_its_state_from_its_old_address() -> None:
    # Each secret was its own resource; `moved` carries its state (and its
    # versions) to its for_each instance, so nothing is destroyed.
    rtype = "google_secret_manager_secret"
    assert unmoved(rtype, SECRET_RESOURCE, SECRET_ENV) == []


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_secret_env_mounts_its_own_secret(name: str) -> None:
    env_of = {env: secret for secret, env in SECRET_ENV.items()}
    mounts = block(function(name), "service_config").get(
        "secret_environment_variables", []
    )
    for mount in mounts:
        secret = env_of[mount["key"]]
        fields = {}
        for field in ("secret", "version"):
            match = re.fullmatch(
                r'local\.secret_env\["(\w+)"\]\.(\w+)', expr(mount[field])
            )
            assert match and match.groups() == (mount["key"], field), mount
            fields[field] = expr(tf_locals()["secret_env"][mount["key"]][field])
        assert expr(mount["project_id"]) == "var.project"
        assert fields["secret"] == f'local.secret_ids["{secret}"]'
        version = re.sub(r"_(sid|secret)$", "", secret)
        assert fields["version"] == f"var.{version}_version", mount


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_that_send_require_a_sender(name: str) -> None:
    sends = {"message_sender", "inbound_processor"}
    condition = block(block(function(name), "lifecycle"), "precondition")
    text = expr(condition["condition"])
    assert text.endswith(
        '|| var.twilio_messaging_service_sid != "" || var.twilio_from != ""'
    )
    assert text.startswith(f"!{str(name in sends).lower()} ||")


def test_the_auth_token_only_checks_webhook_signatures() -> None:
    # Least privilege toward Twilio: the master credential stays with intake.
    readers = {fn for fn in FUNCTIONS if "TWILIO_AUTH_TOKEN" in env_keys(fn)[1]}
    assert readers == {"twilio_webhooks"}


def test_secret_accessors_match_secret_env() -> None:
    readers = tf_locals()["secret_readers"]
    assert set(readers) == set(SECRET_ENV)
    for secret, env in SECRET_ENV.items():
        expected = {fn for fn in FUNCTIONS if env in env_keys(fn)[1]}
        assert set(readers[secret]) == expected, secret


@pytest.mark.parametrize("name", FUNCTIONS)
def test_threads_match_the_concurrency(name: str) -> None:
    # functions-framework serves THREADS requests at once per instance (by
    # default 4 per CPU): as many as Cloud Run sends it, no fewer.
    service = block(function(name), "service_config")
    assert "THREADS" in env_keys(name)[0]
    assert (
        f'THREADS = tostring(local.sizing["{name}"].concurrency)'
        in service["environment_variables"]
    )
    assert expr(service["max_instance_request_concurrency"]) == (
        f'local.sizing["{name}"].concurrency'
    )


def test_task_enqueuers_match_task_settings() -> None:
    expected = {fn for fn in FUNCTIONS if TaskSettings in FUNCTION_SETTINGS[fn]}
    assert set(tf_locals()["task_enqueuers"]) == expected
    assert tf_locals()["tasks_env"]["TASKS_BACKEND"] == "cloud"


# --------------------------------------------------------------------------
# Pub/Sub
# --------------------------------------------------------------------------


def topic_names() -> set[str]:
    names = set()
    for body in resources("google_pubsub_topic").values():
        for key, item in for_each_items(body).items():
            name = render(body["name"], key, item)
            assert "${" not in name, f"unresolved topic name {name!r}"
            names.add(name)
    return names


@pytest.mark.parametrize("topic", list(Topic))
def test_topic_and_dead_letter_topic_exist(topic: Topic) -> None:
    assert {topic.value, topic.dead_letter} <= topic_names()


def push_subscriptions() -> Iterator[tuple[str, Any, dict[str, Any]]]:
    for body in resources("google_pubsub_subscription").values():
        if "push_config" in body:
            for key, item in for_each_items(body).items():
                yield key, item, body


def test_no_eventarc_triggers() -> None:
    # An Eventarc trigger owns its subscription, which then has no dead-letter
    # policy; the consumers get push subscriptions from pubsub.tf instead.
    for name, body in function_instances().items():
        assert "event_trigger" not in body, f"{name} has an event_trigger"
    assert not resources("google_eventarc_trigger")


def test_every_push_subscription_has_a_dead_letter_policy() -> None:
    subscriptions = list(push_subscriptions())
    assert subscriptions
    for key, item, body in subscriptions:
        policy = block(body, "dead_letter_policy")
        assert resolve(policy["max_delivery_attempts"]) == 10
        dlq = render(policy["dead_letter_topic"], key, item)
        assert re.fullmatch(rf'\$\{{google_pubsub_topic\.dlq\["{key}"\]\.id\}}', dlq)
        assert "oidc_token" in block(body, "push_config")


def test_every_topic_is_pushed_to_its_consumer() -> None:
    pushed = {}
    for key, item, body in push_subscriptions():
        assert render(body["topic"], key, item) == (
            f'${{google_pubsub_topic.topic["{key}"].id}}'
        )
        pushed[key] = item
    assert pushed == {topic.value: fn for topic, fn in CONSUMERS.items()}
    for fn in CONSUMERS.values():
        source = (REPO / "functions" / fn / "main.py").read_text(encoding="utf-8")
        # functions-framework converts a raw Pub/Sub push for CloudEvent handlers.
        assert "@functions_framework.cloud_event" in source


def test_the_local_stack_waits_for_acks_as_long_as_the_deployment() -> None:
    from local.stack import ACK_DEADLINE_SECONDS

    sizing = tf_locals()["default_sizing"]
    deployed = {
        fn: min(600, max(10, sizing[fn]["timeout_seconds"]))
        for fn in CONSUMERS.values()
    }
    assert ACK_DEADLINE_SECONDS == deployed


def test_pubsub_agent_can_dead_letter() -> None:
    publisher = resources("google_pubsub_topic_iam_member")["dlq_publisher"]
    assert publisher["role"] == "roles/pubsub.publisher"
    assert set(for_each_items(publisher)) == {t.value for t in Topic}
    subscriber = resources("google_pubsub_subscription_iam_member")["dlq_forwarder"]
    assert subscriber["role"] == "roles/pubsub.subscriber"
    assert set(for_each_items(subscriber)) == {t.value for t in Topic}


# --------------------------------------------------------------------------
# Firestore
# --------------------------------------------------------------------------


@cache
def firestore_spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (INFRA / "firestore.indexes.json").read_text(encoding="utf-8")
    )
    return data


@pytest.mark.parametrize(("collection", "fields"), REQUIRED_COMPOSITE_INDEXES)
def test_composite_index_exists(
    collection: str, fields: tuple[tuple[str, str], ...]
) -> None:
    declared = {
        (
            idx["collectionGroup"],
            tuple((f["fieldPath"], f.get("order")) for f in idx["fields"]),
        )
        for idx in firestore_spec()["indexes"]
    }
    assert (collection, fields) in declared


@pytest.mark.parametrize(("collection", "field"), TTL_FIELDS)
def test_ttl_policy(collection: str, field: str) -> None:
    overrides = {
        (o["collectionGroup"], o["fieldPath"]): o
        for o in firestore_spec()["fieldOverrides"]
    }
    assert overrides[(collection, field)].get("ttl") is True


def test_terraform_deploys_the_index_file() -> None:
    assert "firestore.indexes.json" in tf_locals()["firestore_spec"]
    assert expr(resources("google_firestore_index")["composite"]["for_each"]) == (
        "local.composite_indexes"
    )
    assert expr(resources("google_firestore_field")["override"]["for_each"]) == (
        "local.field_overrides"
    )


# --------------------------------------------------------------------------
# Access
# --------------------------------------------------------------------------


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def invoker_bindings() -> dict[str, set[str]]:
    """Function -> members with roles/run.invoker on it."""
    bindings: dict[str, set[str]] = {}
    for rtype, name, body in all_resources():
        if not rtype.endswith("_iam_member") or body.get("role") != "roles/run.invoker":
            continue
        for key, item in for_each_items(body).items():
            service = render(body["service"], key, item)
            match = re.search(
                rf'google_cloudfunctions2_function\.{FUNCTION_RESOURCE}\["(\w+)"\]\.',
                service,
            )
            assert match, f"{rtype}.{name}: unknown invoker target {service!r}"
            target = match.group(1)
            member = render(body["member"], key, item)
            bindings.setdefault(target, set()).add(expr(member))
    return bindings


def test_only_twilio_webhooks_is_public() -> None:
    public = []
    for rtype, name, body in all_resources():
        if PUBLIC_MEMBERS & set(_strings(body)):
            public.append((rtype, name))
    assert public == [("google_cloud_run_service_iam_member", "twilio_webhooks_public")]
    grant = resources("google_cloud_run_service_iam_member")["twilio_webhooks_public"]
    assert grant["role"] == "roles/run.invoker"
    assert (
        expr(grant["service"])
        == 'google_cloudfunctions2_function.fn["twilio_webhooks"].name'
    )


def test_private_functions_have_only_their_caller_as_invoker() -> None:
    bindings = invoker_bindings()
    assert bindings["twilio_webhooks"] == {"allUsers"}
    assert bindings["campaign_scheduler"] == {
        'google_service_account.identity["scheduler_invoker"].member'
    }
    assert bindings["message_sender"] == {
        'google_service_account.identity["tasks_invoker"].member'
    }
    # The api's invokers are var.api_invokers (none by default), validated private.
    assert not bindings.get("api")
    api = resources("google_cloud_run_service_iam_member")["api_invoker"]
    assert (expr(api["for_each"]), expr(api["member"])) == (
        "toset(var.api_invokers)",
        "each.value",
    )
    assert "allUsers" in str(tf_variables()["api_invokers"]["validation"])
    for fn in CONSUMERS.values():
        assert bindings[fn] == {'google_service_account.identity["pubsub_push"].member'}


# --------------------------------------------------------------------------
# Cloud Tasks, scheduler, monitoring, outputs
# --------------------------------------------------------------------------


def test_send_queue_limits_come_from_variables() -> None:
    queue = resources("google_cloud_tasks_queue")["message_sends"]
    limits, retry = block(queue, "rate_limits"), block(queue, "retry_config")
    for value in (
        limits["max_dispatches_per_second"],
        limits["max_concurrent_dispatches"],
        retry["max_attempts"],
        retry["min_backoff"],
        retry["max_backoff"],
    ):
        assert expr(value).startswith("var."), value
    default_queue = TaskSettings.model_fields["queue"].default
    assert resolve(queue["name"]) == default_queue


def cloud_tasks_retry_budget(
    max_attempts: int, min_backoff: float, max_backoff: float, max_doublings: int
) -> float:
    """Seconds from a task's first attempt to its last, by Cloud Tasks' rule:
    the interval doubles max_doublings times, then grows linearly by the last
    doubled step, capped at max_backoff (RetryConfig reference)."""
    total = 0.0
    for retry in range(max_attempts - 1):
        if retry <= max_doublings:
            interval = min_backoff * 2**retry
        else:
            step = min_backoff * 2**max_doublings
            interval = step * (retry - max_doublings + 1)
        total += min(interval, max_backoff)
    return total


def test_the_retry_budget_follows_the_documented_example() -> None:
    # min 10 s, max 300 s, 3 doublings: 10, 20, 40, 80, 160, 240, 300, 300.
    assert cloud_tasks_retry_budget(9, 10, 300, 3) == 1150


def test_stranded_messages_wait_out_the_send_queues_whole_retry_budget() -> None:
    """The stranded sweep must not re-send a message whose task still retries."""
    variables = tf_variables()

    def default(name: str) -> Any:
        return variables[name]["default"]

    budget = cloud_tasks_retry_budget(
        int(default("tasks_max_attempts")),
        float(default("tasks_min_backoff").rstrip("s")),
        float(default("tasks_max_backoff").rstrip("s")),
        int(default("tasks_max_doublings")),
    )
    stranded_after = CoreSettings.model_fields["stranded_queued_seconds"].default
    assert 3600 < budget < stranded_after


def test_scheduler_calls_campaign_scheduler_with_oidc() -> None:
    job = resources("google_cloud_scheduler_job")["campaign_tick"]
    target = block(job, "http_target")
    assert (
        'google_cloudfunctions2_function.fn["campaign_scheduler"].service_config'
        in target["uri"]
    )
    oidc = block(target, "oidc_token")
    assert expr(oidc["service_account_email"]) == (
        'google_service_account.identity["scheduler_invoker"].email'
    )


def test_dashboard_charts_every_log_metric() -> None:
    dashboard = (INFRA / "monitoring" / "dashboard.json").read_text(encoding="utf-8")
    json.loads(dashboard)
    metrics = set(tf_locals()["log_metrics"])
    charted = set(re.findall(r"logging.googleapis.com/user/(\w+)", dashboard))
    assert charted <= metrics
    assert metrics - charted <= {"ese_unmatched_status_callbacks"}
    assert "dead_letter_message_count" in dashboard


@cache
def code_literals() -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """String constants and constant dict items in shared/ and functions/."""
    strings: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for path in [*REPO.glob("shared/**/*.py"), *REPO.glob("functions/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
            elif isinstance(node, ast.Dict):
                pairs |= {
                    (k.value, v.value)
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
                }
    return frozenset(strings), frozenset(pairs)


def _message_logged(prefix: str) -> bool:
    """Some log format string in the code can produce a line starting `prefix`."""
    strings, _ = code_literals()
    for literal in strings:
        head, placeholder, _ = literal.partition("%")
        if not head:
            continue
        if head.startswith(prefix) or (placeholder and prefix.startswith(head)):
            return True
    return False


@pytest.mark.parametrize("metric", sorted(tf_locals()["log_metrics"]))
def test_log_metric_filters_follow_the_code(metric: str) -> None:
    text = tf_locals()["log_metrics"][metric]["filter"]
    messages = re.findall(r'jsonPayload\.message=~?"\^?([^"]*)"', text)
    labels = re.findall(r'labels\.(\w+)="([^"]*)"', text)
    assert messages or labels, f"{metric}: no message or label condition"
    found = [m for m in messages if _message_logged(re.split(r"[\\.*+?()|]", m)[0])]
    found += [f"{k}={v}" for k, v in labels if (k, v) in code_literals()[1]]
    assert found, f"{metric}: none of {messages + labels} is logged by the code"


def test_alerts_on_log_metrics_wait_for_the_metrics() -> None:
    # A policy whose filter names a user metric that does not exist yet is
    # refused; the filter's reference alone does not order the creation.
    policies = resources("google_monitoring_alert_policy")
    on_log_metrics = [
        (name, key)
        for name, body in policies.items()
        for key, item in for_each_items(body).items()
        if "logging.googleapis.com/user/" in json.dumps([body, item])
    ]
    assert {key for _, key in on_log_metrics} >= {
        "signature_rejections",
        "failure_rate",
    }
    for name, key in on_log_metrics:
        depends = [expr(d) for d in policies[name].get("depends_on", [])]
        assert "google_logging_metric.engine" in depends, (name, key)


def test_google_provider_is_pinned_exactly() -> None:
    providers = {
        k: v
        for block in terraform()["terraform"]
        for req in block.get("required_providers", [])
        for k, v in req.items()
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+", providers["google"]["version"])


def test_outputs_for_twilio_and_api() -> None:
    outputs = {k for block in terraform().get("output", []) for k in block}
    assert {"twilio_inbound_webhook_url", "twilio_status_callback_url", "api_url"} <= (
        outputs
    )


# --------------------------------------------------------------------------
# References resolve (what `terraform validate` would catch first)
# --------------------------------------------------------------------------


def _tf_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(INFRA.glob("*.tf")))


def test_references_are_declared() -> None:
    text = re.sub(r"#[^\n]*", "", _tf_text())
    # A moved block's `from` names an address that no longer exists (on purpose).
    text = re.sub(r"^moved \{.*?^\}", "", text, flags=re.MULTILINE | re.DOTALL)
    declared = {(t, n) for t, n, _ in all_resources()}
    data = {
        (t, n)
        for b in terraform().get("data", [])
        for t, named in b.items()
        for n in named
    }
    assert set(re.findall(r"\bvar\.(\w+)", text)) <= set(tf_variables())
    assert set(re.findall(r"\blocal\.(\w+)", text)) <= set(tf_locals())
    used = set(re.findall(r"(?<![\w.])(google_\w+)\.(\w+)", text))
    assert used <= declared, used - declared
    assert set(re.findall(r"\bdata\.(\w+)\.(\w+)", text)) <= data


def test_source_archive_keeps_the_deployed_code() -> None:
    archive = next(
        b["archive_file"]["source"]
        for b in terraform().get("data", [])
        if "archive_file" in b
    )
    assert str(archive["source_dir"]).endswith("/..")  # the repository root
    assert "source_archive.json" in str(archive["excludes"])
    spec = json.loads((INFRA / "source_archive.json").read_text(encoding="utf-8"))
    excludes = set(spec["excludes"])
    assert not excludes & {"functions", "shared", "requirements.txt", "pyproject.toml"}
    assert {"tests", "local", ".venv", "infra"} <= excludes


# --------------------------------------------------------------------------
# IAM derived from the code: what each function publishes and enqueues
# --------------------------------------------------------------------------
#
# A static call graph over shared/ and functions/: from each function's
# main.py, follow every name that resolves to a top-level def or class of our
# code (through imports, `module.attr` and re-exports). Importing a module runs
# its top level, so its module-level code and its decorated defs (API routes)
# are reached with it; a reached class brings all its methods. A reached body
# that names `Topic.X` publishes to X; one that calls `<anything>.enqueue(...)`
# enqueues sends. Calls through objects (`deps.tasks.enqueue`) need no
# resolution: the body that makes the call is what gets reached.

Node = tuple[str, str]  # (module, top-level name); "" is the module's own code
PUBSUB_MODULE = "shared.platform.pubsub"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def code_modules() -> dict[str, ast.Module]:
    paths = [*REPO.glob("shared/**/*.py"), *REPO.glob("functions/*/main.py")]
    return {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in paths}


@cache
def module_bindings(module: str) -> dict[str, Node]:
    """Top-level name -> what it is bound to: a def/class here, another
    module (name ""), or a name imported from another of our modules."""
    bindings: dict[str, Node] = {}
    for stmt in code_modules()[module].body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bindings[stmt.name] = (module, stmt.name)
        elif isinstance(stmt, ast.ImportFrom) and stmt.module:
            # The code imports absolutely; a relative import would be missed.
            assert not stmt.level, f"{module}: relative import"
            base = stmt.module
            for alias in stmt.names:
                target = f"{base}.{alias.name}"
                bound = (target, "") if target in code_modules() else (base, alias.name)
                bindings[alias.asname or alias.name] = bound
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name.split(".")[0] in {"shared", "functions"}:
                    # `import shared.x` would need dotted chains resolved.
                    assert alias.asname, f"{module}: import {alias.name} unaliased"
                    bindings[alias.asname] = (alias.name, "")
        else:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    bindings.setdefault(node.id, (module, ""))
    return bindings


def resolve_node(node: Node, seen: frozenset[Node] = frozenset()) -> Node | None:
    """Follow re-exports to the module that defines the name."""
    module, name = node
    if module not in code_modules() or node in seen:
        return None
    if not name:
        return node
    bound = module_bindings(module).get(name)
    if bound is None:
        return None
    if bound == node or bound == (module, ""):
        return bound
    return resolve_node(bound, seen | {node})


def _bodies(node: Node) -> list[ast.AST]:
    module, name = node
    tree = code_modules()[module]
    if not name:
        return [
            stmt
            for stmt in tree.body
            if not isinstance(
                stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            )
        ]
    return [
        stmt
        for stmt in tree.body
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and stmt.name == name
    ]


def _decorated(module: str) -> list[Node]:
    return [
        (module, stmt.name)
        for stmt in code_modules()[module].body
        if isinstance(stmt, ast.FunctionDef | ast.ClassDef) and stmt.decorator_list
    ]


def _references(node: Node) -> Iterator[Node]:
    module, _ = node
    bindings = module_bindings(module)
    for body in _bodies(node):
        for sub in ast.walk(body):
            if isinstance(sub, ast.Name) and sub.id in bindings:
                yield bindings[sub.id]
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
                bound = bindings.get(sub.value.id)
                if bound and not bound[1]:  # `module.attr`
                    yield (bound[0], sub.attr)
            elif isinstance(sub, ast.ImportFrom | ast.Import):
                for alias in sub.names:
                    name = f"{getattr(sub, 'module', '')}.{alias.name}".strip(".")
                    for candidate in (name, getattr(sub, "module", None) or ""):
                        if candidate in code_modules():
                            yield (candidate, "")


@cache
def reached_from(function_name: str) -> frozenset[Node]:
    start: Node = (f"functions.{function_name}.main", "")
    reached: set[Node] = set()
    pending = [start]
    while pending:
        node = resolve_node(pending.pop())
        if node is None or node in reached:
            continue
        reached.add(node)
        module, _ = node
        pending.append((module, ""))  # reaching a name imports its module
        pending.extend(_decorated(module))
        pending.extend(_references(node))
    return frozenset(reached)


def _topics_named(node: Node) -> set[str]:
    topic = (
        resolve_node((node[0], "Topic"))
        if "Topic" in module_bindings(node[0])
        else None
    )
    if topic != (PUBSUB_MODULE, "Topic"):
        return set()
    names = {t.name: t.value for t in Topic}
    return {
        names[sub.attr]
        for body in _bodies(node)
        for sub in ast.walk(body)
        if isinstance(sub, ast.Attribute)
        and isinstance(sub.value, ast.Name)
        and sub.value.id == "Topic"
        and sub.attr in names
    }


def _enqueues(node: Node) -> bool:
    return any(
        isinstance(sub, ast.Call)
        and isinstance(sub.func, ast.Attribute)
        and sub.func.attr == "enqueue"
        for body in _bodies(node)
        for sub in ast.walk(body)
    )


def published_by_code(function_name: str) -> set[str]:
    return {t for node in reached_from(function_name) for t in _topics_named(node)}


def enqueued_by_code(function_name: str) -> bool:
    return any(_enqueues(node) for node in reached_from(function_name))


def test_the_code_graph_sees_what_each_function_does() -> None:
    # Anchors: if the graph stopped following imports these would go empty.
    assert published_by_code("twilio_webhooks") == {
        Topic.DELIVERY_RECEIPTS.value,
        Topic.INBOUND_MESSAGES.value,
    }
    assert enqueued_by_code("message_sender")  # quiet-hours deferral
    assert not published_by_code("receipt_updater")


def test_publisher_grants_are_exactly_what_the_code_publishes() -> None:
    granted = {
        fn: set(topics) for fn, topics in tf_locals()["topic_publishers"].items()
    }
    derived = {fn: published_by_code(fn) for fn in FUNCTIONS}
    assert granted == {fn: topics for fn, topics in derived.items() if topics}


def test_enqueuer_grants_are_exactly_what_the_code_enqueues() -> None:
    derived = {fn for fn in FUNCTIONS if enqueued_by_code(fn)}
    assert set(tf_locals()["task_enqueuers"]) == derived


def test_the_api_request_log_exclusion_matches_the_local_request_log() -> None:
    from local.faults import EXCLUDED_API_URLS

    exclusion = resources("google_logging_project_exclusion")["api_phone_urls"]
    found = set(re.findall(r'httpRequest\.requestUrl:"([^"]+)"', exclusion["filter"]))
    assert found == set(EXCLUDED_API_URLS)
    assert 'service_name="${local.function_names["api"]}"' in exclusion["filter"]
