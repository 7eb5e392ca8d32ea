"""Ceremony definitions as data: one TOML file per ceremony in `ceremonies/scripts/`, loaded and validated here.

A definition names its roles, its parameters (help, choices, defaults), its numbered steps (who acts: a role; what
the step does: an action of the runtime; whether it needs approvals; what the participant checks) and how
exceptions are handled. A step may repeat once per component (`repeat`) or be present only for some parameters
(`if`, `unless`: a parameter that is set and not 0, or `param=value`). An unknown field, role, action or
exception handling is an error at load time (the model: the IANA root KSK ceremony scripts).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from ceremonies.errors import CeremonyError, InvalidCeremony

ROLES: Final = ("officer", "custodian", "auditor", "operator", "vendor", "sp", "admin")
ACTIONS: Final = frozenset({"witness", "generate-component", "enter-component", "combine", "generate-key",
                            "confirm-kcv", "activate", "export-block", "deliver-block", "import-block",
                            "plan-rollout", "deactivate", "destroy", "enroll", "remove", "set-quorum"})
HANDLINGS: Final = frozenset({"retry", "abort"})
_TOP: Final = frozenset({"type", "title", "summary", "time_limit_minutes", "roles", "params", "steps", "exceptions"})
_PARAM: Final = frozenset({"help", "required", "choices", "default"})
_STEP: Final = frozenset({"role", "action", "title", "checks", "repeat", "if", "unless", "approval", "key", "like",
                          "usage", "expected"})


@dataclass(frozen=True)
class Param:
    """A parameter given at start (`--param K=V`)."""

    name: str
    help: str
    required: bool
    choices: tuple[str, ...]
    default: str


@dataclass(frozen=True)
class StepDef:
    """One step of a definition, before it is numbered for a ceremony."""

    role: str
    action: str
    title: str
    checks: str
    repeat: str = ""
    only_if: str = ""
    unless: str = ""
    approval: bool = False
    key: str = "label"
    like: str = ""
    usage: str = ""
    expected: str = ""


@dataclass(frozen=True)
class Step:
    """A numbered step of one ceremony (after repetition and conditions)."""

    number: int
    role: str
    action: str
    title: str
    checks: str
    approval: bool
    index: int
    """The component index of a repeated step (1..N), else 0."""
    spec: StepDef


@dataclass(frozen=True)
class ExceptionRule:
    """What happens when a step fails with an error code: the step is retried, or the ceremony aborted."""

    code: str
    handling: str
    note: str


@dataclass(frozen=True)
class Definition:
    """One ceremony script."""

    type: str
    title: str
    summary: str
    time_limit_minutes: int
    roles: tuple[str, ...]
    params: tuple[Param, ...]
    steps: tuple[StepDef, ...]
    exceptions: tuple[ExceptionRule, ...]

    def resolve(self, given: dict[str, str]) -> dict[str, str]:
        """The parameters with defaults, checked: unknown and missing names, values outside the choices."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise InvalidCeremony(f"{self.type} has no parameter {', '.join(unknown)} "
                                  f"(parameters: {', '.join(known)})")
        values = {}
        for param in self.params:
            value = given.get(param.name, param.default)
            if param.required and not value:
                raise InvalidCeremony(f"{self.type} needs --param {param.name}=... ({param.help})")
            if param.choices and value not in param.choices:
                raise InvalidCeremony(f"{param.name} is one of {', '.join(c for c in param.choices if c)}, "
                                      f"not {value!r}")
            if not value.isprintable() or len(value) > 4096:
                raise InvalidCeremony(f"{param.name} is printable text of at most 4096 characters")
            values[param.name] = value
        return values

    def plan(self, params: dict[str, str]) -> list[Step]:
        """The numbered steps for these parameters."""
        steps: list[Step] = []
        for spec in self.steps:
            if (spec.only_if and not _holds(spec.only_if, params)) or (spec.unless and _holds(spec.unless, params)):
                continue
            count = _count(params, spec.repeat) if spec.repeat else 0
            for index in range(1, count + 1) if spec.repeat else (0,):
                steps.append(Step(len(steps) + 1, spec.role, spec.action, spec.title.format(index=index),
                                  spec.checks, spec.approval, index, spec))
        return steps

    def handling(self, code: str) -> ExceptionRule:
        """The rule for an error code (retry when the script names none)."""
        for rule in self.exceptions:
            if rule.code == code:
                return rule
        return ExceptionRule(code, "retry", "")


def _holds(condition: str, params: dict[str, str]) -> bool:
    name, _, value = condition.partition("=")
    return params.get(name, "") == value if value else params.get(name, "") not in ("", "0")


def _count(params: dict[str, str], name: str) -> int:
    try:
        count = int(params.get(name, "0"))
    except ValueError:
        raise InvalidCeremony(f"{name} is a number, not {params.get(name)!r}") from None
    if count != 0 and not 2 <= count <= 9:
        raise InvalidCeremony(f"{name} is 0 or 2 to 9, not {count}")
    return count


def _fields(table: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise CeremonyError(f"{where}: unknown field(s) {', '.join(extra)}")


def parse(text: str, where: str) -> Definition:
    """A definition from TOML text, validated (CeremonyError names the file and the problem)."""
    data = tomllib.loads(text)
    _fields(data, _TOP, where)
    roles = tuple(data.get("roles", ()))
    for role in roles:
        if role not in ROLES:
            raise CeremonyError(f"{where}: unknown role {role!r}")
    for name, raw_param in data.get("params", {}).items():
        _fields(raw_param, _PARAM, f"{where} parameter {name}")
    params = tuple(Param(name, str(p.get("help", "")), bool(p.get("required", False)),
                         tuple(p.get("choices", ())), str(p.get("default", "")))
                   for name, p in data.get("params", {}).items())
    steps = []
    for n, raw in enumerate(data.get("steps", ()), 1):
        _fields(raw, _STEP, f"{where} step {n}")
        step = StepDef(raw["role"], raw["action"], raw["title"], raw.get("checks", ""), raw.get("repeat", ""),
                       raw.get("if", ""), raw.get("unless", ""), bool(raw.get("approval", False)),
                       raw.get("key", "label"), raw.get("like", ""), raw.get("usage", ""), raw.get("expected", ""))
        if step.role not in roles:
            raise CeremonyError(f"{where} step {n}: role {step.role!r} is not one of the ceremony's roles")
        if step.action not in ACTIONS:
            raise CeremonyError(f"{where} step {n}: unknown action {step.action!r}")
        names = {p.name for p in params}
        for ref in (step.repeat, step.only_if.partition("=")[0], step.unless.partition("=")[0], step.like,
                    step.expected):
            if ref and ref not in names:
                raise CeremonyError(f"{where} step {n}: no parameter {ref!r}")
        steps.append(step)
    rules = tuple(ExceptionRule(e["code"], e["handling"], e.get("note", "")) for e in data.get("exceptions", ()))
    for rule in rules:
        if rule.handling not in HANDLINGS:
            raise CeremonyError(f"{where}: exception handling {rule.handling!r} is not retry or abort")
    if not steps:
        raise CeremonyError(f"{where}: a ceremony has steps")
    return Definition(data["type"], data["title"], data.get("summary", ""), int(data["time_limit_minutes"]), roles,
                      params, tuple(steps), rules)


@cache
def shipped() -> dict[str, Definition]:
    """The ceremonies shipped in `ceremonies/scripts/`, by type."""
    found = {}
    for entry in sorted(resources.files("ceremonies.scripts").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            definition = parse(entry.read_text(encoding="utf-8"), entry.name)
            found[definition.type] = definition
    return found


def definition(kind: str) -> Definition:
    """The shipped definition of a ceremony type (UnknownCeremonyType lists them)."""
    found = shipped().get(kind)
    if found is None:
        raise InvalidCeremony(f"unknown ceremony type {kind!r} (types: {', '.join(shipped())})")
    return found
