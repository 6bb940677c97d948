"""Create and set writes built with the plain protobuf classes (bulk paths).

`WriteBatch.create` and `.set` build each write through proto-plus
(`DocumentExtractor`, `encode_value`, a `Message.__init__` per value): in a
100,000-row import that was three quarters of contact_importer's CPU, more
than the emulator's work for the same writes. These build the same `Write`
messages (the same document, fields and precondition: a unit test compares
them with the client's own) straight into the protobuf classes and add them to
the caller's batch, which commits them as usual.

Only plain data is built here: None, bool, int, float, str, bytes, datetime,
and dicts and lists of them. A document holding anything else (a sentinel
such as SERVER_TIMESTAMP, a reference, a GeoPoint) goes through the client's
own `create` or `set`, which knows it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.types import common, write
from google.protobuf import struct_pb2

_WRITE = write.Write.pb()
_PRECONDITION = common.Precondition.pb()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Firestore's own auto-id alphabet and length.
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_LENGTH = 20


class NotPlain(TypeError):
    """A value this module does not build; the client's encoder does."""


def _fill_timestamp(value_pb: Any, value: datetime) -> None:
    if value.tzinfo is None:  # as the client: a naive datetime is UTC
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    timestamp = value_pb.timestamp_value
    timestamp.seconds = delta.days * 86400 + delta.seconds
    nanos = getattr(value, "nanosecond", 0)  # DatetimeWithNanoseconds
    timestamp.nanos = nanos or delta.microseconds * 1000


def fill_value(value_pb: Any, value: Any) -> None:  # noqa: C901 - one branch a type
    """Set `value_pb` (a google.firestore.v1.Value) to `value`, as the
    client's `encode_value` would; NotPlain for a value it does not build."""
    if value is None:
        value_pb.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        value_pb.boolean_value = value
    elif isinstance(value, int):
        value_pb.integer_value = value
    elif isinstance(value, float):
        value_pb.double_value = value
    elif isinstance(value, str):
        value_pb.string_value = value
    elif isinstance(value, datetime):
        _fill_timestamp(value_pb, value)
    elif isinstance(value, dict):
        _fill_map(value_pb.map_value, value)
    elif isinstance(value, list | tuple):
        fill_array(value_pb.array_value, value)
    elif isinstance(value, bytes):
        value_pb.bytes_value = value
    else:
        raise NotPlain(type(value).__name__)


def fill_array(array_pb: Any, values: Any) -> None:
    """Set `array_pb` (an ArrayValue) to the list or tuple `values`."""
    array_pb.SetInParent()  # an empty list is still an array
    for item in values:
        fill_value(array_pb.values.add(), item)


def _fill_map(map_pb: Any, data: dict[str, Any]) -> None:
    map_pb.SetInParent()  # an empty dict is still a map
    fields = map_pb.fields
    for key, value in data.items():
        if not isinstance(key, str):
            raise NotPlain("a field name must be a string")
        fill_value(fields[key], value)


def document_name(ref: firestore.DocumentReference) -> str:
    """The document's full resource name, as the client writes it."""
    return str(ref._document_path)


def auto_id() -> str:
    """A random document id like the client's, from os.urandom.

    62**20 ids; the few bytes above a multiple of 62 are skipped so that every
    character is equally likely.
    """
    chosen: list[str] = []
    while len(chosen) < _ID_LENGTH:
        for byte in os.urandom(2 * _ID_LENGTH):
            if byte < 248 and len(chosen) < _ID_LENGTH:
                chosen.append(_ID_ALPHABET[byte % 62])
    return "".join(chosen)


def plain_write(name: str, data: dict[str, Any], must_not_exist: bool) -> Any:
    """The `Write` of a whole document; None if `data` holds more than plain
    values."""
    write_pb = _WRITE()
    update = write_pb.update
    update.name = name
    try:
        _fill_map(update, data)
    except NotPlain:
        return None
    if must_not_exist:
        write_pb.current_document.CopyFrom(_PRECONDITION(exists=False))
    return write_pb


Writer = firestore.WriteBatch | firestore.Transaction


def _add_plain_write(
    batch: Writer,
    ref: firestore.DocumentReference,
    data: dict[str, Any],
    must_not_exist: bool,
) -> bool:
    """Add the plain `Write` to `batch`; False when `data` is not plain."""
    write_pb = plain_write(document_name(ref), data, must_not_exist)
    if write_pb is None:
        return False
    batch._add_write_pbs([write_pb])
    return True


def batch_create(
    batch: Writer, ref: firestore.DocumentReference, data: dict[str, Any]
) -> None:
    """`batch.create(ref, data)`: fails the commit if the document exists."""
    if not _add_plain_write(batch, ref, data, must_not_exist=True):
        batch.create(ref, data)


def batch_set(
    batch: Writer, ref: firestore.DocumentReference, data: dict[str, Any]
) -> None:
    """`batch.set(ref, data)`: replaces the whole document."""
    if not _add_plain_write(batch, ref, data, must_not_exist=False):
        batch.set(ref, data)
