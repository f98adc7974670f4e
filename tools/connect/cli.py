"""`make connect`: the command line. Finds the stack, reads the providers, prints the plan, applies it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from devkit.lambda_code import add_layers_to_path
from devkit.messenger_profile import PROFILE_FILE, ProfileError, load_profile
from tools.connect.api import Caller
from tools.connect.graph import Graph
from tools.connect.plan import (
    Item,
    Plan,
    State,
    page_token,
    plan_app_subscription,
    plan_page_subscription,
    plan_profile,
    plan_vonage,
)
from tools.connect.vonage import Applications
from tools.smoke import META_KEYS, Secret, SmokeError, open_stack, read_secret, webhook_outputs

add_layers_to_path()
from messenger.config import (  # noqa: E402 - needs the layer on sys.path
    DEFAULT_GRAPH_API_BASE,
    DEFAULT_GRAPH_API_VERSION,
    DEFAULT_VONAGE_API_BASE,
)

VONAGE_KEYS = ("application_id", "api_key")
NO_APP_ID = "no Meta app id: set META_APP_ID (App settings > Basic) or add app_id to the Meta secret"
NO_API_SECRET = (
    "no Vonage API secret (the Application API authenticates with api_key:api_secret): set VONAGE_API_SECRET, "
    "or add api_secret to the Vonage secret"
)


class StackError(RuntimeError):
    """The stack, the local stack or the profile cannot be read (the message never holds a secret)."""


@dataclass
class Target:
    """Where to connect: the webhook URLs, each provider's secret (or why it is missing) and API endpoints."""

    label: str
    outputs: dict[str, str]
    meta: Secret | None
    vonage: Secret | None
    graph_base: str
    graph_version: str
    vonage_base: str
    meta_problem: str = ""
    vonage_problem: str = ""
    app_id: str | None = None
    api_secret: str | None = None
    secret_values: list[str] = field(default_factory=list)


def _read(secret_id: str, secretsmanager: Any, keys: tuple[str, ...]) -> tuple[Secret | None, str]:
    try:
        return read_secret(secret_id, secretsmanager, keys), ""
    except SmokeError as exc:
        return None, str(exc)


def _target(label: str, outputs: dict[str, str], secret_ids: tuple[str, str], secretsmanager: Any, base: str) -> Target:
    """A target reading its two secrets; GRAPH_API_BASE, GRAPH_API_VERSION and VONAGE_API_BASE override the
    endpoints (`base` is the sandbox in local mode, else each provider's default)."""
    meta, meta_problem = _read(secret_ids[0], secretsmanager, META_KEYS)
    vonage, vonage_problem = _read(secret_ids[1], secretsmanager, VONAGE_KEYS)
    return Target(
        label,
        outputs,
        meta,
        vonage,
        os.environ.get("GRAPH_API_BASE") or base or DEFAULT_GRAPH_API_BASE,
        os.environ.get("GRAPH_API_VERSION") or DEFAULT_GRAPH_API_VERSION,
        os.environ.get("VONAGE_API_BASE") or base or DEFAULT_VONAGE_API_BASE,
        meta_problem,
        vonage_problem,
    )


def deployed_target(args: argparse.Namespace) -> Target:
    """The stack named by AWS_SAM_STACK_NAME, through its outputs and its two secrets (as `make smoke`)."""
    try:
        name, outputs, secretsmanager = open_stack(args.stack_name, args.region)
    except SmokeError as exc:
        raise StackError(str(exc)) from None
    secret_ids = (outputs["MetaSecretArn"], outputs["VonageSecretArn"])
    return _target(f"stack {name}", outputs, secret_ids, secretsmanager, "")


def local_target(args: argparse.Namespace) -> Target:
    """The running local stack (`make dev`): its URLs from .local/stack-<PORT>.json, its secrets from its
    Secrets Manager (moto), the sandbox as Graph and Vonage, and the sandbox's app id and API secret."""
    # Imported here: only the local mode needs them (boto3 clients with fixed local credentials).
    from devkit.local_aws import client
    from devkit.sandbox_secrets import SANDBOX_API_SECRET, SANDBOX_APP_ID
    from devkit.stack_info import stack_info_file

    port = int(os.environ.get("PORT", "3000"))
    try:
        info = json.loads(stack_info_file(port).read_text())
    except (OSError, ValueError):
        raise StackError(f"no local stack on port {port}: start it with `make dev` (PORT=... for another)") from None
    api, sandbox = args.api or info["api"], args.sandbox or info["sandbox"]
    secret_ids = (info["secrets"]["meta"], info["secrets"]["vonage"])
    target = _target(
        f"local stack {api}", webhook_outputs(api), secret_ids, client("secretsmanager", info["moto"]), sandbox
    )
    target.app_id, target.api_secret = str(SANDBOX_APP_ID), SANDBOX_API_SECRET
    return target


def complete(target: Target, args: argparse.Namespace) -> Target:
    """Fill the app id and the Vonage API secret (flag or environment first, then the secret's optional key,
    then the local sandbox's), and list every secret value so that no output line can show one."""
    meta = target.meta.values if target.meta else {}
    vonage = target.vonage.values if target.vonage else {}
    target.app_id = args.app_id or os.environ.get("META_APP_ID") or meta.get("app_id") or target.app_id
    target.api_secret = os.environ.get("VONAGE_API_SECRET") or vonage.get("api_secret") or target.api_secret
    values: list[Any] = [*meta.values(), *vonage.values(), target.api_secret]
    values += list((meta.get("page_tokens") or {}).values())
    target.secret_values = sorted(
        {line for value in values if isinstance(value, str) for line in [value, *value.splitlines()] if len(line) >= 6},
        key=len,
        reverse=True,
    )
    return target


# -- planning ---------------------------------------------------------------------------------------------


def build_plan(target: Target, profile: dict[str, Any], caller: Caller) -> Plan:
    plan = Plan()
    outputs = target.outputs
    if target.meta is None:
        plan.items.append(_skip("Meta", target.meta_problem))
    else:
        meta = target.meta
        graph = Graph(target.graph_base, target.graph_version, meta["app_secret"], caller)
        pages: dict[str, str] = dict(meta["page_tokens"] or {})
        if target.app_id:
            plan_app_subscription(plan, graph, target.app_id, outputs["MetaWebhookUrl"], meta["verify_token"])
        else:
            plan.items.append(_skip("Meta app webhooks and Page subscriptions", NO_APP_ID))
        if not pages:
            plan.items.append(_skip("Meta Pages", "the Meta secret's page_tokens is empty: add a Page and its token"))
        for page_id, value in pages.items():
            token = page_token(page_id, value)
            if target.app_id:
                plan_page_subscription(plan, graph, target.app_id, page_id, token)
            plan_profile(plan, graph, page_id, token, profile)
    if target.vonage is None:
        plan.items.append(_skip("Vonage", target.vonage_problem))
    elif not target.api_secret:
        plan.items.append(_skip("Vonage application", NO_API_SECRET))
    else:
        applications = Applications(target.vonage_base, target.vonage["api_key"], target.api_secret, caller)
        plan_vonage(
            plan, applications, target.vonage["application_id"], outputs["VonageInboundUrl"], outputs["VonageStatusUrl"]
        )
    return plan


def _skip(name: str, why: str) -> Item:
    return Item(name, State.SKIPPED, note=why)


# -- output -----------------------------------------------------------------------------------------------


class Output:
    """Writes lines with every known secret value replaced by `***` (a provider's message could hold one)."""

    def __init__(self, stream: TextIO, secrets: list[str] | None = None) -> None:
        self.stream = stream
        self.secrets = secrets or []

    def __call__(self, line: str = "") -> None:
        for secret in self.secrets:
            line = line.replace(secret, "***")
        print(line, file=self.stream, flush=True)


def show(plan: Plan, say: Output) -> None:
    for item in plan.items:
        say(f"  {item.state.value:<7} {item.name}")
        if item.state is State.CHANGE:
            say(f"            now:    {item.current}")
            say(f"            wanted: {item.wanted}")
            if item.note:
                say(f"            ({item.note})")
        elif item.note:
            say(f"            {item.note}")
    say(
        f"plan: {plan.count(State.CHANGE)} to change, {plan.count(State.IN_SYNC)} in sync, "
        f"{plan.count(State.SKIPPED)} skipped, {plan.count(State.FAILED)} could not be read"
    )


def apply(plan: Plan, say: Output) -> int:
    """Run every step; the number that failed (the others still run)."""
    failures = 0
    for step in plan.steps:
        try:
            step.run()
        except Exception as exc:  # noqa: BLE001 - a ConnectError, or anything else: report it and go on
            failures += 1
            for item in step.items:
                item.state = State.FAILED
            say(f"  failed  {step.label}: {exc}")
        else:
            say(f"  done    {step.label}")
    return failures


# -- main -------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.connect",
        description="Set the Meta app's webhooks, each Page's subscription and Messenger profile, and the Vonage "
        "application's webhooks from the deployed stack (AWS_SAM_STACK_NAME) or the local one (--local).",
    )
    p.add_argument("--stack-name", default=None, help="default: AWS_SAM_STACK_NAME")
    p.add_argument("--region", default=None, help="default: AWS_REGION")
    p.add_argument("--local", action="store_true", help="the running local stack (make dev) and its sandbox")
    p.add_argument("--api", help="with --local: the HTTP API base URL (default: the running stack's)")
    p.add_argument("--sandbox", help="with --local: the sandbox base URL (default: the running stack's)")
    p.add_argument("--app-id", help="the Meta app's id (default: META_APP_ID, or the Meta secret's app_id)")
    p.add_argument("--profile", type=Path, default=PROFILE_FILE, help="the Messenger profile file (%(default)s)")
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything differs (drift)")
    return p


def main(
    argv: list[str] | None = None,
    out: TextIO | None = None,
    ask: Callable[[str], str] | None = None,
    caller: Caller | None = None,
) -> int:
    """0: everything matches (or was applied); 1: drift (--check), a failure, or changes not applied;
    2: the stack or the profile file cannot be read (nothing was called)."""
    args = parser().parse_args(argv)
    say = Output(out or sys.stdout)
    try:
        profile = load_profile(args.profile)
        target = complete(local_target(args) if args.local else deployed_target(args), args)
    except (ProfileError, StackError) as exc:
        say(f"connect: {exc}")
        return 2
    say.secrets = target.secret_values
    caller = caller or Caller()
    say(
        f"connect: {target.label}; Graph {target.graph_base.rstrip('/')}/{target.graph_version}; "
        f"Vonage {target.vonage_base.rstrip('/')}; profile {args.profile.name}"
    )
    plan = build_plan(target, profile, caller)
    show(plan, say)
    failed = plan.count(State.FAILED)
    if args.check:
        drift = plan.count(State.CHANGE)
        say("no drift" if not drift else f"drift: {drift} setting(s) differ; `make connect` fixes them")
        return 1 if drift or failed else 0
    if not plan.steps:
        say("nothing to change" + (": every setting already matches" if not failed else ""))
        return 1 if failed else 0
    if not args.yes:
        if ask is None and not sys.stdin.isatty():
            say("not applied: no terminal to confirm on; run with --yes (make connect ARGS=--yes)")
            return 1
        answer = (ask or input)(f"apply {len(plan.steps)} change(s)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            say("not applied")
            return 1
    failures = apply(plan, say)
    say(f"applied {len(plan.steps) - failures} of {len(plan.steps)} change(s)")
    return 1 if failures or failed else 0
