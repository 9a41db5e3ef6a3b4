"""What the runtime is asked to attach, checked before anything is made: the pod's MAC and
address against the network's ranges, and the sandbox (it must be a network namespace).

The plugins check the same things, but only after the runtime has made its node and the pod's
namespace: a typo would then cost a rollback, or (a file that is no namespace) a half-made pod.
"""

from __future__ import annotations

import errno
import fcntl
import os
from ipaddress import IPv4Address, ip_address

from cnilab.cni.bridge import unicast_mac
from cnilab.cni.chain import NetworkList
from cnilab.cni.ipam_store import Range
from cnilab.cni.spec import CniError
from cnilab.errors import ConfigError

NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file (Linux 4.11): which kind it is
CLONE_NEWNET = 0x40000000


def check_mac(mac: str | None) -> None:
    """A unicast MAC like 02:42:0a:f4:01:05, as the bridge plugins demand."""
    if mac is not None and not unicast_mac(mac):
        raise ConfigError.of("cni_bad_mac", mac=mac)


def check_ip(net: NetworkList, ip: str | None) -> None:
    """An IPv4 address the network's IPAM can give: inside a range, not its gateway."""
    if ip is None:
        return
    try:
        addr = ip_address(ip.split("/")[0])
    except ValueError:
        raise ConfigError.of("cni_bad_ip", ip=ip) from None
    if not isinstance(addr, IPv4Address):
        raise ConfigError.of("cni_bad_ip", ip=ip)
    ranges = _ranges(net)
    if not ranges:
        return  # an IPAM we do not know (dhcp, static): its plugin decides
    for r in ranges:
        if addr == r.gateway:
            raise ConfigError.of("cni_ip_gateway", ip=ip, network=net.name)
        if addr in r:
            return
    raise ConfigError.of("cni_ip_outside", ip=ip, network=net.name,
                         ranges=", ".join(f"{r.start}-{r.end}" for r in ranges))


def _ranges(net: NetworkList) -> list[Range]:
    """The host-local style ranges of the network's first plugin, if it has such an IPAM."""
    from cnilab.cni.ipam import parse_ipam

    if not net.plugins:
        return []
    conf = net.plugin_config(0)
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or ipam.get("type") not in ("host-local", "cnilab-ipam"):
        return []
    try:
        cfg = parse_ipam(conf)
    except CniError:
        return []  # the plugin will say what is wrong with its own config
    return [r for rs in cfg.range_sets for r in rs]


def check_free(path: str, attached: dict[str, list[str]]) -> None:
    """`path` is no namespace of an attached pod (`attached`: pod -> the "dev:inode" marks of
    its sandbox): a second ADD there would fail, and its rollback DEL would take the first
    pod's interface with it."""
    from cnilab.cni.attach import AttachNetwork

    mark = AttachNetwork.identify(path)
    for pod, marks in attached.items():
        if mark and mark in marks:
            raise ConfigError.of("cni_sandbox_taken", path=path, pod=pod)


def check_netns(path: str) -> None:
    """`path` opens, and is a network namespace (not a file, nor another kind of namespace)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise ConfigError.of("cni_no_sandbox", path=path, reason=e.strerror) from None
    kind: int | None
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as e:
        if e.errno not in (errno.ENOTTY, errno.EINVAL):
            raise ConfigError.of("cni_no_sandbox", path=path, reason=e.strerror) from None
        # Not a namespace, or a kernel before 4.11: then any file on nsfs will do.
        on_nsfs = os.fstat(fd).st_dev == os.stat("/proc/self/ns/net").st_dev
        kind = CLONE_NEWNET if on_nsfs and e.errno == errno.ENOTTY and _old_kernel() else None
    finally:
        os.close(fd)
    if kind != CLONE_NEWNET:
        raise ConfigError.of("cni_not_netns", path=path)


def _old_kernel() -> bool:
    """Whether the kernel predates NS_GET_NSTYPE (4.11): it answers ENOTTY on a namespace."""
    try:
        fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
