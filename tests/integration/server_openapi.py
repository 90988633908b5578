"""Reads docs/openapi.yaml (a plain YAML subset, no library needed) and validates JSON answers against it.

Supported YAML: block mappings and block sequences indented by spaces, `- key: value` items, one-line scalars
(plain, 'single' or "double" quoted), [flow, lists] of scalars, `[]`, true/false/null, integers, # comment lines.
Supported schema keywords: $ref (local), type, nullable, enum, required, properties, additionalProperties (bool or
schema), items.
"""
import json
import re


def _scalar(s):
    s = s.strip()
    if s == "":
        return None
    if s.startswith("'") and s.endswith("'") and len(s) >= 2:
        return s[1:-1].replace("''", "'")
    if s.startswith('"') and s.endswith('"') and len(s) >= 2:
        return json.loads(s)
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        return [] if inner == "" else [_scalar(x) for x in _split_flow(inner)]
    if s in ("true", "false"):
        return s == "true"
    if s in ("null", "~"):
        return None
    if re.fullmatch(r"-?[0-9]+", s):
        return int(s)
    return s


def _split_flow(s):
    out, cur, q = [], "", None
    for ch in s:
        if q:
            cur += ch
            if ch == q:
                q = None
        elif ch in "'\"":
            q = ch
            cur += ch
        elif ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _key_value(text):
    """'key: value' -> (key, value-text or None); a quoted key may hold ':'."""
    m = re.match(r"""^('[^']*'|"[^"]*"|[^'":][^:]*?):(?:\s+(.*))?$""", text)
    if not m:
        return None
    return _scalar(m.group(1)) if m.group(1)[0] in "'\"" else m.group(1), m.group(2)


def load(text):
    lines = []
    for raw in text.splitlines():
        if raw.strip() == "" or raw.lstrip().startswith("#"):
            continue
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))
    value, pos = _block(lines, 0, lines[0][0])
    if pos != len(lines):
        raise ValueError("openapi.yaml: cannot parse line %r" % (lines[pos][1],))
    return value


def _block(lines, pos, indent):
    if lines[pos][1].startswith("- ") or lines[pos][1] == "-":
        return _seq(lines, pos, indent)
    return _map(lines, pos, indent, {})


def _map(lines, pos, indent, out):
    while pos < len(lines) and lines[pos][0] == indent and not lines[pos][1].startswith("- "):
        kv = _key_value(lines[pos][1])
        if kv is None:
            raise ValueError("openapi.yaml: expected `key: value`, got %r" % (lines[pos][1],))
        key, val = kv
        pos += 1
        if val is None or val == "":
            if pos < len(lines) and lines[pos][0] > indent:
                out[key], pos = _block(lines, pos, lines[pos][0])
            else:
                out[key] = None
        else:
            out[key] = _scalar(val)
    return out, pos


def _seq(lines, pos, indent):
    out = []
    while pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("-"):
        item = lines[pos][1][1:].strip()
        kv = _key_value(item) if item else None
        if kv is not None and not item.startswith(("'", '"', "[")) or (kv is not None and item.startswith(("'", '"')) and ":" in item):
            # a mapping item: its first key is on the dash line, the rest at indent + 2
            sub = [(indent + 2, item)] + lines[pos + 1:]
            value, used = _map(sub, 0, indent + 2, {})
            out.append(value)
            pos += used
        else:
            out.append(_scalar(item))
            pos += 1
    return out, pos


class Spec:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = load(f.read())

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def operation(self, method, path):
        segs = path.split("?")[0].rstrip("/").split("/") if path != "/" else [""]
        for tmpl, item in self.doc["paths"].items():
            tsegs = tmpl.rstrip("/").split("/") if tmpl != "/" else [""]
            if len(tsegs) != len(segs):
                continue
            if all(t == s or (t.startswith("{") and t.endswith("}")) for t, s in zip(tsegs, segs)):
                op = item.get(method.lower())
                if op is not None:
                    return tmpl, op
        return None, None

    def response_schema(self, method, path, status, content_type="application/json"):
        tmpl, op = self.operation(method, path)
        if op is None:
            return None, "no operation %s %s in openapi.yaml" % (method, path)
        responses = op.get("responses", {})
        resp = responses.get(str(status)) or responses.get("default")
        if resp is None:
            return None, "status %s of %s %s is not documented" % (status, method, tmpl)
        resp = self.resolve(resp)
        content = resp.get("content") or {}
        media = content.get(content_type)
        if media is None:
            return None, "content type %s of %s %s %s is not documented" % (content_type, status, method, tmpl)
        return media.get("schema"), None

    def validate(self, schema, value, where="$"):
        errors = []
        schema = self.resolve(schema)
        if schema is None:
            return errors
        if value is None:
            if not schema.get("nullable") and "type" in schema:
                errors.append("%s: null is not allowed" % where)
            return errors
        t = schema.get("type")
        ok = {
            None: True,
            "object": isinstance(value, dict),
            "array": isinstance(value, list),
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        }.get(t, False)
        if not ok:
            return ["%s: expected %s, got %s" % (where, t, type(value).__name__)]
        if "enum" in schema and value not in schema["enum"]:
            errors.append("%s: %r is not one of %r" % (where, value, schema["enum"]))
        if t == "object":
            props = schema.get("properties") or {}
            for r in schema.get("required") or []:
                if r not in value:
                    errors.append("%s: required field %s is missing" % (where, r))
            extra = schema.get("additionalProperties", True)
            for k, v in value.items():
                if k in props:
                    errors += self.validate(props[k], v, "%s.%s" % (where, k))
                elif extra is False:
                    errors.append("%s: field %s is not in the schema" % (where, k))
                elif isinstance(extra, dict):
                    errors += self.validate(extra, v, "%s.%s" % (where, k))
        if t == "array" and "items" in schema:
            for i, v in enumerate(value):
                errors += self.validate(schema["items"], v, "%s[%d]" % (where, i))
        return errors

    def check_response(self, method, path, status, content_type, body):
        """Returns a list of problems (empty when the answer matches the document)."""
        ctype = (content_type or "").split(";")[0].strip()
        schema, problem = self.response_schema(method, path, status, ctype)
        if problem:
            return [problem]
        if ctype != "application/json":
            return []
        try:
            value = json.loads(body)
        except ValueError as e:
            return ["%s %s -> %s: body is not JSON (%s)" % (method, path, status, e)]
        return ["%s %s -> %s: %s" % (method, path, status, e) for e in self.validate(schema, value)]
