"""What API Gateway answers itself (no route, a rejected body, a function error ...), rendered from the API's
``GatewayResponse`` resources as API Gateway renders them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from async_job_local.api_spec import GatewayResponseSpec

__all__ = ["ERROR_TYPES", "render_gateway_response"]

#: The ``x-amzn-ErrorType`` header API Gateway sets on its own answers, by response type.
ERROR_TYPES: Final[Mapping[str, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "UNAUTHORIZED": "UnauthorizedException",
    "ACCESS_DENIED": "AccessDeniedException",
    "INVALID_SIGNATURE": "InvalidSignatureException",
    "INVALID_API_KEY": "ForbiddenException",
    "BAD_REQUEST_BODY": "BadRequestException",
    "BAD_REQUEST_PARAMETERS": "BadRequestException",
    "INTEGRATION_FAILURE": "InternalServerErrorException",
    "DEFAULT_5XX": "InternalServerErrorException",
}


def _context_variables(context: Mapping[str, Any], response_type: str, message: str) -> dict[str, str]:
    identity = context.get("identity", {})
    return {
        "context.error.responseType": response_type,
        "context.error.message": message,
        "context.error.messageString": json.dumps(message),
        "context.requestId": context.get("requestId", ""),
        "context.extendedRequestId": context.get("extendedRequestId", ""),
        "context.stage": context.get("stage", ""),
        "context.path": context.get("path", ""),
        "context.resourcePath": context.get("resourcePath", ""),
        "context.httpMethod": context.get("httpMethod", ""),
        "context.domainName": context.get("domainName", ""),
        "context.accountId": context.get("accountId", ""),
        "context.apiId": context.get("apiId", ""),
        "context.identity.sourceIp": identity.get("sourceIp") or "",
        "context.identity.userArn": identity.get("userArn") or "",
        "context.identity.caller": identity.get("caller") or "",
        "context.identity.userAgent": identity.get("userAgent") or "",
    }


def _render_template(template: str, variables: Mapping[str, str]) -> str:
    """Substitute ``$context...`` references (the VTL a gateway response template may use)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        trailing = ""
        while name not in variables and name.endswith("."):
            name, trailing = name[:-1], "." + trailing
        if name not in variables:
            return match.group(0)
        return variables[name] + trailing

    return re.sub(r"\$!?(?:\{(?P<braced>context[\w.]*)\}|(?P<plain>context[\w.]*))", substitute, template)


def render_gateway_response(
    responses: Mapping[str, GatewayResponseSpec],
    response_type: str,
    status: int,
    message: str,
    request_context: Mapping[str, Any],
    request_headers: Mapping[str, str],
    variables: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """What API Gateway answers itself for ``response_type`` (status, headers, body).

    The API's ``GatewayResponse`` of that type applies, else its ``DEFAULT_4XX``/``DEFAULT_5XX`` one, else
    API Gateway's built-in ``{"message": ...}``. A status code set on the default response applies to every
    type it covers.

    Example
    -------
    >>> render_gateway_response(api.gateway_responses, "MISSING_AUTHENTICATION_TOKEN", 403,
    ...                         "Missing Authentication Token", context, {})[0]
    403
    """
    default = responses.get(f"DEFAULT_{status // 100}XX")
    spec = responses.get(response_type, default)
    if spec is not None and spec.status_code is not None:
        status = int(spec.status_code)
    elif default is not None and default.status_code is not None:
        status = int(default.status_code)
    headers = {"Content-Type": "application/json"}
    body = json.dumps({"message": message}).encode()
    if spec is not None:
        variables = {**_context_variables(request_context, response_type, message), **(variables or {})}
        template = spec.templates.get("application/json") or next(iter(spec.templates.values()), None)
        if template is not None:
            body = _render_template(template, variables).encode()
        lowered = {k.lower(): v for k, v in request_headers.items()}
        for key, value in spec.parameters.items():
            if not key.startswith("gatewayresponse.header."):
                continue
            name = key.removeprefix("gatewayresponse.header.")
            if value.startswith("'") and value.endswith("'"):
                headers[name] = value[1:-1]
            elif value.startswith("method.request.header."):
                headers[name] = lowered.get(value.removeprefix("method.request.header.").lower(), "")
    if response_type in ERROR_TYPES:
        headers["x-amzn-ErrorType"] = ERROR_TYPES[response_type]
    return status, headers, body
