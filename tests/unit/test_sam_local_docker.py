"""`make sam-local`'s pure parts: the host-network container kwargs, the x86_64 template copy, the answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devkit.sam_env import env_json
from local.template import ROOT, load_template
from sam_local_docker import checks
from sam_local_docker.build import LOCAL_MIN_TIMEOUT_S, x86_64_template
from sam_local_docker.docker_host import DOCKERD_NETWORK_FLAGS, debian_mirror
from sam_local_docker.sam_host_network import HostNetworkError, host_network_kwargs, is_lambda_container

# What SAM CLI 1.170's Container.create passes to docker-py for a Lambda container (no debugging).
SAM_KWARGS = {
    "command": [],
    "working_dir": "/var/task",
    "tty": False,
    "use_config_proxy": True,
    "volumes": {"/build/WebhookFunction": {"bind": "/var/task", "mode": "ro,delegated"}},
    "environment": {"AWS_LAMBDA_FUNCTION_NAME": "WebhookFunction"},
    "ports": {"8080": ("127.0.0.1", 5123)},
    "entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
    "mem_limit": "512m",
    "labels": {"sam.cli.container.type": "lambda", "sam.cli.function.name": "WebhookFunction"},
}


def test_lambda_container_moves_to_the_host_network_on_sams_port():
    # Given SAM's kwargs for a Lambda container / When adjusted
    adjusted = host_network_kwargs(SAM_KWARGS, api_port=40001)
    # Then host network, no published port, and the emulator listens where SAM will send the invocation
    assert adjusted["network_mode"] == "host" and "ports" not in adjusted
    assert adjusted["entrypoint"] == [
        "/var/rapid/aws-lambda-rie",
        "--log-level",
        "error",
        "--runtime-interface-emulator-address",
        "127.0.0.1:5123",
        "--runtime-api-address",
        "127.0.0.1:40001",
    ]
    # And everything else is SAM's, untouched (the input too)
    assert {k: v for k, v in adjusted.items() if k not in ("network_mode", "entrypoint")} == {
        k: v for k, v in SAM_KWARGS.items() if k not in ("ports", "entrypoint")
    }
    assert SAM_KWARGS["ports"] == {"8080": ("127.0.0.1", 5123)}


def test_only_sams_lambda_containers_are_adjusted():
    assert is_lambda_container(SAM_KWARGS)
    assert not is_lambda_container({**SAM_KWARGS, "labels": {"sam.cli.container.type": "build"}})
    assert not is_lambda_container({k: v for k, v in SAM_KWARGS.items() if k != "labels"})


@pytest.mark.parametrize(
    "change",
    [
        {"ports": {"5858": ("127.0.0.1", 5858)}},  # no emulator port: another SAM version
        {"ports": {"8080": ("127.0.0.1", 5123), "5858": ("127.0.0.1", 5858)}},  # debug ports
        {"entrypoint": ["/lambda-entrypoint.sh"]},  # not SAM's emulator
    ],
)
def test_unknown_shapes_are_refused_loudly(change):
    with pytest.raises(HostNetworkError):
        host_network_kwargs({**SAM_KWARGS, **change}, api_port=40001)


def test_dockerd_never_gets_a_bridge():
    assert set(DOCKERD_NETWORK_FLAGS) == {
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
    }


def test_debian_mirror_is_a_url():
    assert debian_mirror().startswith(("http://", "https://"))


def test_x86_64_copy_changes_only_architectures_paths_and_short_timeouts():
    # Given the template / When copied for x86_64
    original = load_template()
    before = json.dumps(original, sort_keys=True)
    copy = x86_64_template()
    # Then the template itself is untouched
    assert json.dumps(original, sort_keys=True) == before
    # And nothing says arm64 any more; code paths point at the repo
    assert "arm64" not in json.dumps(copy)
    assert copy["Globals"]["Function"]["Architectures"] == ["x86_64"]
    layer = copy["Resources"]["MessengerLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert layer["Properties"]["ContentUri"] == str(ROOT / "layers" / "messenger")
    for function_id in ("WebhookFunction", "ReplyFunction"):
        properties = copy["Resources"][function_id]["Properties"]
        assert Path(properties["CodeUri"]).is_dir() and Path(properties["CodeUri"]).is_absolute()
        assert properties["Timeout"] >= LOCAL_MIN_TIMEOUT_S
        # a makefile build's shared Makefile is found from the copy's own folder too
        context = copy["Resources"][function_id].get("Metadata", {}).get("ContextPath")
        assert context is None or (Path(context).is_absolute() and (Path(context) / "Makefile").is_file())
    # And the rest is the same template
    strip = ("Globals", "Resources")
    assert {k: v for k, v in copy.items() if k not in strip} == {k: v for k, v in original.items() if k not in strip}
    assert set(copy["Resources"]) == set(original["Resources"])


def test_every_sample_event_has_an_expected_answer():
    samples = {p.name for p in (ROOT / "events").glob("*.json") if p.name.startswith(checks.SAMPLE_PREFIXES)}
    assert samples == set(checks.EXPECTED)


@pytest.mark.parametrize(
    ("name", "answer", "ok"),
    [
        ("meta_text_batch.json", {"statusCode": 200, "body": '{"stored":3,"duplicates":0}'}, True),
        ("meta_text_batch.json", {"statusCode": 200, "body": '{"stored":0,"duplicates":3}'}, False),
        ("meta_text_batch.json", {"statusCode": 503, "body": '{"error":"storage_unavailable"}'}, False),
        ("meta_verify.json", {"statusCode": 200, "body": "1158201444"}, True),
        ("meta_data_deletion.json", {"statusCode": 200, "body": '{"url":"http://x/1","confirmation_code":"1"}'}, True),
        ("meta_data_deletion.json", {"statusCode": 200, "body": '{"url":"http://x/1"}'}, False),
        ("stream_inbound_meta.json", {"batchItemFailures": []}, True),
        ("stream_inbound_meta.json", {"batchItemFailures": [{"itemIdentifier": "1"}]}, False),
        ("stream_inbound_meta.json", "Task timed out", False),
    ],
)
def test_invoke_answers_are_checked(name, answer, ok):
    assert (checks.check_invoke(name, answer) is None) is ok


def test_env_vars_for_a_stack_have_events_env_json_shape():
    # Given events/env.json (the default ports) / When the file is made for other URLs
    committed = json.loads((ROOT / "events" / "env.json").read_text())
    made = env_json("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    # Then the same variables, only the URLs differ
    assert {f: set(v) for f, v in made.items()} == {f: set(v) for f, v in committed.items()}
    assert made["WebhookFunction"]["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:1"
    assert made["ReplyFunction"]["GRAPH_API_BASE"] == "http://127.0.0.1:3"
