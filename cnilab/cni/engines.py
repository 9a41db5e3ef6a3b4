"""What `cni attach` gives the network to: a process's, a path's or a running container's
namespace; a container of Docker's or Podman's found by name (what `docker inspect` tells a
runtime: its PID).

Each engine is asked in turn with its own client, as a student would type it; the first that
knows the container answers. DOCKER_HOST and CONTAINER_HOST are the clients' own business.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from cnilab.errors import ConfigError, MissingTool

ENGINES = ("docker", "podman")
PID_FORMAT = "{{.State.Pid}}"
TIMEOUT = 30.0  # seconds: a client whose daemon hangs must not hang the lesson


def inspect_pid(engine: str, name: str) -> tuple[int | None, str]:
    """`ENGINE inspect -f {{.State.Pid}} NAME`: (the PID, "") or (None, why not)."""
    exe = shutil.which(engine)
    if exe is None:
        return None, f"{engine} is not installed"
    try:
        done = subprocess.run([exe, "inspect", "--type", "container", "-f", PID_FORMAT, "--",
                               name], capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{engine}: {e}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return None, f"{engine}: {lines[-1] if lines else f'exit {done.returncode}'}"
    text = done.stdout.strip()
    if not text.isdigit():
        return None, f"{engine}: {text!r} is not a PID"
    return int(text), ""


def container_pid(name: str, engines: tuple[str, ...] = ENGINES) -> int:
    """The PID of the running container `name`, from the first engine that knows it."""
    if not any(shutil.which(e) for e in engines):
        raise MissingTool.of("cni_no_engine", engines=" / ".join(engines))
    reasons = []
    for engine in engines:
        pid, why = inspect_pid(engine, name)
        if pid == 0:  # known, but stopped: no process, so no namespace to attach
            raise ConfigError.of("cni_container_stopped", name=name, engine=engine)
        if pid is not None:
            return pid
        reasons.append(why)
    raise ConfigError.of("cni_no_container", name=name, why="; ".join(reasons))


def attach_target(pod: str | None, pid: int | None, netns: str | None,
                  container: str | None) -> tuple[str, str]:
    """The namespace `cni attach` gives the network to, and the pod's name: exactly one of a
    process, a namespace path or a running Docker/Podman container names it."""
    if sum(x is not None for x in (pid, netns, container)) != 1:
        raise ConfigError.of("cni_pid_or_netns")
    if container is not None:
        pid = container_pid(container)
    path = f"/proc/{pid}/ns/net" if pid is not None else str(netns)
    return path, pod or container or (f"pid{pid}" if pid is not None else os.path.basename(path))
