"""A private dockerd with no bridge networking, and the locally built python3.13 Lambda base image.

Nothing is pulled: the base image is Debian trixie (Python 3.13) from the Debian mirror apt already uses,
with awslambdaric in /var/runtime and a /var/runtime/bootstrap, imported with `docker import`. Its rootfs
tarball is cached outside the repo, and so is dockerd's data root (the imported image stays there).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PACKAGES = {"dockerd": "docker.io", "containerd": "containerd", "runc": "runc", "debootstrap": "debootstrap"}
# No bridge, no NAT, no forwarding: containers can only use the host network (loopback for us).
DOCKERD_NETWORK_FLAGS = [
    "--bridge=none",
    "--iptables=false",
    "--ip6tables=false",
    "--ip-forward=false",
    "--ip-masq=false",
]
SUITE = "trixie"  # Debian 13 ships Python 3.13, the functions' runtime
# Bump when the recipe below changes: the cached tarball and the image tag carry it.
IMAGE_RECIPE = "1"
IMAGE_TAG = f"messenger-sam-local/python:3.13-x86_64-r{IMAGE_RECIPE}"
BOOTSTRAP = """#!/bin/sh
# Started by the runtime interface emulator; like the Lambda python3.13 image's bootstrap.
export PYTHONPATH="/var/task:/opt/python/lib/python3.13/site-packages:/opt/python:/var/runtime"
exec /usr/bin/python3.13 -m awslambdaric "$_HANDLER"
"""
IMAGE_CHANGES = [
    "ENV LAMBDA_TASK_ROOT=/var/task",
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
    "ENV LANG=C.UTF-8",
    "ENV TZ=:/etc/localtime",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "WORKDIR /var/task",
]
Log = Callable[[str], None]


class DockerHostError(RuntimeError):
    pass


def run(command: list[str], log: Log, what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with the tail of its output."""
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise DockerHostError(f"{what} failed (exit {result.returncode}): {' '.join(command[:4])} ...\n{tail}")
    return result


def ensure_packages(log: Log) -> None:
    missing = sorted({package for binary, package in PACKAGES.items() if shutil.which(binary) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise DockerHostError(f"missing packages {' '.join(missing)}: install them as root (apt-get install)")
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        run(["apt-get", "update"], log, "apt-get update", env=env)
        run(install, log, "apt-get install", env=env)


class Dockerd:
    """dockerd with its own data root, exec root and socket; stopped by its pid."""

    def __init__(self, data_root: Path, log: Log) -> None:
        self.data_root = data_root
        self.log = log
        # Short path: the socket path must stay under the 108-byte unix socket limit.
        self.exec_root = Path(
            tempfile.mkdtemp(prefix="msl-docker-", dir="/run" if os.access("/run", os.W_OK) else None)
        )
        self.socket = self.exec_root / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.exec_root / "dockerd.log"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    @property
    def record(self) -> Path:
        """Where the running dockerd's pid and exec root are noted (beside its data root)."""
        return self.data_root.parent / "dockerd.json"

    def stop_leftover(self) -> None:
        """A dockerd of an earlier run that was killed with SIGKILL still holds the data root: stop it."""
        try:
            noted = json.loads(self.record.read_text())
            pid, exec_root = int(noted["pid"]), Path(noted["exec_root"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        cmdline: list[bytes] = []
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if f"--data-root={self.data_root}".encode() in cmdline:  # still that dockerd, not a reused pid
            self.log(f"stopping the dockerd an interrupted run left behind (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        for mount in reversed(mounts_under(exec_root)):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        if not mounts_under(exec_root):
            shutil.rmtree(exec_root, ignore_errors=True)
        self.record.unlink(missing_ok=True)

    def start(self, timeout: float = 60) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.stop_leftover()
        command = [
            "dockerd",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--host={self.host}",
            f"--pidfile={self.exec_root / 'dockerd.pid'}",
            *DOCKERD_NETWORK_FLAGS,
        ]
        self.log(f"starting dockerd (no bridge; socket {self.socket}, data {self.data_root})")
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.record.write_text(json.dumps({"pid": self.process.pid, "exec_root": str(self.exec_root)}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DockerHostError(f"dockerd exited with {self.process.returncode}:\n{self.log_tail()}")
            probe = subprocess.run(
                ["docker", "-H", self.host, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode == 0:
                self.log(f"dockerd {probe.stdout.strip()} ready (pid {self.process.pid})")
                return
            time.sleep(0.3)
        raise DockerHostError(f"dockerd did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def docker(self, *args: str, what: str = "docker") -> subprocess.CompletedProcess[str]:
        return run(["docker", "-H", self.host, *args], self.log, what)

    def stop(self) -> None:
        """SIGTERM (dockerd stops its containers and its containerd), SIGKILL if need be, then unmount."""
        process = self.process
        if process is not None and process.poll() is None:
            self.log(f"stopping dockerd (pid {process.pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for mount in reversed(mounts_under(self.exec_root)):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        if not mounts_under(self.exec_root):
            shutil.rmtree(self.exec_root, ignore_errors=True)
        if process is not None and process.poll() is not None:
            self.record.unlink(missing_ok=True)


def mounts_under(root: Path) -> list[str]:
    """Mount points under `root` (dockerd leaves <exec-root>/netns/default mounted)."""
    prefix = str(root).rstrip("/") + "/"
    with contextlib.suppress(OSError):
        lines = Path("/proc/self/mounts").read_text().splitlines()
        return [line.split()[1] for line in lines if len(line.split()) > 1 and line.split()[1].startswith(prefix)]
    return []


def debian_mirror() -> str:
    """The Debian mirror apt already uses (deb822 or one-line sources)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for path in candidates:
        with contextlib.suppress(OSError):
            for url in re.findall(r"(?:URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(https?://\S+)", path.read_text(), re.M):
                if "security" not in url:
                    return url.rstrip("/")
    return "http://deb.debian.org/debian"


def ensure_base_image(daemon: Dockerd, cache: Path, log: Log) -> str:
    """The python3.13 Lambda base image in `daemon`: already there, imported from the cached tarball, or built."""
    if daemon.docker("images", "-q", IMAGE_TAG, what="docker images").stdout.strip():
        log(f"base image {IMAGE_TAG} is in dockerd's data root")
        return IMAGE_TAG
    tarball = cache / f"lambda-python3.13-{SUITE}-r{IMAGE_RECIPE}.tar"
    if not tarball.exists():
        build_rootfs_tarball(tarball, log)
    log(f"importing {tarball.name} as {IMAGE_TAG}")
    changes = [arg for change in IMAGE_CHANGES for arg in ("--change", change)]
    daemon.docker("import", *changes, str(tarball), IMAGE_TAG, what="docker import")
    return IMAGE_TAG


def build_rootfs_tarball(tarball: Path, log: Log) -> None:
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    rootfs = work / "rootfs"
    try:
        mirror = debian_mirror()
        started = time.monotonic()
        log(f"building the base image: debootstrap --variant=minbase {SUITE} from {mirror} (about a minute)")
        run(
            ["debootstrap", "--variant=minbase", "--include=python3,ca-certificates", SUITE, str(rootfs), mirror],
            log,
            "debootstrap",
        )
        runtime = rootfs / "var" / "runtime"
        log("installing awslambdaric into /var/runtime")
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(runtime),
                "awslambdaric",
            ],
            log,
            "pip install awslambdaric",
        )
        (runtime / "bootstrap").write_text(BOOTSTRAP)
        (runtime / "bootstrap").chmod(0o755)
        for directory in ("var/task", "opt"):
            (rootfs / directory).mkdir(parents=True, exist_ok=True)
        for cache_dir in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache_dir).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], log, "tar rootfs")
        partial.rename(tarball)
        log(
            f"base image rootfs cached at {tarball} ({tarball.stat().st_size // 2**20} MiB, "
            f"{time.monotonic() - started:.0f}s)"
        )
    finally:
        for mount in reversed(mounts_under(work)):  # debootstrap's /proc and /sys, if it stopped half-way
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        if not mounts_under(work):
            shutil.rmtree(work, ignore_errors=True)
