"""A real containerd of the caller's own, and `ctr run --cni` (containerd's go-cni path) over
cnilab's plugin or the reference bridge + host-local. For benchmarks.

containerd runs inside a node namespace this box makes (with its own root, state, opt folder
and unix sockets in a temp folder, its CRI plugin off); the busybox image is imported from a
local busybox (`ctr images import` of an archive built here, no registry). `ctr run --cni`
reads its network from /etc/cni/net.d and its plugins from /opt/cni/bin, which it cannot be told
otherwise: each `ctr` runs in a mount namespace of its own (`unshare --mount`, private) where
the box's folders are bound over those two, so the machine's own stay untouched. Containers run
under a ctr namespace (and cgroup) named for the box. Everything is stopped by its PID and
removed at the end, even on failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker_box import (
    CONTAINERD,
    SHIM_DIR,
    CannotRun,
    busybox_tar,
    containerd_config,
    log_tail,
    remove_shim_dir,
    stop,
    wait_for,
)
from helpers import unmount_under

from cnilab.cni.exec import find_reference
from cnilab.cni.install import install
from cnilab.kernel import Kernel

CTR, UNSHARE = shutil.which("ctr"), shutil.which("unshare")
IMAGE = "docker.io/library/cnilab-busybox:bench"
SUBNET = "10.88.11.0/24"


@dataclass
class Containerd:
    """`ctr` against the box's containerd, inside the box's node, its CNI folders bound in."""

    dir: Path
    node: str
    space: str  # the ctr namespace, also the containers' cgroup parent

    def ctr(self, *args: str, check: bool = True, data: bytes | None = None
            ) -> subprocess.CompletedProcess[bytes]:
        """Run ctr in the node, in a private mount namespace where /etc/cni/net.d and /opt are
        the box's (so are the CNI plugins it runs); fail (with stderr) unless it worked."""
        ctr = [str(CTR), "--address", str(self.dir / "containerd.sock"), "--namespace",
               self.space, *args]
        binds = (f"mount --bind {self.dir}/net.d /etc/cni/net.d && "
                 f"mount --bind {self.dir}/opt /opt && exec \"$@\"")
        argv = ["nsenter", f"--net=/run/netns/{self.node}", str(UNSHARE), "--mount",
                "--propagation", "private", "sh", "-c", binds, "ctr", *ctr]
        done = subprocess.run(argv, input=data, capture_output=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {done.stderr.decode()}")
        return done

    def run(self, name: str, cni: bool) -> None:
        """`ctr run --rm` of a container that exits at once: with `cni`, go-cni's ADD after the
        task is made and DEL when it is removed; without, its own empty network namespace."""
        self.ctr(*self.run_args, *(["--cni"] if cni else []), IMAGE, name, "/bin/sleep", "0")

    @property
    def run_args(self) -> list[str]:
        """`ctr run` with its FIFOs and runc's state in the box's folder, not under /run."""
        return ["run", "--rm", "--snapshotter", "native", "--fifo-dir", f"{self.dir}/fifo",
                "--runc-root", f"{self.dir}/runc"]


def image_archive() -> bytes:
    """A Docker-format image archive (what `docker save` writes) of the busybox root
    filesystem, for `ctr images import`."""
    layer = busybox_tar()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [IMAGE],
                            "Layers": ["layer.tar"]}]).encode()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, body in (("layer.tar", layer), ("config.json", config),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return data.getvalue()


def network(reference: bool, data: Path) -> dict[str, Any]:
    """The one network go-cni loads: cnilab (or the reference bridge + host-local), the bench's
    config (bridge, isGateway, ipMasq, a /24, a default route)."""
    return {"cniVersion": "1.0.0", "name": "ctrnet", "plugins": [
        {"type": "bridge" if reference else "cnilab", "bridge": "cni0", "isGateway": True,
         "ipMasq": True,
         "ipam": {"type": "host-local" if reference else "cnilab-ipam", "subnet": SUBNET,
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(data)}}]}


def _plugins(folder: Path) -> None:
    """cnilab's executables, and the reference plugins linked beside them."""
    install(folder)
    bridge = find_reference("bridge")
    if bridge is None:
        raise CannotRun("reference CNI plugins not installed")
    for exe in Path(bridge).parent.iterdir():
        if not (folder / exe.name).exists():
            (folder / exe.name).symlink_to(exe)


@contextlib.contextmanager
def containerd_box(prefix: str, reference: bool = False) -> Iterator[Containerd]:
    """containerd in a node namespace `prefix`node, go-cni's network cnilab's (or, with
    `reference`, the reference plugins'); everything removed at the end."""
    if not (CONTAINERD and CTR and UNSHARE and shutil.which("runc")):
        raise CannotRun("containerd, ctr, unshare or runc not installed")
    node = prefix + "node"
    # Unix socket paths are short (108 bytes): a folder right under /tmp.
    tmp = Path(tempfile.mkdtemp(prefix="cnilab-ctr-", dir="/tmp"))
    # containerd's identifiers: letters and digits, single separators (mkdtemp's may hold "_").
    space = "cnilab-bench-" + "".join(c for c in tmp.name[len("cnilab-ctr-"):] if c.isalnum())
    box = Containerd(tmp, node, space)
    shim_dir_was = os.path.exists(SHIM_DIR)
    containerd: subprocess.Popen[bytes] | None = None
    made = False
    try:
        with Kernel() as k:
            k.add_netns(node)
            made = True
            k.set_up(node, "lo")
        for sub in ("net.d", "opt/cni/bin", "ipam"):
            (tmp / sub).mkdir(parents=True)
        _plugins(tmp / "opt" / "cni" / "bin")
        (tmp / "net.d" / "10-ctrnet.conflist").write_text(json.dumps(
            network(reference, tmp / "ipam")))
        (tmp / "containerd.toml").write_text(containerd_config(tmp))
        with open(tmp / "containerd.log", "wb") as log:
            containerd = subprocess.Popen(["nsenter", f"--net=/run/netns/{node}",
                                           str(CONTAINERD), "--config",
                                           str(tmp / "containerd.toml")],
                                          stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for(tmp / "containerd.sock", containerd, "containerd")
        box.ctr("images", "import", "--snapshotter", "native", "-", data=image_archive())
        probe = box.ctr(*box.run_args, IMAGE, "probe", "/bin/sleep", "0", check=False)
        if probe.returncode != 0:
            raise CannotRun(probe.stderr.decode(errors="replace").strip()[-300:])
        yield box
    except CannotRun as e:
        raise CannotRun("\n".join([str(e), log_tail(tmp / "containerd.log")])) from None
    finally:
        if containerd is not None and containerd.poll() is None:
            for name in box.ctr("containers", "ls", "-q", check=False).stdout.decode().split():
                box.ctr("tasks", "kill", "-s", "SIGKILL", name, check=False)
                box.ctr("tasks", "rm", "-f", name, check=False)
                box.ctr("containers", "rm", name, check=False)
        stop(containerd)  # by the PID we started it with (nsenter execs it: the same process)
        for controller in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (controller / box.space).rmdir()  # only when empty: runc removed its children
        unmount_under(tmp)
        if not shim_dir_was:
            remove_shim_dir()
        if made:
            with Kernel() as k:
                k.remove_netns(node)
        shutil.rmtree(tmp, ignore_errors=True)
