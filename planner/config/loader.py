"""Reading a configuration file: YAML → validated :class:`FleetConfig`, or one error naming every
bad key with its path, value and line (``models[2].vm_types.h100x8.tensor_parallel: must be ≥ 1,
got 0 (line 57)``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from planner.config.models import FleetConfig
from planner.config.semantics import ConfigIssue, Loc, semantic_issues

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
# libyaml's safe loader when PyYAML has it: the pure-Python one takes ~0.2 s of every command's
# start-up on the default config (bench/ingest.py)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    """A configuration file that cannot be used; ``problems`` holds one line per bad key."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"invalid configuration {path}:\n  " + "\n  ".join(problems))


def load_config(path: Path | str | None = None) -> FleetConfig:
    """Load and validate a configuration file (the default one if ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    text = _read_text(path)
    try:
        root = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)  # a safe loader (libyaml or pure Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [f"YAML syntax error{where}: {problem}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError(path, ["the file must hold a mapping at the top level"])
    duplicates = duplicate_keys(root)
    if duplicates:
        raise ConfigError(path, duplicates)
    return parse_config(data, source=path, node=root)


def duplicate_keys(node: yaml.Node | None, loc: Loc = ()) -> list[str]:
    """Keys given twice in one mapping (YAML would silently keep the last), with both lines."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                out.append(
                    f"{format_loc((*loc, name))}: key given twice (lines {seen[name]} and {line})"
                )
            seen.setdefault(name, line)
            out.extend(duplicate_keys(value, (*loc, name)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.extend(duplicate_keys(item, (*loc, i)))
    return out


def parse_config(
    data: dict[str, Any], source: Path | str = "<dict>", node: yaml.Node | None = None
) -> FleetConfig:
    """Validate an already-parsed mapping; ``node`` (the composed YAML) adds line numbers."""
    try:
        cfg = FleetConfig.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_from_pydantic(err) for err in exc.errors()]
        raise ConfigError(source, [_format(issue, node) for issue in issues]) from None
    problems = semantic_issues(cfg)
    if problems:
        raise ConfigError(source, [_format(issue, node) for issue in problems])
    return cfg


def config_hash(cfg: FleetConfig) -> str:
    """A stable short hash of the validated content (not of the file's bytes or comments).
    An ``lt_f`` section at its defaults and an unset ``planner.work_limit`` are left out, so
    configs written before they existed keep their hash (and their cached plans)."""
    data = cfg.model_dump(mode="json")
    if cfg.lt_f == type(cfg.lt_f)():
        del data["lt_f"]
    if cfg.planner.work_limit is None:  # wall-clock solves, as before the option existed
        del data["planner"]["work_limit"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(path, ["file not found"])
    if path.is_dir():
        raise ConfigError(path, ["is a directory, expected a YAML file"])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror}"]) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(path, [f"not UTF-8 (byte {exc.start}, line {line})"]) from exc


_MESSAGES = {
    "greater_than_equal": "must be ≥ {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be ≤ {le}",
    "less_than": "must be < {lt}",
    "missing": "required key missing",
    "extra_forbidden": "unknown key",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "too_short": "must have at least {min_length} item(s)",
    "string_pattern_mismatch": "must match {pattern}",
    "literal_error": "must be {expected}",
    "finite_number": "must be a finite number",
}


def _issue_from_pydantic(err: Any) -> ConfigIssue:
    template = _MESSAGES.get(err["type"])
    ctx = err.get("ctx") or {}
    message = template.format(**ctx) if template else str(err["msg"])
    message = message.removeprefix("Value error, ")
    value = None if err["type"] == "missing" else err.get("input")
    return ConfigIssue(tuple(err["loc"]), message, value)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _format(issue: ConfigIssue, node: yaml.Node | None) -> str:
    text = f"{format_loc(issue.loc)}: {issue.message}"
    if issue.value is not None and not isinstance(issue.value, dict | list):
        text += f", got {issue.value!r}" if isinstance(issue.value, str) else f", got {issue.value}"
    line = _line_of(node, issue.loc) if node is not None else None
    return f"{text} (line {line})" if line else text


def _line_of(node: yaml.Node, loc: Loc) -> int | None:
    """The 1-based line of the deepest node on ``loc`` that exists in the YAML tree."""
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and (0 <= part < len(node.value))
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line
