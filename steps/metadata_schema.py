"""nbgrader's cell-metadata validation, with its JSON schema checked once per process.

nbgrader's CheckCellMetadata (run by restore and by score) validates every nbgrader cell with
`jsonschema.validate(metadata, schema)`, which first checks the schema itself against JSON
Schema's metaschema and builds a new validator: about 1.3 ms per cell, where validating the cell
takes 0.08 ms; some 40 ms of CPU per submission of the example course. `check_schema_once()`
makes nbgrader's module use `validate` below instead: the same check of the schema (once per
schema and process), the same validator class and the same error (`best_match`), raised the
same way.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["check_schema_once", "validate"]

_validators: dict[str, Any] = {}
_installed = False


def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
    """`jsonschema.validate`, keeping one checked validator per schema."""
    import jsonschema

    if cls is not None or args or kwargs:
        return jsonschema.validate(instance, schema, cls, *args, **kwargs)
    key = json.dumps(schema, sort_keys=True)
    validator = _validators.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _validators[key] = cls(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error
    return None


class _Jsonschema:
    """What nbgrader.nbgraderformat.common sees as `jsonschema`: the library, but `validate` above."""

    validate = staticmethod(validate)

    def __getattr__(self, name: str) -> Any:
        import jsonschema

        return getattr(jsonschema, name)


def check_schema_once() -> None:
    """Make nbgrader's metadata validation use `validate` in this process."""
    global _installed
    if _installed:
        return
    from nbgrader.nbgraderformat import common

    common.jsonschema = _Jsonschema()  # type: ignore[assignment]
    _installed = True
