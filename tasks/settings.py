"""How a setting is declared and checked, for the run's config, the training recipe and the
trainer's CLI alike.

A setting is a dataclass field whose metadata holds its description, its trigger-form section
and its JSON-schema keywords (`minimum`, `exclusiveMaximum`, `pattern`, `enum`, `items`,
`uniqueItems`...). Its JSON schema is its type (from the annotation) plus those keywords, and
values are checked against it with `jsonschema`, the library Airflow's Params validate with,
so the trigger form, the REST API, the config and the trainer CLI refuse the same values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, field, fields
from functools import cache
from typing import Any, get_type_hints

# The trigger form's sections, in the order the form shows them.
DATA_SOURCE = "Data source"
DATA_GATE = "Data-quality gate"
TRAINING = "Training"
BLESSING = "Blessing and retries"
EXECUTION = "Execution"
SECTIONS = (DATA_SOURCE, DATA_GATE, TRAINING, BLESSING, EXECUTION)

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def setting(
    default: Any = MISSING,
    *,
    description: str,
    section: str | None = None,
    default_factory: Any = MISSING,
    **schema: Any,
) -> Any:
    """A field with its description, trigger-form section and JSON-schema keywords."""
    metadata = {"description": description, "section": section, "schema": schema}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def same_setting_as(owner: type, name: str) -> Any:
    """A field declared as `owner`'s field `name` is: the same default and metadata. Lets a
    second settings class carry a setting without declaring it again."""
    declared = next(option for option in fields(owner) if option.name == name)
    if declared.default_factory is not MISSING:
        return field(default_factory=declared.default_factory, metadata=declared.metadata)
    return field(default=declared.default, metadata=declared.metadata)


def json_type(hint: Any) -> str | list[str]:
    """The JSON-schema type of a field's annotation."""
    args = getattr(hint, "__args__", ())
    if type(None) in args:
        return ["null", _JSON_TYPES[next(arg for arg in args if arg is not type(None))]]
    if getattr(hint, "__origin__", None) is tuple:
        return "array"
    return _JSON_TYPES[hint]


# One Param's JSON Schema (type, bounds, description, section), as Airflow's form reads it.
JsonSchema = dict[str, Any]


@cache
def json_schemas(owner: type) -> dict[str, JsonSchema]:
    """Each declared setting of a dataclass with its JSON schema (type and keywords)."""
    hints = get_type_hints(owner)
    return {
        option.name: {"type": json_type(hints[option.name]), **option.metadata["schema"]}
        for option in fields(owner)
        if "schema" in option.metadata
    }


def json_value(value: Any) -> Any:
    """A value as JSON holds it: tuples as lists."""
    return list(value) if isinstance(value, tuple) else value


def value_problems(name: str, schema: JsonSchema, value: Any) -> Iterator[str]:
    """What is wrong with one value against its schema, one line per problem."""
    from jsonschema import FormatChecker
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema, format_checker=FormatChecker())
    for error in sorted(validator.iter_errors(json_value(value)), key=lambda found: list(found.path)):
        where = "".join(f"[{step}]" for step in error.path)
        yield f"{name}{where}: {error.message}"


def declared_problems(instance: Any) -> list[str]:
    """Every declared setting of a dataclass instance checked against its schema."""
    owner: Any = type(instance)
    return [
        problem
        for name, schema in json_schemas(owner).items()
        for problem in value_problems(name, schema, getattr(instance, name))
    ]
