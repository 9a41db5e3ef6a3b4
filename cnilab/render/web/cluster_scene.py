"""The cluster as the page draws it: a column per node (its pods above it), the LAN gateway and the
outside world below, the nodes' checks; summarised when large.

A node with more than PODS_DRAWN pods (or a cluster of more than CLUSTER_DRAWN) shows its pods as
one small square each (green: eth0 up with an address) and its bridge's ports as a count: 10 nodes
of 100 pods stay one readable page of a few hundred kilobytes, not a thousand boxes and cables.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from cnilab.cluster.live import ClusterLive, NodeView
from cnilab.cluster.plan import lab_id
from cnilab.i18n import t
from cnilab.ops import Key
from cnilab.render.cluster import describe
from cnilab.render.web.scene import box, cables, changes, labels

PODS_DRAWN = 6  # pods a node draws as boxes; more, and they become squares
CLUSTER_DRAWN = 24  # pods the whole cluster draws as boxes
CHECKS = ("lan", "bridge", "forward", "default", "routes", "pods")


def brief(b: dict[str, Any], routes: bool = True) -> dict[str, Any]:
    """A box for the cluster's page: routes through a gateway only (the lesson's: the default,
    the other nodes' pod CIDRs; a pod's none), no ARP; the lab's page has the rest. What just
    changed stays."""
    b["routes"] = [r for r in b["routes"] if (routes and " via " in r["text"]) or r["lit"]]
    b["arp"] = [a for a in b["arp"] if a["lit"]]
    return b


def _pods_lit(node: NodeView, lit: Collection[Key]) -> set[str]:
    names = {p.netns for p in node.pods}
    return {k[1] for k in lit if len(k) >= 2 and k[1] in names}


def cluster_scene(live: ClusterLive, lang: str, lit: Collection[Key]) -> dict[str, Any]:
    """The cluster as the page draws it."""
    view, snap = live.view, live.current
    summarise = sum(len(n.pods) for n in view.nodes) > CLUSTER_DRAWN
    columns, shown = [], []
    for node in view.nodes:
        ns = snap.ns(node.netns)
        if ns is None:
            continue
        small = summarise or len(node.pods) > PODS_DRAWN
        ports = {ln.name for ln in ns.links if small and ln.master and ln.kind == "veth"}
        checks = node.checks(view.nodes)
        node_box = brief(box(ns, live.seen.get(node.netns), "node", node.name, lit, hide=ports))
        node_box["checks"] = [{"text": t(f"cluster_watch.col_{k}", lang), "ok": checks[k],
                               "lit": ("checks", node.netns, node.name) in lit} for k in CHECKS]
        column: dict[str, Any] = {"id": node.netns, "top": [], "middle": [node_box]}
        if small:
            lit_pods = _pods_lit(node, lit)
            column["pods"] = {
                "text": t("serve.pods_ready", lang, ready=node.pods_ready(), count=len(node.pods)),
                "pods": [{"name": p.name, "ip": p.ip, "ready": bool(p.up and p.ip),
                          "lit": p.netns in lit_pods} for p in node.pods]}
        else:
            for p in node.pods:
                pod = snap.ns(p.netns)
                if pod is not None:
                    column["top"].append(brief(box(pod, live.seen.get(p.netns), "pod", p.name,
                                                   lit), routes=False))
        columns.append(column)
        shown += [*column["top"], node_box]
    bottom = [brief(box(ns, live.seen.get(ns.name), role, ns.name or "", lit))
              for ns, role in ((view.lan, "lan"), (view.world, "outside")) if ns is not None]
    others = [box(ns, live.seen.get(n), "other", n, lit)
              for n in view.others if (ns := snap.ns(n)) is not None]
    shown += bottom + others
    return {
        "kind": "cluster", "lang": lang,
        "title": t("serve.title_cluster", lang, cluster=lab_id(live.prefix)),
        "columns": columns, "bottom": bottom, "others": others,
        "cables": cables(shown, snap.spaces), "steps": [],
        "changes": changes(live.log, lit, lang, describe),
        "empty": t("cluster_watch.waiting", lang) if not shown else "",
        "labels": labels(lang),
    }
