"""A strict validator for the small JSON-schema subset our tool inputs use.

Supported: `type` (object, array, string, integer, number, boolean, null), `properties`,
`required`, `additionalProperties: false`, `enum`, `minimum`, `maximum`, `minLength`,
`maxLength`, `items`, `minItems`, `maxItems`, plus the annotations `description` and `title`.
Anything else in a tool's schema is refused when the tool is declared (`check_schema`), so a
schema never silently promises a check this module does not make.

Problems name the path and the rule, never the offending value: the value came from a model
and may carry personal data, and the problems go into audit events.
"""

from __future__ import annotations

from typing import Any

_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
    "description",
    "title",
}
_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
_PYTHON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def check_schema(schema: dict[str, Any], *, where: str, path: str = "$") -> None:
    """Raise ValueError unless `schema` uses only the supported subset, strictly: every object
    lists its properties, forbids others and names its required ones."""
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: {path}: a schema must be an object")
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"{where}: {path}: unsupported keyword(s) {', '.join(sorted(unknown))}")
    kind = schema.get("type")
    if kind not in _TYPES:
        raise ValueError(f"{where}: {path}: type must be one of {', '.join(sorted(_TYPES))}")
    if kind == "object":
        if schema.get("additionalProperties") is not False:
            raise ValueError(f"{where}: {path}: objects must set additionalProperties to false")
        properties = schema.get("properties", {})
        if not isinstance(schema.get("required", []), list):
            raise ValueError(f"{where}: {path}: required must be a list")
        missing = set(schema.get("required", [])) - set(properties)
        if missing:
            raise ValueError(f"{where}: {path}: required names unknown properties {sorted(missing)}")
        for name, sub in properties.items():
            check_schema(sub, where=where, path=f"{path}.{name}")
    elif "properties" in schema or "required" in schema or "additionalProperties" in schema:
        raise ValueError(f"{where}: {path}: properties/required only apply to objects")
    if kind == "array":
        if "items" not in schema:
            raise ValueError(f"{where}: {path}: arrays must say what their items are")
        check_schema(schema["items"], where=where, path=f"{path}[]")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise ValueError(f"{where}: {path}: enum must be a list")


def problems(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Every way `value` breaks `schema`, as "<path>: <problem>"; empty when it is valid."""
    kind = schema["type"]
    if not _is_type(value, kind):
        return [f"{path}: expected {kind}, got {_type_name(value)}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(option) for option in schema["enum"])
        found.append(f"{path}: must be one of {allowed}")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: must be at most {schema['maximum']}")
    elif kind == "string":
        if "minLength" in schema and len(value) < schema["minLength"]:
            found.append(f"{path}: must be at least {schema['minLength']} characters long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{path}: must be at most {schema['maxLength']} characters long")
    elif kind == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            found.append(f"{path}: must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{path}: must have at most {schema['maxItems']} items")
        for index, item in enumerate(value):
            found.extend(problems(item, schema["items"], f"{path}[{index}]"))
    elif kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{path}.{name}: is required but missing")
        for name, item in value.items():
            if name not in properties:
                found.append(f"{path}.{name}: is not an allowed field")
            else:
                found.extend(problems(item, properties[name], f"{path}.{name}"))
    return found


def _is_type(value: Any, kind: str) -> bool:
    # bool is an int in Python, but not an integer or a number in JSON.
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _PYTHON_TYPES[kind])


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    for name, kinds in (
        ("integer", int),
        ("number", float),
        ("string", str),
        ("array", list),
        ("object", dict),
    ):
        if isinstance(value, kinds):
            return name
    return type(value).__name__
