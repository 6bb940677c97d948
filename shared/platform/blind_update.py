"""One blind update, with its `Write` built straight in protobuf.

`DocumentReference.update` builds the same `Write` through field-path parsing,
a document extractor and proto-plus wrappers: in the webhook and the sender,
whose hot writes are one update each, that building cost more CPU than the RPC
(docs/architecture.md §9). For the shapes those writes have, plain
top-level fields whose values are plain data, Maximum, Minimum, Increment,
ArrayUnion or ArrayRemove, this module builds the very `Write` the library
builds (the unit tests compare them field by field) and sends it through the
client's own GAPIC commit, with the client's metadata, retry and timeout.
Anything else (a dotted path, a delete or server-timestamp sentinel, a value
type not listed below) goes through `DocumentReference.update` unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import transforms
from google.cloud.firestore_v1.types import firestore as firestore_types

from shared.platform.firestore_writes import fill_array, fill_value

# The raw protobuf classes beneath proto-plus: no wrapper per value.
_CommitRequest = firestore_types.CommitRequest.pb()

# A top-level name that the API takes unquoted and that is no nested path.
_SIMPLE_FIELD = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


class _Unsupported(Exception):
    """A shape this module does not build: the library builds it instead."""


def _fill_transform(transform: Any, value: Any) -> None:
    if isinstance(value, transforms.ArrayUnion):
        fill_array(transform.append_missing_elements, value.values)
    elif isinstance(value, transforms.ArrayRemove):
        fill_array(transform.remove_all_from_array, value.values)
    elif isinstance(value, transforms.Increment):
        fill_value(transform.increment, value.value)
    elif isinstance(value, transforms.Maximum):
        fill_value(transform.maximum, value.value)
    elif isinstance(value, transforms.Minimum):
        fill_value(transform.minimum, value.value)
    else:
        raise _Unsupported


_TRANSFORMS = (
    transforms.ArrayUnion,
    transforms.ArrayRemove,
    transforms.Increment,
    transforms.Maximum,
    transforms.Minimum,
)


def _fill_write(write: Any, document_path: str, fields: Mapping[str, Any]) -> None:
    """`pbs_for_update(document_path, fields, None)[0]`, built directly."""
    if not fields:
        raise _Unsupported  # the library's own error for an empty update
    plain = []
    for name in sorted(fields):
        if not _SIMPLE_FIELD.fullmatch(name):
            raise _Unsupported
        value = fields[name]
        if isinstance(value, _TRANSFORMS):
            _fill_transform(write.update_transforms.add(field_path=name), value)
        elif isinstance(value, transforms.Sentinel):
            raise _Unsupported  # DELETE_FIELD, SERVER_TIMESTAMP
        else:
            fill_value(write.update.fields[name], value)
            plain.append(name)
    write.update.name = document_path
    write.update_mask.SetInParent()
    write.update_mask.field_paths.extend(plain)
    # update() requires the document to exist, as the library's default does.
    write.current_document.exists = True


def commit_request(
    db: firestore.Client, collection: str, document_id: str, fields: Mapping[str, Any]
) -> Any | None:
    """The raw CommitRequest of the update, or None for a shape not built here."""
    if not document_id or "/" in document_id:
        return None  # the library's reference checks its path
    request = _CommitRequest(database=db._database_string)
    document_path = f"{db._database_string}/documents/{collection}/{document_id}"
    try:
        _fill_write(request.writes.add(), document_path, fields)
    except (_Unsupported, TypeError, ValueError, OverflowError):
        return None
    return request


def blind_update(
    db: firestore.Client,
    collection: str,
    document_id: str,
    fields: Mapping[str, Any],
    **retry_timeout: Any,
) -> None:
    """`document(...).update(fields, **retry_timeout)`, built cheaply when it can.

    Raises what the update raises (NotFound for a missing document).
    """
    request = commit_request(db, collection, document_id, fields)
    if request is None:
        ref = db.collection(collection).document(document_id)
        ref.update(dict(fields), **retry_timeout)
        return
    commit(db, request, **retry_timeout)


def commit(db: firestore.Client, request: Any, **retry_timeout: Any) -> Any:
    """Send a raw CommitRequest: the client's own GAPIC commit, metadata (the
    database prefix, the emulator's authorization) and retry."""
    return db._firestore_api.commit(
        request=firestore_types.CommitRequest.wrap(request),
        metadata=db._rpc_metadata,
        **retry_timeout,
    )
