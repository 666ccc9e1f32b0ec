"""Small builders of OpenAPI 3.1 fragments, shared by `openapi.py` and each shim module's `SHIM.paths`."""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def nullable(kind: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(kind, dict):
        return {"anyOf": [kind, {"type": "null"}]}
    return {"type": [kind, "null"]}


def obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    """An object schema; every listed property is required unless `required` says otherwise."""
    return {"type": "object", "properties": props, "required": list(props) if required is None else required,
            "additionalProperties": extra}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def answer(description: str, schema: dict[str, Any] | None = None, media: str = JSON) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


INT, NUM, STR, BOOL = {"type": "integer"}, {"type": "number"}, {"type": "string"}, {"type": "boolean"}
ANY: dict[str, Any] = {}
NOT_FOUND = answer("Unknown path, or the shim is disabled or not configured.", ref("Error"))
STATE3 = {"type": "string", "enum": ["ok", "degraded", "unhealthy"]}

def get_op(summary: str, responses: dict[str, Any], tag: str, security: list[dict[str, list[str]]] | None = None,
         parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    op["security"] = security if security is not None else []
    if parameters:
        op["parameters"] = parameters
    return {"get": op}


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
KEY_OR_BEARER: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]
