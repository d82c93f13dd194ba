"""Checks an API Gateway proxy response against ``docs/openapi.yaml``: status, headers, media type and body.

A small, strict reader of the one document this project has (local ``$ref``s only), on top of
``openapi-spec-validator`` (the document itself) and ``openapi-schema-validator`` (OpenAPI 3.0 schemas, with
``nullable``). Strict means: a status the operation does not document fails, and so does a response header
the response does not document (``Content-Type`` is the media type's own).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
_BASE = "urn:async-job:openapi"
#: Marks a response that API Gateway answers itself, never a function.
GATEWAY_MARK = "x-async-job-answered-by"


class ContractError(AssertionError):
    """A response does not match the document."""


@dataclass(frozen=True)
class Checked:
    """What a checked response was: its operation, status and (for a problem) the type's slug."""

    operation: str
    status: int
    slug: str | None


@dataclass(frozen=True)
class Documented:
    """One documented response of an operation."""

    operation: str
    status: int
    #: The problem slugs the response's schema allows (empty when not a problem or not enumerated).
    slugs: frozenset[str]
    answered_by_gateway: bool


class Contract:
    """The OpenAPI document, ready to check responses against.

    Examples
    --------
    >>> contract = Contract.load()
    >>> contract.check("POST", "/jobs", submit.handler(event, context))
    Checked(operation='submitJob', status=202, slug=None)
    """

    def __init__(self, document: dict[str, Any]) -> None:
        validate_spec(document)  # type: ignore[arg-type]
        self.document = document
        self._registry: Registry[Any] = Registry().with_resource(
            _BASE, Resource.from_contents(document, default_specification=DRAFT4)
        )

    @classmethod
    def load(cls, path: Path = DOCUMENT) -> Contract:
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    # ------------------------------------------------------------------------------------------ reading

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(method, path template, operation)`` for every operation."""
        for path, item in self.document["paths"].items():
            for method, operation in item.items():
                if method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                    yield method.upper(), path, operation

    def operation(self, method: str, path: str) -> dict[str, Any]:
        try:
            operation: dict[str, Any] = self.document["paths"][path][method.lower()]
        except KeyError:
            raise ContractError(f"{method} {path} is not a documented operation") from None
        return operation

    def documented(self) -> list[Documented]:
        """Every documented response of every operation."""
        found = []
        for method, path, operation in self.operations():
            for code, reference in operation["responses"].items():
                pointer = _pointer("paths", path, method.lower(), "responses", code)
                _, response = self._follow(pointer, reference)
                found.append(
                    Documented(
                        operation=operation["operationId"],
                        status=int(code),
                        slugs=frozenset(self._slugs(response)),
                        answered_by_gateway=response.get(GATEWAY_MARK) == "api-gateway",
                    )
                )
        return found

    # ----------------------------------------------------------------------------------------- checking

    def check(self, method: str, path: str, response: Mapping[str, Any]) -> Checked:
        """Check a proxy response (``statusCode``, ``headers``, ``body``) of ``method path`` against the document.

        Raises
        ------
        ContractError
            The status, a header, the media type or the body is not as documented.
        """
        operation = self.operation(method, path)
        status = response["statusCode"]
        where = f"{method} {path} -> {status}"
        responses = operation["responses"]
        if str(status) not in responses:
            raise ContractError(f"{where}: status not documented (documented: {sorted(responses)})")
        pointer = _pointer("paths", path, method.lower(), "responses", str(status))
        pointer, documented = self._follow(pointer, responses[str(status)])

        headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
        content_type = headers.pop("content-type", None)
        self._check_headers(where, pointer, documented.get("headers") or {}, headers)

        content = documented.get("content") or {}
        if not content:  # a response without a body (a redirect)
            if response.get("body"):
                raise ContractError(f"{where}: a body where the document gives none")
            return Checked(operation["operationId"], status, None)
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in content:
            raise ContractError(f"{where}: Content-Type {content_type!r} not documented ({sorted(content)})")
        try:
            body = json.loads(response["body"])
        except (TypeError, ValueError) as error:
            raise ContractError(f"{where}: the body is not JSON: {error}") from None
        schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
        self._validate(where, schema_pointer, body)
        slug = None
        if media == "application/problem+json":
            slug = str(body["type"]).rsplit(":", 1)[-1]
        return Checked(operation["operationId"], status, slug)

    def _check_headers(
        self, where: str, pointer: str, documented: Mapping[str, Any], sent: Mapping[str, str]
    ) -> None:
        by_name = {name.lower(): (name, spec) for name, spec in documented.items()}
        undocumented = sorted(set(sent) - set(by_name))
        if undocumented:
            raise ContractError(f"{where}: headers not documented: {undocumented}")
        for lower, (name, reference) in by_name.items():
            header_pointer, header = self._follow(f"{pointer}/headers/{_escape(name)}", reference)
            if lower not in sent:
                if header.get("required"):
                    raise ContractError(f"{where}: required header {name} missing")
                continue
            value: Any = sent[lower]
            if header["schema"].get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    raise ContractError(f"{where}: header {name} {value!r} is not an integer") from None
            self._validate(f"{where} header {name}", f"{header_pointer}/schema", value)

    def _validate(self, where: str, pointer: str, instance: Any) -> None:
        validator = OAS30Validator(
            {"$ref": f"{_BASE}#{pointer}"}, registry=self._registry, format_checker=oas30_format_checker
        )
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            details = "; ".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])
            raise ContractError(f"{where}: not valid against {pointer}: {details}")

    def _follow(self, pointer: str, node: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Follow local ``$ref``s from ``node`` (found at ``pointer``): the final pointer and object."""
        seen = set()
        while "$ref" in node:
            reference = node["$ref"]
            if not reference.startswith("#/") or reference in seen:
                raise ContractError(f"unsupported or circular $ref {reference!r}")
            seen.add(reference)
            pointer = reference[1:]
            node = self._resolve(pointer)
        return pointer, dict(node)

    def _resolve(self, pointer: str) -> Mapping[str, Any]:
        node: Any = self.document
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    def _slugs(self, response: Mapping[str, Any]) -> Iterator[str]:
        """The problem slugs a response's problem schema enumerates (``type: {enum: [...]}``)."""
        for media, content in (response.get("content") or {}).items():
            if media != "application/problem+json":
                continue
            schema = content["schema"]
            # A problem of the function's (allOf), or one of several answers (oneOf: its own, or API Gateway's)
            for alternative in [schema, *schema.get("oneOf", [])]:
                for part in alternative.get("allOf", []):
                    for urn in part.get("properties", {}).get("type", {}).get("enum", []):
                        yield urn.rsplit(":", 1)[-1]


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _pointer(*parts: str) -> str:
    return "/" + "/".join(_escape(part) for part in parts)
