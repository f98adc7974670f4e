"""Read template.yaml: the one source for the table, the routes, the environment and the stream settings."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags (!Ref, !GetAtt ...) into their long form."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources(template: dict[str, Any] | None = None) -> dict[str, Any]:
    return (template or load_template())["Resources"]


def table_definition(table_name: str, logical_id: str = "EventsTable") -> dict[str, Any]:
    """CreateTable arguments for DynamoDB Local, taken from the template's table resource."""
    props = resources()[logical_id]["Properties"]
    definition: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        # DynamoDB Local does not meter capacity: the template's TableCapacity changes nothing here.
        "BillingMode": "PAY_PER_REQUEST",
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("StreamSpecification"):
        definition["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return definition


def key_schema(logical_id: str = "EventsTable") -> tuple[str, ...]:
    """The table's key attributes, partition (HASH) key first: the full item key that the stream's
    ParallelizationFactor lanes are keyed by."""
    schema = resources()[logical_id]["Properties"]["KeySchema"]
    return tuple(key["AttributeName"] for key in sorted(schema, key=lambda key: key["KeyType"] != "HASH"))


def ttl_attribute(logical_id: str = "EventsTable") -> str | None:
    spec = resources()[logical_id]["Properties"].get("TimeToLiveSpecification") or {}
    return spec.get("AttributeName") if spec.get("Enabled") else None


@dataclass(frozen=True)
class StreamSettings:
    """The reply function's DynamoDB event source mapping, as the template declares it."""

    batch_size: int = 100
    batching_window_s: float = 0
    maximum_retry_attempts: int = -1
    maximum_record_age_s: int = -1
    bisect_on_error: bool = False
    report_batch_item_failures: bool = False
    starting_position: str = "LATEST"
    parallelization_factor: int = 1
    filter_patterns: list[dict[str, Any]] = field(default_factory=list)
    on_failure_queue: str | None = None


def stream_settings(function_id: str = "ReplyFunction") -> StreamSettings:
    events = resources()[function_id]["Properties"].get("Events", {})
    props = next(e["Properties"] for e in events.values() if e.get("Type") == "DynamoDB")
    filters = (props.get("FilterCriteria") or {}).get("Filters", [])
    on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    queue = None
    if isinstance(on_failure, dict) and "Fn::GetAtt" in on_failure:
        queue = on_failure["Fn::GetAtt"][0]
    return StreamSettings(
        batch_size=int(props.get("BatchSize", 100)),
        batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        maximum_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
        bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
        report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        starting_position=str(props.get("StartingPosition", "LATEST")),
        parallelization_factor=int(props.get("ParallelizationFactor", 1)),
        filter_patterns=[json.loads(f["Pattern"]) for f in filters],
        on_failure_queue=queue,
    )


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function_id: str
    code_uri: str
    handler: str


def http_routes() -> list[Route]:
    routes: list[Route] = []
    for logical_id, resource in resources().items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                routes.append(
                    Route(
                        method=event["Properties"]["Method"].upper(),
                        path=event["Properties"]["Path"],
                        function_id=logical_id,
                        code_uri=props["CodeUri"],
                        handler=props["Handler"],
                    )
                )
    return routes


def function_environment(function_id: str, resolve: dict[str, str]) -> dict[str, str]:
    """The function's environment (Globals merged with its own), with !Ref/!GetAtt/!If resolved by `resolve`.

    `resolve` maps a logical id or parameter name to its local value; unresolvable values are dropped.
    """
    template = load_template()
    merged: dict[str, Any] = {}
    glob = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    merged.update(glob.get("Variables") or {})
    own = resources()[function_id]["Properties"].get("Environment") or {}
    merged.update(own.get("Variables") or {})
    parameters = {name: str(spec.get("Default", "")) for name, spec in (template.get("Parameters") or {}).items()}
    env: dict[str, str] = {}
    for name, value in merged.items():
        resolved = _resolve(value, resolve, parameters)
        if resolved is not None:
            env[name] = resolved
    return env


def _resolve(value: Any, resolve: dict[str, str], parameters: dict[str, str]) -> str | None:
    if isinstance(value, str | int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((fn, arg),) = value.items()
    if fn == "Ref":
        return resolve.get(arg, parameters.get(arg))
    if fn == "Fn::GetAtt":
        return resolve.get(".".join(arg) if isinstance(arg, list) else arg, resolve.get(arg[0]))
    if fn == "Fn::If":
        # Locally the stack's own resources are used: resolve the "false" branch of Existing* conditions
        # only when the caller gave no override for the true branch.
        for branch in (arg[2], arg[1]):
            resolved = _resolve(branch, resolve, parameters)
            if resolved:
                return resolved
        return None
    if fn == "Fn::Sub" and isinstance(arg, str):
        text = arg
        for key, val in {**parameters, **resolve}.items():
            text = text.replace("${" + key + "}", val)
        return None if "${" in text else text
    return None


@dataclass(frozen=True)
class FunctionSpec:
    """Where a function's code lives and how long it may run (Globals merged with its own properties)."""

    function_id: str
    code_uri: str
    handler: str
    timeout_s: int
    memory_mb: int

    @property
    def module_file(self) -> str:
        return self.handler.rsplit(".", 1)[0].replace(".", "/") + ".py"

    @property
    def function_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def function_spec(function_id: str) -> FunctionSpec:
    template = load_template()
    glob = (template.get("Globals") or {}).get("Function") or {}
    props = {**glob, **resources()[function_id]["Properties"]}
    return FunctionSpec(
        function_id=function_id,
        code_uri=str(props["CodeUri"]).rstrip("/"),
        handler=str(props["Handler"]),
        timeout_s=int(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
    )


def stream_function_id() -> str:
    """The logical id of the (single) function with a DynamoDB stream event."""
    for logical_id, resource in resources().items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        events = resource["Properties"].get("Events") or {}
        if any(e.get("Type") == "DynamoDB" for e in events.values()):
            return logical_id
    raise LookupError("no function with a DynamoDB event in template.yaml")


@dataclass(frozen=True)
class MetricRef:
    """A metric a dashboard or an alarm names; template references are kept as `<LogicalId>`."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]


def _reference(value: Any) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    return str(value)


def dashboard_widgets(logical_id: str) -> list[dict[str, Any]]:
    """The widgets of a dashboard's body (a JSON !Sub), with every ${...} turned into <...>."""
    body = resources()[logical_id]["Properties"]["DashboardBody"]
    text = body["Fn::Sub"] if isinstance(body, dict) else body
    return json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", text))["widgets"]


def named_metrics() -> set[MetricRef]:
    """Every metric that the template's dashboards and alarms name (not metric-math expressions)."""
    found: set[MetricRef] = set()
    for logical_id, resource in resources().items():
        if resource.get("Type") == "AWS::CloudWatch::Dashboard":
            for widget in dashboard_widgets(logical_id):
                for row in (widget.get("properties") or {}).get("metrics", []):
                    names = [cell for cell in row if isinstance(cell, str)]
                    if len(names) >= 2:
                        pairs = tuple(sorted(zip(names[2::2], names[3::2], strict=True)))
                        found.add(MetricRef(names[0], names[1], pairs))
        elif resource.get("Type") == "AWS::CloudWatch::Alarm":
            props = resource["Properties"]
            specs = (
                [props]
                if "MetricName" in props
                else [query["MetricStat"]["Metric"] for query in props.get("Metrics", []) if "MetricStat" in query]
            )
            for spec in specs:
                pairs = tuple(sorted((d["Name"], _reference(d["Value"])) for d in spec.get("Dimensions", [])))
                found.add(MetricRef(spec["Namespace"], spec["MetricName"], pairs))
    return found
