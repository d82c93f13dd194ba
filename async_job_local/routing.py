"""API Gateway's routing: which method of an API's template a request goes to.

A resource path such as ``/jobs/{id}`` matches one segment per ``{param}`` and the rest of the path for a
greedy ``{proxy+}``; among the matches, API Gateway prefers the route with more literal segments, then the
route of the request's own method over ``ANY``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from async_job_local.api_spec import ApiSpec, RouteSpec
from async_job_local.functions import LocalFunction
from lambda_handlers.contract import DEFAULT_JOB_TYPE

__all__ = ["LocalApi", "LocalRoute"]


@dataclass(frozen=True)
class LocalRoute:
    """A method of an API (``spec``), served by ``function`` (None for a ``MOCK`` integration).

    Example
    -------
    >>> route = LocalRoute(spec=RouteSpec("/jobs/{id}", "GET", "AWS_IAM", "StatusFn"), function=None)
    >>> route.pattern.match("/jobs/42")["id"]
    '42'
    """

    spec: RouteSpec
    function: LocalFunction | None
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    literal_segments: int = field(init=False, repr=False, compare=False)

    @property
    def resource_path(self) -> str:
        """Its resource, like ``/jobs/{id}``."""
        return self.spec.resource_path

    @property
    def http_method(self) -> str:
        """Its method (or ``ANY``)."""
        return self.spec.http_method

    def __post_init__(self) -> None:
        parts = []
        literal = 0
        for segment in self.resource_path.strip("/").split("/") if self.resource_path != "/" else []:
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            param = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                parts.append(f"(?P<{greedy.group(1)}>.+)")
            elif param:
                parts.append(f"(?P<{param.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
                literal += 1
        object.__setattr__(self, "pattern", re.compile("^/" + "/".join(parts) + "$"))
        object.__setattr__(self, "literal_segments", literal)


@dataclass
class LocalApi:
    """One API as served locally: its routes and gateway responses, under ``/<prefix>``.

    Example
    -------
    >>> api.match("GET", "/jobs/42")[1]
    {'id': '42'}
    """

    spec: ApiSpec
    routes: list[LocalRoute]
    base_url: str = ""

    @property
    def prefix(self) -> str:
        """The path prefix (the local stage)."""
        return self.spec.slug

    @property
    def jobs_url(self) -> str:
        """``POST`` here to submit a job."""
        return f"{self.base_url}/{DEFAULT_JOB_TYPE}"

    @property
    def job_types(self) -> tuple[str, ...]:
        """The names of its job types, in template order."""
        return tuple(self.spec.job_types)

    def submit_url(self, job_type: str | None = None) -> str:
        """``POST`` here to submit a job of ``job_type`` (None: the API's only type, or the type of the API's
        own handler, ``jobs``, beside others added with ``add_job_type``).

        Raises ``KeyError`` naming the types when ``job_type`` is not one of them, or is None and the API
        has several and no ``jobs`` type.
        """
        if job_type is None and DEFAULT_JOB_TYPE in self.spec.job_types:
            job_type = DEFAULT_JOB_TYPE
        if job_type is None:
            if len(self.job_types) != 1:
                raise KeyError(
                    f"{self.spec.path} has {len(self.job_types)} job types; name one of: {', '.join(self.job_types)}"
                )
            (job_type,) = self.job_types
        elif job_type not in self.spec.job_types:
            raise KeyError(
                f"{self.spec.path} has no job type {job_type!r}; its types: {', '.join(self.job_types)}"
            )
        return f"{self.base_url}/{job_type}"

    def match(self, method: str, path: str) -> tuple[LocalRoute, dict[str, str]] | None:
        """The route for ``method`` and ``path`` (API Gateway's precedence: literal segments, then ``ANY``)."""
        candidates = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found and route.http_method in (method, "ANY"):
                candidates.append((route.literal_segments, route.http_method == method, route, found))
        if not candidates:
            return None
        _, _, route, found = max(candidates, key=lambda c: (c[0], c[1]))
        return route, {name: unquote(value) for name, value in found.groupdict().items()}
