"""What each step of a ceremony does: one function per action of the definitions (ceremonies/definitions.py).

Every action that touches keys calls the key service, which checks policy and the approval set and writes the
audit record; nothing here handles key material (components are generated, entered, sealed and combined by
`KeyService.components`). Each action is safe to run again after an interruption: it finds what an earlier,
interrupted run made (a key already formed, generated or active) and goes on from there.

An action returns what the transcript records (labels, KCVs, job ids: never a secret) and, apart, what is shown
once to the person signing (a generated component, a TOTP provisioning URI, a key block).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from ceremonies.definitions import Step
from ceremonies.errors import InvalidCeremony, NotYetDue
from ceremonies.views import Person
from globalplatform.keys import KeyAlgorithm
from keyservice.approvals import ApprovalSet
from keyservice.components import set_marker
from keyservice.errors import KcvMismatch, KeyNotFound
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.service import KeyService
from keyservice.vendor import KeyBlockHeader, Received
from keyservice.views import KeyView, NewKey

Planner = Callable[[int], list[str]]
"""Plans the PUT KEY rollout to a key version and returns the job ids (given by the edge: the TSM core)."""


@dataclass
class Context:
    """What a step sees: the key service, the ceremony's id, parameters and outputs so far, the signer, the
    inputs they gave, and the approval set collected for the step."""

    ks: KeyService
    ceremony_id: str
    params: dict[str, str]
    outputs: dict[str, str]
    step: Step
    person: Person | None
    """None while approvals are collected (only the step's description is needed then)."""
    inputs: dict[str, str]
    approvals: ApprovalSet | None
    now: datetime
    planner: Planner | None = None
    shown: dict[str, str] = field(default_factory=dict)

    def request(self, purpose: Purpose = Purpose.KEY_MANAGEMENT) -> Request:
        """The key-service request of this step: the signer, the purpose, the ceremony as target, its approvals."""
        if self.person is None:
            raise InvalidCeremony("a step runs for the person signing it")
        return Request(self.person.caller, purpose, self.ceremony_id, approvals=self.approvals)

    def label(self) -> str:
        return self.params.get(self.step.spec.key, "")

    def need(self, name: str) -> str:
        value = self.inputs.get(name, "")
        if not value:
            raise InvalidCeremony(f"step {self.step.number} needs the input {name!r} (in the input file)")
        return value


Action = Callable[[Context], dict[str, str]]


def spec_of(ctx: Context) -> NewKey:
    """The key a generation, combination or rotation makes, marked with the ceremony."""
    p = ctx.params
    note = f"ceremony {ctx.ceremony_id} {set_marker(ctx.ceremony_id)}"
    if ctx.step.spec.like:
        old = ctx.ks.keys.show(p[ctx.step.spec.like])
        return NewKey(ctx.label(), KeyAlgorithm(old.algorithm), old.length, KeyUsage(old.usage), old.owner,
                      int(p["kvn"], 16), old.key_id, note)
    usage = ctx.step.spec.usage or p.get("usage", "KEK")
    owner = p.get("owner") or (f"vendor:{p['vendor']}" if p.get("vendor") else "issuer")
    kvn = int(p["kvn"], 16) if p.get("kvn") else None
    try:
        return NewKey(ctx.label(), KeyAlgorithm(p.get("algorithm", "aes")), int(p.get("length", "16")),
                      KeyUsage(usage), owner, kvn, None, note)
    except ValueError as exc:
        raise InvalidCeremony(f"bad key parameters: {exc}") from None


def _existing(ctx: Context, label: str) -> KeyView | None:
    try:
        view = ctx.ks.keys.show(label)
    except KeyNotFound:
        return None
    return view if set_marker(ctx.ceremony_id) in view.note else None


def witness(ctx: Context) -> dict[str, str]:
    return {}


def generate_component(ctx: Context) -> dict[str, str]:
    spec = spec_of(ctx)
    shown = ctx.ks.components.generate(ctx.request(), ctx.ceremony_id, ctx.step.index, spec.algorithm, spec.length)
    ctx.shown.update(component=shown.value, kcv=shown.kcv)
    return {f"component_{shown.index}_kcv": shown.kcv}


def enter_component(ctx: Context) -> dict[str, str]:
    spec = spec_of(ctx)
    try:
        value = bytes.fromhex(ctx.need("component"))
    except ValueError:
        raise InvalidCeremony("the component is not valid hex") from None
    held = ctx.ks.components.enter(ctx.request(), ctx.ceremony_id, ctx.step.index, spec.algorithm, value,
                                   ctx.need("kcv"))
    return {f"component_{held.index}_kcv": held.kcv}


def combine(ctx: Context) -> dict[str, str]:
    spec = spec_of(ctx)
    count = int(ctx.params.get("components", "2"))
    generated = "kcv" not in ctx.params  # a script without a sender's KCV generated its components
    view = ctx.ks.components.combine(ctx.request(), ctx.ceremony_id, spec, count, generated=generated)
    expected = ctx.params.get("kcv", "")
    if expected and expected.upper() != view.kcv:
        raise KcvMismatch(f"the formed key's KCV {view.kcv} is not the {expected.upper()} the sender gave")
    return {f"{ctx.step.spec.key}_kcv": view.kcv}


def generate_key(ctx: Context) -> dict[str, str]:
    spec = spec_of(ctx)
    view = _existing(ctx, spec.label) or ctx.ks.keys.generate(ctx.request(), spec)
    return {f"{ctx.step.spec.key}_kcv": view.kcv}


def confirm_kcv(ctx: Context) -> dict[str, str]:
    typed = ctx.need("kcv").upper()
    key = ctx.step.spec.key
    recorded = ctx.outputs.get(f"{key}_kcv") or ctx.ks.keys.show(ctx.label()).kcv
    expected = ctx.params.get(ctx.step.spec.expected, "").upper() if ctx.step.spec.expected else recorded
    if typed != recorded or typed != expected:
        raise KcvMismatch(f"the KCV typed ({typed}) is not the key's")
    return {f"{key}_kcv_confirmed_by": ctx.person.name if ctx.person else ""}


def _state(ctx: Context, label: str, state: KeyState) -> dict[str, str]:
    if ctx.ks.keys.show(label).state != state:
        ctx.ks.keys.change_state(ctx.request(), label, state)
    return {f"{ctx.step.spec.key}_state": state.value}


def activate(ctx: Context) -> dict[str, str]:
    return _state(ctx, ctx.label(), KeyState.ACTIVE)


def deactivate(ctx: Context) -> dict[str, str]:
    due = datetime.fromisoformat(ctx.outputs["retire_at"]) if "retire_at" in ctx.outputs else ctx.now
    if ctx.now < due:
        raise NotYetDue(f"the old version is deactivated on or after {due.isoformat(timespec='minutes')}")
    return _state(ctx, ctx.label(), KeyState.DEACTIVATED)


def destroy(ctx: Context) -> dict[str, str]:
    label = ctx.label()
    view = ctx.ks.keys.show(label)
    if view.state != KeyState.DESTROYED:
        view = ctx.ks.keys.destroy(ctx.request(), label)
    return {"destroyed": label, "destroyed_kcv": view.kcv}


def export_block(ctx: Context) -> dict[str, str]:
    p = ctx.params
    block = ctx.ks.vendor.export_key_block(ctx.request(Purpose.VENDOR_EXPORT), p["key"], p["kbpk"],
                                           KeyBlockHeader(p.get("header_usage", "K0")))
    ctx.shown["key_block"] = block
    return {"key_block_sha256": hashlib.sha256(block.encode()).hexdigest(),
            "key_kcv": ctx.ks.keys.show(p["key"]).kcv}


def deliver_block(ctx: Context) -> dict[str, str]:
    block, kcv = ctx.need("block"), ctx.need("kcv").upper()
    return {"key_block": block, "key_block_kcv": kcv}


def received(ctx: Context) -> Received:
    """Where the vendor's key goes (import-block): marked with the ceremony, like every key a ceremony makes, so
    that an abort destroys it if it was never activated."""
    usage = KeyUsage(ctx.params["key_usage"]) if ctx.params.get("key_usage") else None
    return Received(ctx.label(), f"vendor:{ctx.params['vendor']}", usage,
                    lineage=f"ceremony {ctx.ceremony_id} {set_marker(ctx.ceremony_id)}")


def import_block(ctx: Context) -> dict[str, str]:
    view = _existing(ctx, ctx.label())  # an interrupted import made the key already
    if view is None:
        view = ctx.ks.vendor.import_key_block(ctx.request(Purpose.VENDOR_IMPORT), ctx.params["kbpk"],
                                              ctx.outputs["key_block"], received(ctx), ctx.outputs["key_block_kcv"])
    return {"key_kcv": view.kcv}


def plan_rollout(ctx: Context) -> dict[str, str]:
    if ctx.planner is None:
        raise InvalidCeremony("no rollout planner: this front end cannot plan PUT KEY jobs")
    jobs = ctx.planner(int(ctx.params["kvn"], 16))
    days = int(ctx.params.get("retire_after_days", "0") or "0")
    return {"rollout_jobs": " ".join(jobs), "retire_at": (ctx.now + timedelta(days=days)).isoformat()}


MAKERS: Final = frozenset({"combine", "generate-key", "import-block", "destroy"})
"""Actions that create or destroy the step's key: a run killed half-way is finished first (`resume`)."""


def resume(ctx: Context) -> None:
    """Finish what a killed earlier run of this step left for its key (`KeyService.components.resume`)."""
    if ctx.step.action in MAKERS and ctx.label():
        ctx.ks.components.resume(ctx.request(), ctx.ceremony_id, ctx.label())


ACTIONS: Final[dict[str, Action]] = {
    "witness": witness, "generate-component": generate_component, "enter-component": enter_component,
    "combine": combine, "generate-key": generate_key, "confirm-kcv": confirm_kcv, "activate": activate,
    "deactivate": deactivate, "destroy": destroy, "export-block": export_block, "deliver-block": deliver_block,
    "import-block": import_block, "plan-rollout": plan_rollout,
}
"""The actions of key ceremonies; the people actions (enroll, remove, set-quorum) are in ceremonies/quorum.py."""
