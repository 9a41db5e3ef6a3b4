"""A real dockerd of the test's own: it and its containerd run inside a network namespace the
test made, each with its own data root, state, pid file and unix socket in a temp folder, with
`--bridge=none --iptables=false --ip6tables=false` (Docker touches no network of anyone's) and
an image imported from a local busybox (no registry). Everything is stopped by its PID and
removed at the end, even when the test fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import unmount_under

DOCKERD, CONTAINERD = shutil.which("dockerd"), shutil.which("containerd")
DOCKER, BUSYBOX = shutil.which("docker"), shutil.which("busybox")
IMAGE = "cnilab-busybox:test"
WAIT = 60.0  # seconds: a bound for a busy shared machine, not a speed claim


class CannotRun(Exception):
    """Docker is installed but cannot run a container on this machine (the reason inside)."""


@dataclass
class Docker:
    """The `docker` client, talking to the test's own daemon only."""

    dir: Path

    @property
    def host(self) -> str:
        """DOCKER_HOST of the test's daemon."""
        return f"unix://{self.dir}/docker.sock"

    def run(self, *args: str, check: bool = True, data: bytes | None = None
            ) -> subprocess.CompletedProcess[bytes]:
        """Run docker against the test's daemon; fail the test (with stderr) unless it worked."""
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.dir / "cli")}
        done = subprocess.run([str(DOCKER), *args], input=data, capture_output=True, env=env,
                              timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {done.stderr.decode()}")
        return done

    def start(self, name: str) -> int:
        """A container with no network (`--network none`) that sleeps; its PID."""
        self.run("run", "-d", "--network", "none", "--name", name, IMAGE, "sleep", "100000")
        return int(self.run("inspect", "-f", "{{.State.Pid}}", name).stdout)


def dockerd_major() -> int:
    """dockerd's major version: 20 from `Docker version 20.10.24+dfsg1, build ...`."""
    words = subprocess.run([str(DOCKERD), "--version"], capture_output=True, text=True,
                           check=False).stdout.split()
    number = words[2].split(".")[0] if len(words) > 2 else ""
    return int(number) if number.isdigit() else 0


def busybox_tar() -> bytes:
    """A root filesystem with busybox as /bin/sh and /bin/sleep (and the libraries a busybox
    that is not busybox-static's needs), as a tar for `docker import`."""
    libs = subprocess.run(["ldd", str(BUSYBOX)], capture_output=True, text=True,
                          check=False).stdout
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        tar.add(str(BUSYBOX), "bin/busybox")
        for lib in (w for w in libs.split() if w.startswith("/")):
            tar.add(os.path.realpath(lib), lib.lstrip("/"))
        for applet in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return data.getvalue()


def containerd_config(tmp: Path) -> str:
    """containerd's config: its root, state, opt folder and sockets under `tmp`, no CRI."""
    return f"""version = 2
root = "{tmp}/containerd/root"
state = "{tmp}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{tmp}/containerd.sock"
[ttrpc]
  address = "{tmp}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{tmp}/containerd/opt"
"""


def wait_for(path: Path, proc: subprocess.Popen[bytes], what: str) -> None:
    """Until `path` exists (the daemon's socket); CannotRun if the daemon dies or takes WAIT."""
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise CannotRun(f"{what} did not start")
        time.sleep(0.1)


# containerd's shims keep their sockets under SHIM_DIR/s, wherever its state is.
SHIM_DIR = "/run/containerd"


def remove_shim_dir() -> None:
    """Remove SHIM_DIR/s and SHIM_DIR when a box made them (only when empty: s may never come)."""
    for folder in (f"{SHIM_DIR}/s", SHIM_DIR):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the process we started (by its PID), then SIGKILL if it will not go."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def log_tail(path: Path) -> str:
    """The last lines of a daemon's log, for a failure's message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return ""


@contextlib.contextmanager
def docker_box(netns: str) -> Iterator[Docker]:
    """dockerd + containerd inside `netns` (made by the caller), with the busybox image."""
    # Unix socket paths are short (108 bytes): pytest's tmp_path is too long.
    tmp = Path(tempfile.mkdtemp(prefix="cnilab-dk-", dir="/tmp"))
    box = Docker(tmp)
    inside = ["nsenter", f"--net=/run/netns/{netns}"]
    cgroup = f"cnilab-test-{tmp.name}"
    shim_dir_was = os.path.exists(SHIM_DIR)
    containerd: subprocess.Popen[bytes] | None = None
    dockerd: subprocess.Popen[bytes] | None = None
    try:
        (tmp / "containerd.toml").write_text(containerd_config(tmp))
        # Docker before 23 keeps its ID key in /etc/docker unless its config says where (and
        # from 23 on refuses that key as unknown).
        config = {"deprecated-key-path": str(tmp / "key.json")} if dockerd_major() < 23 else {}
        (tmp / "daemon.json").write_text(json.dumps(config))
        with open(tmp / "containerd.log", "wb") as log:
            containerd = subprocess.Popen([*inside, str(CONTAINERD), "--config",
                                           str(tmp / "containerd.toml")],
                                          stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for(tmp / "containerd.sock", containerd, "containerd")
        with open(tmp / "dockerd.log", "wb") as log:
            dockerd = subprocess.Popen([
                *inside, str(DOCKERD), "--data-root", str(tmp / "data"),
                "--exec-root", str(tmp / "exec"), "--pidfile", str(tmp / "dockerd.pid"),
                "-H", box.host, "--containerd", str(tmp / "containerd.sock"),
                "--config-file", str(tmp / "daemon.json"), "--bridge=none",
                "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                "--ip-masq=false", "--storage-driver", "vfs", "--cgroup-parent", f"/{cgroup}",
                "--userland-proxy=false"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for(tmp / "docker.sock", dockerd, "dockerd")
        if box.run("version", check=False).returncode != 0:  # the socket exists before the API
            box.run("version")
        box.run("import", "-", IMAGE, data=busybox_tar())
        probe = box.run("run", "--rm", "--network", "none", IMAGE, "sleep", "0", check=False)
        if probe.returncode != 0:
            raise CannotRun(probe.stderr.decode(errors="replace").strip()[-300:])
        yield box
    except CannotRun as e:
        logs = [log_tail(tmp / f"{d}.log") for d in ("containerd", "dockerd")]
        raise CannotRun("\n".join([str(e), *logs])) from None
    finally:
        if dockerd is not None and dockerd.poll() is None:
            ids = box.run("ps", "-aq", check=False).stdout.decode().split()
            if ids:
                box.run("rm", "--force", *ids, check=False)
        stop(dockerd)  # by the PID we started it with (nsenter execs it: the same process)
        stop(containerd)
        for controller in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (controller / cgroup).rmdir()  # only when empty: runc removed its children
        unmount_under(tmp)  # Docker 20.10 binds its data root onto itself and leaves it
        if not shim_dir_was:
            remove_shim_dir()
        shutil.rmtree(tmp, ignore_errors=True)
