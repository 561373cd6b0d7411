#!/usr/bin/env python3
"""Generate the shipped JSON Schemas under `schemas/`, one per event type.

Each file is a self-contained JSON Schema (draft 2020-12) that validates a whole
envelope (SPEC section 2) including the payload required for its event type
(SPEC section 1, the catalog). The crate puts `sha256:<hex>` of the exact file
bytes into the `x-schema-hash` header, so the output must be byte-for-byte
deterministic: keys keep the insertion order written here (never sorted by the
serializer), two-space indent, `\\n` line endings, one trailing newline.

Usage:
    python3 scripts/gen-schemas.py            # (re)write schemas/*.json
    python3 scripts/gen-schemas.py --check    # fail if schemas/ is stale, and
                                              # validate good/bad sample envelopes
    python3 scripts/gen-schemas.py --out DIR  # write (or --check) another directory

Generation uses the standard library only. `--check` additionally needs the
`jsonschema` package (`pip install jsonschema`), imported only for that flag.
"""

import argparse
import copy
import json
import os
import re
import sys

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# SPEC section 1: topic name == event_type.
EVENT_TYPE_RE = re.compile(r"^omninode(\.[a-z][a-z0-9-]*)+\.v[1-9][0-9]*$")

UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
UUID_V7_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
)

# Shared definitions, repeated in every file so each file stands alone.
# Patterns are used instead of `format`, which 2020-12 treats as an annotation.
DEFS = {
    "uuid": {
        "description": "A lowercase, hyphenated UUID of any version.",
        "type": "string",
        "pattern": UUID_PATTERN,
    },
    "uuid_v7": {
        "description": "A lowercase, hyphenated UUID version 7 (RFC 9562 variant).",
        "type": "string",
        "pattern": UUID_V7_PATTERN,
    },
    "timestamp": {
        "description": "RFC 3339 in UTC with microseconds and a Z suffix, "
        "e.g. 2026-11-28T14:03:07.123456Z.",
        "type": "string",
        "pattern": TIMESTAMP_PATTERN,
    },
    "non_empty_string": {
        "type": "string",
        "minLength": 1,
    },
}


# ---------------------------------------------------------------------------
# Payload field vocabulary. Each helper returns a fresh dict so that no two
# places in the output share (and could accidentally mutate) one object.


def ref(name, description=None):
    node = {"$ref": "#/$defs/" + name}
    if description:
        node["description"] = description
    return node


def typed(json_type, description=None, **extra):
    node = {}
    if description:
        node["description"] = description
    node["type"] = json_type
    node.update(extra)
    return node


def string(description=None):
    return typed("string", description)


def non_empty(description=None):
    return ref("non_empty_string", description)


def nullable_string(description=None):
    return typed(["string", "null"], description)


def timestamp(description=None):
    return ref("timestamp", description)


def correlation_id():
    return ref("uuid", "Same value as the envelope's correlation_id.")


def number(description=None):
    # Scores, thresholds and confidences are left unbounded: the SPEC gives no
    # scale (0..1 and 0..100 are both in use), so a bound would reject valid events.
    return typed("number", description)


def duration_ms():
    return typed("integer", "Elapsed time in milliseconds.", minimum=0)


def obj(description=None):
    return typed("object", description)


def string_array(description=None):
    return typed("array", description, items={"type": "string"})


def enum(values, description=None):
    return typed("string", description, enum=list(values))


# ---------------------------------------------------------------------------
# SPEC section 1: the catalog. Field order follows the SPEC table; every field
# listed there is required, and payloads may carry more.

CATALOG = [
    (
        "omninode.logging.application.v1",
        "An application log record made from a tracing event.",
        [
            ("service_name", non_empty("Producing service; the partition key.")),
            ("instance_id", non_empty("Producing instance of the service.")),
            ("level", enum(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"])),
            ("logger", string("The tracing target.")),
            ("message", string()),
            ("code", nullable_string("Machine-readable code, e.g. OMNINODE_EVENTS_DROPPED.")),
            ("context", obj("Event fields, then enclosing span fields.")),
        ],
    ),
    (
        "omninode.logging.audit.v1",
        "An audit trail record for compliance.",
        [
            ("tenant_id", non_empty("Tenant the action belongs to; the partition key.")),
            ("action", string()),
            ("actor", string()),
            ("resource", string()),
            ("timestamp", timestamp()),
            ("outcome", enum(["success", "failure"])),
        ],
    ),
    (
        "omninode.logging.security.v1",
        "A security audit record, such as an API key use or a permission check.",
        [
            ("tenant_id", non_empty("Tenant the decision belongs to; the partition key.")),
            (
                "event_type",
                non_empty(
                    "Kind of security event, e.g. api_key_used or permission_check; "
                    "not the envelope's event_type."
                ),
            ),
            ("user_id", string()),
            ("resource", string()),
            ("decision", enum(["allow", "deny"])),
            ("timestamp", timestamp()),
        ],
    ),
    (
        "omninode.agent.execution.started.v1",
        "An agent execution began.",
        [
            ("agent_name", string()),
            ("user_request", string()),
            ("correlation_id", correlation_id()),
            ("session_id", nullable_string("Session the execution belongs to, or null if none.")),
            ("started_at", timestamp()),
            ("context", obj()),
        ],
    ),
    (
        "omninode.agent.execution.completed.v1",
        "An agent execution finished successfully.",
        [
            ("agent_name", string()),
            ("correlation_id", correlation_id()),
            ("duration_ms", duration_ms()),
            ("quality_score", typed(["number", "null"])),
            ("completed_at", timestamp()),
            ("output_summary", nullable_string()),
            ("metrics", obj()),
        ],
    ),
    (
        "omninode.agent.execution.failed.v1",
        "An agent execution failed.",
        [
            ("agent_name", string()),
            ("correlation_id", correlation_id()),
            ("error_message", string()),
            ("error_type", string("Error kind; \"shutdown\" for spans still open at shutdown.")),
            ("error_stack_trace", nullable_string()),
            ("failed_at", timestamp()),
            ("partial_results", obj()),
        ],
    ),
    (
        "omninode.agent.quality.gate.passed.v1",
        "A quality gate passed.",
        [
            ("gate_name", string()),
            ("correlation_id", correlation_id()),
            ("score", number()),
            ("threshold", number()),
            ("passed_at", timestamp()),
            ("metrics", obj()),
        ],
    ),
    (
        "omninode.agent.quality.gate.failed.v1",
        "A quality gate failed.",
        [
            ("gate_name", string()),
            ("correlation_id", correlation_id()),
            ("score", number()),
            ("threshold", number()),
            ("failed_at", timestamp()),
            ("failure_reasons", string_array()),
            ("recommendations", string_array()),
        ],
    ),
    (
        "omninode.agent.provider.selected.v1",
        "An AI provider and model were selected.",
        [
            ("provider_name", string()),
            ("model_name", string()),
            ("correlation_id", correlation_id()),
            ("selection_reason", string()),
            ("selection_criteria", obj()),
            ("selected_at", timestamp()),
        ],
    ),
    (
        "omninode.agent.confidence.scored.v1",
        "A routing confidence score was computed for an agent.",
        [
            ("agent_name", string()),
            ("confidence_score", number()),
            ("routing_strategy", string()),
            ("correlation_id", correlation_id()),
            ("scored_at", timestamp()),
            ("factors", obj()),
        ],
    ),
    (
        "omninode.agent.routing.requested.v1",
        "Routing of a user request to an agent was requested.",
        [
            ("user_request", string()),
            ("correlation_id", correlation_id()),
            ("requested_at", timestamp()),
            ("context", obj()),
        ],
    ),
    (
        "omninode.agent.routing.completed.v1",
        "A user request was routed to an agent.",
        [
            ("selected_agent", string()),
            ("confidence_score", number()),
            ("routing_strategy", string()),
            ("correlation_id", correlation_id()),
            ("duration_ms", duration_ms()),
            ("completed_at", timestamp()),
            ("alternatives", typed("array", "Other candidates considered; items of any shape.")),
        ],
    ),
    (
        "omninode.agent.routing.failed.v1",
        "Routing of a user request failed.",
        [
            ("correlation_id", correlation_id()),
            ("error_message", string()),
            ("error_type", string()),
            ("failed_at", timestamp()),
        ],
    ),
    (
        "omninode.agent.transformation.started.v1",
        "An agent transformation began.",
        [
            ("source_agent", string()),
            ("target_agent", string()),
            ("transformation_reason", string()),
            ("correlation_id", correlation_id()),
            ("started_at", timestamp()),
        ],
    ),
    (
        "omninode.agent.transformation.completed.v1",
        "An agent transformation finished successfully.",
        [
            ("source_agent", string()),
            ("target_agent", string()),
            ("correlation_id", correlation_id()),
            ("duration_ms", duration_ms()),
            ("completed_at", timestamp()),
        ],
    ),
    (
        "omninode.agent.transformation.failed.v1",
        "An agent transformation failed.",
        [
            ("source_agent", string()),
            ("target_agent", string()),
            ("correlation_id", correlation_id()),
            ("error_message", string()),
            ("error_type", string()),
            ("failed_at", timestamp()),
        ],
    ),
    (
        "omninode.intelligence.code-analysis.requested.v1",
        "A code analysis was requested.",
        [
            ("operation_type", string()),
            ("correlation_id", correlation_id()),
            ("source_path", string()),
            ("language", string()),
            ("options", obj()),
            ("requested_at", timestamp()),
        ],
    ),
    (
        "omninode.intelligence.code-analysis.completed.v1",
        "A code analysis finished successfully.",
        [
            ("operation_type", string()),
            ("correlation_id", correlation_id()),
            ("duration_ms", duration_ms()),
            (
                "results_summary",
                typed(["string", "object"], "A text summary or a structured one."),
            ),
            ("results", obj()),
            ("completed_at", timestamp()),
        ],
    ),
    (
        "omninode.intelligence.code-analysis.failed.v1",
        "A code analysis failed.",
        [
            ("operation_type", string()),
            ("correlation_id", correlation_id()),
            ("error_code", string()),
            ("error_message", string()),
            ("failed_at", timestamp()),
        ],
    ),
]


def schema_ref(event_type):
    return "schemas/" + event_type + ".json"


def build_schema(event_type, purpose, fields):
    """The whole-envelope schema for one event type (SPEC section 2)."""
    payload_properties = {name: spec for name, spec in fields}
    envelope_properties = {
        "event_id": ref("uuid_v7", "Unique id of this event, a UUIDv7."),
        "event_type": {"const": event_type},
        "schema_ref": {"const": schema_ref(event_type)},
        "timestamp": ref("timestamp", "When the event was created."),
        "tenant_id": ref("non_empty_string"),
        "namespace": ref("non_empty_string"),
        "source": {
            "description": "The producing service and instance.",
            "type": "object",
            "required": ["service_name", "instance_id"],
            "properties": {
                "service_name": ref("non_empty_string"),
                "instance_id": ref("non_empty_string"),
            },
            "additionalProperties": False,
        },
        "correlation_id": ref(
            "uuid", "Shared by every event of one logical operation; inherited down the span tree."
        ),
        "causation_id": {
            "description": "event_id of the event that caused this one, or null.",
            "anyOf": [ref("uuid"), {"type": "null"}],
        },
        "sequence": typed(
            "integer",
            "Per producing instance, starts at 1 and rises by 1 per envelope.",
            minimum=1,
        ),
        "payload": {
            "type": "object",
            "required": [name for name, _ in fields],
            "properties": payload_properties,
            "additionalProperties": True,
        },
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_ref(event_type),
        "title": event_type,
        "description": purpose
        + " Validates the whole envelope, including the payload fields this event type requires.",
        "type": "object",
        "required": list(envelope_properties),
        "properties": envelope_properties,
        "additionalProperties": False,
        "$defs": copy.deepcopy(DEFS),
    }


def render(schema):
    return json.dumps(schema, indent=2, ensure_ascii=True) + "\n"


def generate():
    """Map of file name to exact file text, in catalog order."""
    seen = set()
    files = {}
    for event_type, purpose, fields in CATALOG:
        if not EVENT_TYPE_RE.match(event_type):
            raise SystemExit("bad event_type in catalog: " + event_type)
        if event_type in seen:
            raise SystemExit("duplicate event_type in catalog: " + event_type)
        seen.add(event_type)
        files[event_type + ".json"] = render(build_schema(event_type, purpose, fields))
    return files


def write(out_dir, files):
    os.makedirs(out_dir, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    print("wrote %d schemas to %s" % (len(files), out_dir))


# ---------------------------------------------------------------------------
# --check: the files on disk are current, and the schemas accept a valid
# envelope of every type and reject broken ones.

EXAMPLE_VALUES = {
    "uuid": "3f1c2a9e-5b7d-4c1e-9a2b-1234567890ab",
    "timestamp": "2026-11-28T14:03:07.123456Z",
    "non_empty_string": "acme",
    "string": "some text",
    "number": 0.87,
    "integer": 1520,
    "object": {"key": "value"},
    "array": ["x"],
}


def example_for(spec):
    """A valid value for one payload field spec."""
    if "enum" in spec:
        return spec["enum"][-1]
    if "$ref" in spec:
        return EXAMPLE_VALUES[spec["$ref"].rsplit("/", 1)[1]]
    json_type = spec["type"]
    if isinstance(json_type, list):
        json_type = json_type[0]
    return copy.deepcopy(EXAMPLE_VALUES[json_type])


def valid_envelope(event_type, fields):
    return {
        "event_id": "01937a6e-4f2b-7c3d-8e9f-0a1b2c3d4e5f",
        "event_type": event_type,
        "schema_ref": schema_ref(event_type),
        "timestamp": "2026-11-28T14:03:07.123456Z",
        "tenant_id": "tenant-a",
        "namespace": "omninode.dev",
        "source": {"service_name": "omniclaude", "instance_id": "omniclaude-1"},
        "correlation_id": "01937a6e-4f2b-7c3d-8e9f-0a1b2c3d4e60",
        "causation_id": None,
        "sequence": 42,
        "payload": {name: example_for(spec) for name, spec in fields},
    }


def json_type_of(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def allowed_types(spec):
    if "$ref" in spec or "enum" in spec:
        return {"string"}
    json_type = spec["type"]
    types = set(json_type if isinstance(json_type, list) else [json_type])
    if "number" in types:
        types.add("integer")
    return types


def wrong_values(spec):
    """Values of a JSON type the field does not allow."""
    allowed = allowed_types(spec)
    candidates = [True, "text", 7, 1.5, None, [], {}]
    return [v for v in candidates if json_type_of(v) not in allowed]


def set_path(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def del_path(doc, path):
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]


def cases_for(event_type, fields, other_type):
    """Yield (label, envelope, should_pass) for one event type."""
    good = valid_envelope(event_type, fields)
    yield "valid", good, True

    def mutated(label, should_pass, op, path, value=None):
        doc = copy.deepcopy(good)
        if op == "set":
            set_path(doc, path, value)
        else:
            del_path(doc, path)
        return label, doc, should_pass

    # Things a valid producer does that must keep passing.
    uuid_v4 = "3f1c2a9e-5b7d-4c1e-9a2b-1234567890ab"
    yield mutated("causation_id uuid", True, "set", ["causation_id"], uuid_v4)
    yield mutated("correlation_id v4", True, "set", ["correlation_id"], uuid_v4)
    yield mutated("extra payload field", True, "set", ["payload", "extra"], {"a": [1]})
    for name, spec in fields:
        types = spec.get("type")
        if isinstance(types, list) and "null" in types:
            yield mutated("null " + name, True, "set", ["payload", name], None)
        if isinstance(types, list) and "object" in types:
            yield mutated("object " + name, True, "set", ["payload", name], {"n": 1})
    if any(name == "duration_ms" for name, _ in fields):
        yield mutated("duration_ms 0", True, "set", ["payload", "duration_ms"], 0)

    # Envelope breakage.
    for key in good:
        yield mutated("missing envelope " + key, False, "del", [key])
    yield mutated("extra envelope field", False, "set", ["extra"], 1)
    yield mutated("event_type of another type", False, "set", ["event_type"], other_type)
    yield mutated("schema_ref of another type", False, "set", ["schema_ref"], schema_ref(other_type))
    yield mutated("schema_ref without dir", False, "set", ["schema_ref"], event_type + ".json")
    for bad in [
        "3f1c2a9e-5b7d-4c1e-9a2b-1234567890ab",  # v4
        "01937A6E-4F2B-7C3D-8E9F-0A1B2C3D4E5F",  # uppercase
        "01937a6e4f2b7c3d8e9f0a1b2c3d4e5f",  # no hyphens
        "01937a6e-4f2b-7c3d-cd9f-0a1b2c3d4e5f",  # wrong variant
        "not-a-uuid",
    ]:
        yield mutated("bad event_id " + bad, False, "set", ["event_id"], bad)
    for bad in ["01937A6E-4F2B-7C3D-8E9F-0A1B2C3D4E5F", "{01937a6e-4f2b-7c3d-8e9f-0a1b2c3d4e5f}", ""]:
        yield mutated("bad correlation_id " + bad, False, "set", ["correlation_id"], bad)
        yield mutated("bad causation_id " + bad, False, "set", ["causation_id"], bad)
    for bad in [
        "2026-11-28T14:03:07.123Z",
        "2026-11-28T14:03:07Z",
        "2026-11-28T14:03:07.123456+00:00",
        "2026-11-28 14:03:07.123456Z",
        "2026-11-28T14:03:07.123456z",
        # Not "...Z\n": ECMA-262 `$` rejects it, but Python's `re` (used by the
        # jsonschema package) lets `$` match before a final newline.
    ]:
        yield mutated("bad timestamp " + repr(bad), False, "set", ["timestamp"], bad)
    yield mutated("empty tenant_id", False, "set", ["tenant_id"], "")
    yield mutated("empty namespace", False, "set", ["namespace"], "")
    yield mutated("sequence 0", False, "set", ["sequence"], 0)
    yield mutated("sequence string", False, "set", ["sequence"], "42")
    yield mutated("sequence fraction", False, "set", ["sequence"], 1.5)
    yield mutated("source missing instance_id", False, "del", ["source", "instance_id"])
    yield mutated("source empty service_name", False, "set", ["source", "service_name"], "")
    yield mutated("source extra field", False, "set", ["source", "extra"], "x")
    yield mutated("payload not object", False, "set", ["payload"], [])

    # Payload breakage: every required field, every wrong type, every format.
    for name, spec in fields:
        yield mutated("missing payload " + name, False, "del", ["payload", name])
        for value in wrong_values(spec):
            yield mutated("wrong type %s=%r" % (name, value), False, "set", ["payload", name], value)
        if spec.get("$ref", "").endswith("/timestamp"):
            yield mutated("bad time " + name, False, "set", ["payload", name], "2026-11-28T14:03:07Z")
        if spec.get("$ref", "").endswith("/uuid"):
            yield mutated("bad uuid " + name, False, "set", ["payload", name], "nope")
        if spec.get("$ref", "").endswith("/non_empty_string"):
            yield mutated("empty " + name, False, "set", ["payload", name], "")
        if "enum" in spec:
            yield mutated("bad enum " + name, False, "set", ["payload", name],
                          spec["enum"][0].swapcase())
        if spec.get("items") == {"type": "string"}:
            yield mutated("non-string item " + name, False, "set", ["payload", name], ["ok", 3])
        if name == "duration_ms":
            yield mutated("negative duration_ms", False, "set", ["payload", name], -1)


def check(out_dir, files):
    try:
        import jsonschema
    except ImportError:
        print("--check needs the jsonschema package: pip install jsonschema", file=sys.stderr)
        return 2

    failures = []
    on_disk = sorted(n for n in os.listdir(out_dir) if n.endswith(".json")) if os.path.isdir(out_dir) else []
    if on_disk != sorted(files):
        failures.append("schema files differ from the catalog: on disk %r" % on_disk)
    for name, text in files.items():
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                if f.read() != text.encode("utf-8"):
                    failures.append("%s is stale; rerun scripts/gen-schemas.py" % name)

    total = 0
    for index, (event_type, _, fields) in enumerate(CATALOG):
        schema = json.loads(files[event_type + ".json"])
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        other_type = CATALOG[(index + 1) % len(CATALOG)][0]
        for label, doc, should_pass in cases_for(event_type, fields, other_type):
            total += 1
            errors = list(validator.iter_errors(doc))
            if should_pass and errors:
                failures.append("%s: %s: rejected: %s" % (event_type, label, errors[0].message))
            elif not should_pass and not errors:
                failures.append("%s: %s: accepted" % (event_type, label))

    for failure in failures:
        print("FAIL " + failure, file=sys.stderr)
    if failures:
        return 1
    print("ok: %d schemas current, %d sample envelopes behaved as expected" % (len(files), total))
    return 0


def main():
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="verify schemas/ is current and validate sample envelopes")
    parser.add_argument("--out", default=os.path.join(repo_root, "schemas"),
                        help="schema directory (default: schemas/ in the repo)")
    args = parser.parse_args()
    files = generate()
    if args.check:
        return check(args.out, files)
    write(args.out, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
