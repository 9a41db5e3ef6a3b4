"""Podman with its CNI backend, set up to use cnilab for its networks, inside a node namespace
(with an outside world) under a prefix of the caller's; storage, config and CNI folders of its
own; containers from a local root filesystem (no image registry). For tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import reference_skip, unmount_under

from cnilab.cni.exec import config_version, find_reference, invoke
from cnilab.cni.install import install
from cnilab.kernel import Kernel

PODMAN, RUNC = shutil.which("podman"), shutil.which("runc")

NET1, NET2 = "cnilabnet", "cnilabnet2"
SUBNET1, GATEWAY1 = "10.88.7.0/24", "10.88.7.1"
SUBNET2, GATEWAY2 = "10.88.9.0/24", "10.88.9.1"
WORLD_IP, NODE_IP = "203.0.113.1", "203.0.113.2"
# sleep as PID 1 ignores SIGTERM: stop at once. Limits the sandbox's own hard limits allow.
RUN = ["run", "-d", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@dataclass
class Podman:
    """`podman` with the test's storage, config and CNI folders, inside the test's node."""

    dir: Path
    node: str
    world: str
    portmap: bool = False  # NET1 chains portmap (reference plugins 1.0 or newer)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run podman in the node namespace; fail the test (with its stderr) unless it worked."""
        env = {**os.environ, "CONTAINERS_CONF": str(self.dir / "containers.conf"),
               "TMPDIR": str(self.dir / "tmp")}
        argv = ["nsenter", f"--net=/run/netns/{self.node}", str(PODMAN),
                "--root", str(self.dir / "storage"), "--runroot", str(self.dir / "run"),
                "--storage-driver", "vfs", *args]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {done.stderr}")
        return done

    def start(self, name: str, *options: str) -> str:
        """Start a container (sleep, from the local rootfs); its network namespace's path."""
        self.run(*RUN, "--name", name, *options, "--rootfs", str(self.dir / "rootfs"),
                 "/bin/sleep", "100000")
        return f"/proc/{self.inspect(name)['State']['Pid']}/ns/net"

    def inspect(self, name: str) -> Any:
        """`podman inspect` of one container."""
        return json.loads(self.run("inspect", name).stdout)[0]

    def drivers(self) -> dict[str, str]:
        """Each network's main plugin, as `podman network ls` shows it: {{.Driver}} from
        podman 4 on, the first of {{.Plugins}} before (podman 3.0 has no Driver)."""
        done = self.run("network", "ls", "--format", "{{.Name}} {{.Driver}}", check=False)
        if done.returncode != 0:
            done = self.run("network", "ls", "--format", "{{.Name}} {{.Plugins}}")
        rows = (line.split(maxsplit=1) for line in done.stdout.splitlines())
        return {row[0]: row[1].split(",")[0] for row in rows if len(row) == 2}

    def ip(self, name: str, network: str = NET1) -> str:
        """The container's address on a network, as podman got it from the plugin's result."""
        return str(self.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"])


def conflist(name: str, bridge: str, subnet: str, data: Path, chain: bool,
             reference: bool = False, version: str = "1.0.0") -> dict[str, Any]:
    """A cnilab network (or the reference bridge + host-local), chaining portmap if asked."""
    plugins: list[dict[str, Any]] = [
        {"type": "bridge" if reference else "cnilab", "bridge": bridge, "isGateway": True,
         "ipMasq": True, "capabilities": {"mac": True, "ips": True},
         "ipam": {"type": "host-local" if reference else "cnilab-ipam", "subnet": subnet,
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(data)}}]
    if chain:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True},
                        "snat": True})
    return {"cniVersion": version, "name": name, "plugins": plugins}


def rootfs(folder: Path) -> None:
    """A root filesystem with /bin/sleep and the libraries it needs (no registry here)."""
    for binary in ("/bin/sleep",):
        libs = subprocess.run(["ldd", binary], capture_output=True, text=True,
                              check=True).stdout
        for path in [binary, *(w for w in libs.split() if w.startswith("/"))]:
            target = folder / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


class CannotRun(Exception):
    """Podman is installed but cannot run a container on this machine (the reason inside)."""


def podman_version() -> tuple[int, ...]:
    """Podman's version, e.g. (3, 0, 1) from `podman version 3.0.1`."""
    text = subprocess.run([str(PODMAN), "--version"], capture_output=True, text=True,
                          check=False).stdout.split()[-1:] or ["0"]
    return tuple(int(x) for x in text[0].split("-")[0].split(".") if x.isdigit())


def portmap_skip() -> str | None:
    """Why NET1 chains no portmap: the reference plugins are missing or older than 1.0 (0.9, as
    in Debian 11, refuses a 1.0.0 conflist: podman then drops the whole network)."""
    return reference_skip("portmap")


def cni_skip(reference: bool) -> str | None:
    """Why podman cannot run this network's plugins here, whatever cnilab does: podman before 4
    reads CNI results up to 0.4.0 only (it vendors libcni 0.8), and cnilab's plugin speaks
    1.0.0 and 1.1.0 (Debian 11 has podman 3.0.1)."""
    version = podman_version()
    if not reference and version < (4,):
        return (f"podman {'.'.join(map(str, version))} reads CNI results up to 0.4.0 only "
                "(libcni 0.8); cnilab's plugin answers in CNI 1.0.0 (podman 4 or newer)")
    return None


@contextlib.contextmanager
def podman_box(prefix: str, reference: bool = False) -> Iterator[Podman]:
    """Podman whose networks NET1 (with portmap) and NET2 are cnilab's (or, with `reference`,
    the reference bridge + host-local): everything removed at the end."""
    node, world = prefix + "node", prefix + "world"
    # Podman refuses a runroot longer than 50 characters: pytest's tmp_path is too long.
    tmp_path = Path(tempfile.mkdtemp(prefix="cnilab-pm-", dir="/tmp"))
    box = Podman(tmp_path, node, world)
    made: list[str] = []
    try:
        with Kernel() as k:
            for ns in (node, world):
                k.add_netns(ns)
                made.append(ns)
                k.set_up(ns, "lo")
            k.add_link(world, "eth0", "veth", peer="uplink0", peer_netns=node)
            k.add_address(world, "eth0", f"{WORLD_IP}/24")
            k.add_address(node, "uplink0", f"{NODE_IP}/24")
            k.set_up(world, "eth0")
            k.set_up(node, "uplink0")
        for sub in ("storage", "run", "tmp", "net.d", "bin", "ipam", "rootfs"):
            (tmp_path / sub).mkdir()
        rootfs(tmp_path / "rootfs")
        install(tmp_path / "bin")
        chain = portmap_skip() is None
        # The reference plugins 0.9 speak up to 0.4.0: their network is written at their newest.
        bridge_exe = find_reference("bridge") if reference else None
        version = (config_version(invoke(bridge_exe, "VERSION", {"cniVersion": "1.0.0"}))
                   if bridge_exe else "1.0.0")
        for i, (name, bridge, subnet) in enumerate(((NET1, "cni0", SUBNET1),
                                                    (NET2, "cni1", SUBNET2))):
            (tmp_path / "net.d" / f"{i + 10}-{name}.conflist").write_text(json.dumps(
                conflist(name, bridge, subnet, tmp_path / "ipam", chain and i == 0, reference,
                         version)))
        (tmp_path / "containers.conf").write_text(f"""
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{tmp_path}/events.log"
runtime = "runc"
tmp_dir = "{tmp_path}/libpod"
[network]
network_backend = "cni"
cni_plugin_dirs = ["{tmp_path}/bin", "/usr/lib/cni", "/opt/cni/bin"]
network_config_dir = "{tmp_path}/net.d"
""")
        probe = box.run(*RUN, "--rm", "--network", "none", "--rootfs", str(tmp_path / "rootfs"),
                        "/bin/sleep", "0", check=False)
        if probe.returncode != 0:  # e.g. podman 5 (Debian 13): "cni support is not enabled"
            errors = [ln for ln in probe.stderr.splitlines() if ln.startswith("Error")]
            raise CannotRun(" ".join(errors) or probe.stderr.strip()[-200:])
        why = cni_skip(reference)
        if why is not None:
            raise CannotRun(why)
        box.portmap = chain
        yield box
    finally:
        if box.run("rm", "--force", "--all", "--time", "0", check=False).returncode != 0:
            box.run("rm", "--force", "--all", check=False)  # podman 3 has no --time
        unmount_under(tmp_path)  # a container podman could not remove keeps its shm mounted
        with Kernel() as k:
            for ns in made:
                k.remove_netns(ns)
        shutil.rmtree(tmp_path, ignore_errors=True)
