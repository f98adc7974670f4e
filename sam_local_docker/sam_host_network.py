"""Run SAM CLI with its Lambda containers on the host network (for a dockerd that has no bridge).

    <sam venv>/bin/python sam_local_docker/sam_host_network.py local invoke ...   # same arguments as `sam`

Runs inside SAM CLI's own virtualenv (`make sam-cli`), so it imports nothing from this project. SAM CLI
1.170's `--docker-network host` only skips attaching a network; the container itself still asks for the
default (bridge) network and publishes the emulator's port 8080 on a host port SAM picked. On a dockerd
started with `--bridge=none` that cannot work. Before handing over to SAM's own `cli()`, this wrapper adjusts
docker-py's container creation for SAM's Lambda containers only (label `sam.cli.container.type=lambda`):

- `network_mode="host"` and no port mapping;
- the runtime interface emulator is told to listen on 127.0.0.1:<the port SAM picked>, which is where SAM
  sends the invocation, and to serve the Runtime API on a free loopback port of its own (two warm containers
  share the host's ports, so the default 127.0.0.1:9001 would clash).

It also skips SAM's look-up of newer versions on PyPI (the version is pinned) and runs SAM's image builds
(`FROM <invoke image>` + the emulator + layers, which has RUN steps) with
`network_mode="host"`, so no build container asks for a bridge either. Everything else is SAM's own code.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

PINNED_SAM_CLI = "1.170.0"  # the version whose container kwargs this was written against (Makefile SAM_CLI_VERSION)
LAMBDA_LABEL = ("sam.cli.container.type", "lambda")
EMULATOR_PORT = "8080"  # the container port SAM maps to its chosen host port
EMULATOR = "aws-lambda-rie"


class HostNetworkError(RuntimeError):
    pass


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_network_kwargs(kwargs: dict[str, Any], api_port: int | None = None) -> dict[str, Any]:
    """The container kwargs of one SAM Lambda container, moved onto the host network."""
    adjusted = dict(kwargs)
    ports = dict(adjusted.pop("ports", None) or {})
    binding = ports.pop(EMULATOR_PORT, None)
    if binding is None:
        raise HostNetworkError(
            f"SAM asked for no emulator port {EMULATOR_PORT}: not the SAM CLI {PINNED_SAM_CLI} "
            f"this wrapper knows (ports {sorted(ports)})"
        )
    if ports:
        raise HostNetworkError(
            f"extra container ports {sorted(ports)} (debug ports?) are not supported on the host network"
        )
    host_port = binding[1] if isinstance(binding, tuple | list) else binding
    entrypoint = list(adjusted.get("entrypoint") or [])
    if not entrypoint or not str(entrypoint[0]).endswith(EMULATOR):
        raise HostNetworkError(f"unexpected entrypoint {entrypoint!r}: expected SAM's {EMULATOR}")
    entrypoint += [
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{int(host_port)}",
        "--runtime-api-address",
        f"127.0.0.1:{api_port or free_loopback_port()}",
    ]
    adjusted["entrypoint"] = entrypoint
    adjusted["network_mode"] = "host"
    return adjusted


def is_lambda_container(kwargs: dict[str, Any]) -> bool:
    labels = kwargs.get("labels") or {}
    return isinstance(labels, dict) and labels.get(LAMBDA_LABEL[0]) == LAMBDA_LABEL[1]


def install() -> None:
    """Wrap docker-py's ContainerCollection.create and APIClient.build (in this process only)."""
    import docker.api.build
    import docker.models.containers

    create = docker.models.containers.ContainerCollection.create
    build = docker.api.build.BuildApiMixin.build

    def create_on_host_network(self: Any, image: str, command: Any = None, **kwargs: Any) -> Any:
        if is_lambda_container(kwargs):
            kwargs = host_network_kwargs(kwargs)
        return create(self, image, command, **kwargs)

    def build_on_host_network(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["network_mode"] = "host"
        return build(self, *args, **kwargs)

    docker.models.containers.ContainerCollection.create = create_on_host_network
    docker.api.build.BuildApiMixin.build = build_on_host_network


def check_version() -> None:
    from samcli import __version__

    if __version__ != PINNED_SAM_CLI:
        raise SystemExit(
            f"error: {__file__} was written against SAM CLI {PINNED_SAM_CLI}, found {__version__}; "
            f"install the pinned one with `make sam-cli`"
        )


def main() -> None:
    check_version()
    install()
    from samcli.cli.main import cli
    from samcli.lib.utils import version_checker

    version_checker._inform_newer_version = lambda *_args, **_kwargs: None  # pinned: no look-up on PyPI

    sys.argv[0] = "sam"
    cli()


if __name__ == "__main__":
    main()
