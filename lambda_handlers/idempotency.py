"""``Idempotency-Key`` (IETF httpapi draft): reading the header, and the status-table item that remembers a key.

A key is scoped to its caller: its item's partition key is ``"idem#" + sha256(owner + "\\n" + key)``, so two
callers can use the same key without meeting, and the table never holds a key in clear. The item points at the
job the key created and keeps the digest of that request's payload; it expires with the job
(``docs/design.md``, "Idempotency, cancellation and retries").

Standard library only (and ``lambda_handlers.contract``, which is too): the submit function pays for nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from lambda_handlers.contract import IDEMPOTENCY_KEY_HEADER

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "HEADER",
    "MAX_KEY_LENGTH",
    "IdempotencyRecord",
    "InvalidKeyError",
    "key_item_id",
    "parse_key",
]

#: The request header (``contract.IDEMPOTENCY_KEY_HEADER``).
HEADER: Final = IDEMPOTENCY_KEY_HEADER
#: Longest accepted key, in characters (after unquoting).
MAX_KEY_LENGTH: Final = 255
#: Prefix of a key item's partition key; job ids are UUIDs, so the two never meet.
KEY_ITEM_PREFIX: Final = "idem#"

_PRINTABLE: Final = frozenset(chr(c) for c in range(0x20, 0x7F))


class InvalidKeyError(ValueError):
    """The ``Idempotency-Key`` header is not a key: its message says why (it is shown to the caller)."""


def parse_key(values: list[str]) -> str | None:
    """The key in the request's ``Idempotency-Key`` header values, or None when there is no such header.

    A key is 1 to 255 printable ASCII characters (space to ``~``), sent bare (``Idempotency-Key: 8e03978e``)
    or as a structured-field string (``Idempotency-Key: "8e03978e"``, RFC 8941, where ``\\"`` and ``\\\\`` are
    the only escapes). Both forms name the same key. Whitespace around the value is not part of it.

    Parameters
    ----------
    values
        Every value the request carries for the header (a repeated header gives several).

    Raises
    ------
    InvalidKeyError
        The header is repeated, empty, too long, holds other characters, or is a badly quoted string.

    Examples
    --------
    >>> parse_key(['"8e03978e-40d5-43e8-bc93-6894a57f9324"'])
    '8e03978e-40d5-43e8-bc93-6894a57f9324'
    >>> parse_key([]) is None
    True
    """
    if not values:
        return None
    if len(set(values)) > 1:
        raise InvalidKeyError(f"The request carries {len(values)} different {HEADER} headers; send one.")
    text = values[0].strip(" \t")
    key = _unquote(text) if text.startswith('"') else text
    if not key:
        raise InvalidKeyError(f"The {HEADER} header is empty; send 1 to {MAX_KEY_LENGTH} characters.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"The {HEADER} is {len(key)} characters long; at most {MAX_KEY_LENGTH} are accepted "
            "(a UUID is a good key)."
        )
    bad = next((c for c in key if c not in _PRINTABLE), None)
    if bad is not None:
        raise InvalidKeyError(
            f"The {HEADER} holds the character U+{ord(bad):04X}; a key is printable ASCII only "
            "(a UUID is a good key)."
        )
    return key


def _unquote(text: str) -> str:
    """The value of an RFC 8941 sf-string (``text`` starts with a double quote)."""
    chars: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            following = text[index + 1 : index + 2]
            if following not in ('"', "\\"):
                raise InvalidKeyError(
                    f'The quoted {HEADER} has an invalid escape; only \\" and \\\\ may follow a backslash.'
                )
            chars.append(following)
            index += 2
            continue
        if char == '"':
            if index != len(text) - 1:
                raise InvalidKeyError(
                    f"The quoted {HEADER} has text after its closing quote; send one quoted string."
                )
            return "".join(chars)
        chars.append(char)
        index += 1
    raise InvalidKeyError(f"The quoted {HEADER} has no closing quote.")


def key_item_id(owner: str, key: str) -> str:
    """The partition key of the item that remembers ``owner``'s ``key``.

    Examples
    --------
    >>> key_item_id("arn:aws:iam::123456789012:user/alice", "k1")[:5]
    'idem#'
    >>> key_item_id("alice", "k1") != key_item_id("bob", "k1")
    True
    """
    digest = hashlib.sha256(f"{owner}\n{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{KEY_ITEM_PREFIX}{digest}"


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A key item: which job a caller's key created, and the digest of that request's payload.

    Examples
    --------
    >>> record = IdempotencyRecord(key_item_id("alice", "k1"), job_id, digest, expires_at=1_800_000_000)
    >>> IdempotencyRecord.from_item(record.to_item()) == record
    True
    """

    key_id: str
    job_id: str
    payload_sha256: str
    #: Epoch seconds; the job's own ``expiresAt``.
    expires_at: int

    def to_item(self) -> dict[str, AttributeValueTypeDef]:
        """The DynamoDB item (low-level client format)."""
        return {
            "pk": {"S": self.key_id},
            "jobId": {"S": self.job_id},
            "payloadSha256": {"S": self.payload_sha256},
            "expiresAt": {"N": str(self.expires_at)},
        }

    @classmethod
    def from_item(cls, item: Mapping[str, AttributeValueTypeDef]) -> IdempotencyRecord:
        """The record in a key item.

        Raises
        ------
        ValueError
            The item is not a key item.
        """
        try:
            return cls(
                key_id=item["pk"]["S"],
                job_id=item["jobId"]["S"],
                payload_sha256=item["payloadSha256"]["S"],
                expires_at=int(item["expiresAt"]["N"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"idempotency-key item {item.get('pk')!r} is malformed: {error!r}") from error
