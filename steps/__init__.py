"""gradeflow's steps: collect, restore, execute, score, merge (one module each)."""

import sys as _sys

# jsonschema imports rfc3987_syntax when it is installed (jupyter-events pulls it in), and that
# builds 38 lark parsers at import: 1.3-2.2 s of CPU in every process that imports nbformat.
# It only serves the "iri" string formats, which neither nbformat nor nbgrader check. gradeflow's
# own processes skip it; a process that imported jsonschema before us is left as it is.
if "jsonschema" not in _sys.modules:
    _sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
