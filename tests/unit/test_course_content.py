"""What the lessons teach, checked against the course notes and against each other."""

from __future__ import annotations

import re

import pytest

from cnilab.lessons import load

LANGS = ["en", "ko"]


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.;])\s+", text) if s]


@pytest.mark.parametrize("lang", LANGS)
def test_is_gateway_does_not_add_the_default_route_is_default_gateway_does(lang: str) -> None:
    # The bridge plugin: isGateway puts the gateway address on the bridge (and turns forwarding
    # on); isDefaultGateway (or an IPAM routes entry) adds the pod's default route.
    for step in load("eight-steps", lang).steps:
        for text in (step.what, step.why, step.course_note or ""):
            for sentence in sentences(text):
                if "isGateway" in sentence and "isDefaultGateway" not in sentence:
                    assert not re.search(r"default route|기본 라우트", sentence), sentence
    assert "isDefaultGateway=true" in load("eight-steps", lang).step(8).why


DUTIES = {  # the course's list of a CNI plugin's duties -> the cni lesson's step that shows it
    1: ["ADD", "CNI_CONTAINERID", "CNI_NETNS"], 2: ["IPAM"], 4: ["result"], 5: ["CHECK"],
    7: ["DEL"]}


@pytest.mark.parametrize("lang", LANGS)
def test_the_framing_names_rkt_mesos_docker_and_ties_each_cni_duty_to_its_step(lang: str) -> None:
    beyond = load("eight-steps", lang).beyond or ""
    for word in ("Docker", "rkt", "Mesos", "CNI", "ADD", "DEL", "CHECK", "CNI_CONTAINERID",
                 "CNI_NETNS", "IPAM"):
        assert word in beyond, word
    cni = load("cni", "en")
    for number, words in DUTIES.items():
        assert f"`cnilab explain cni {number}`" in beyond
        section = cni.step(number)
        for word in words:  # the section it points to is about that duty
            assert word.lower() in (section.title + section.what).lower(), (number, word)


PORTS = {"6443": "kube-apiserver", "2379": "etcd", "2380": "etcd", "10250": "kubelet",
         "10259": "kube-scheduler", "10257": "kube-controller-manager",
         "30000-32767": "NodePort"}


@pytest.mark.parametrize("lang", LANGS)
def test_the_cluster_lesson_has_the_component_port_table_and_the_old_ports_explained(
        lang: str) -> None:
    section = load("cluster", lang).step(5)
    rows = {line.split()[0]: line for line in section.what.splitlines()
            if line.startswith("  ") and line.split()}
    for port, component in PORTS.items():
        assert component in rows[port], port
    note = section.course_note or ""
    assert all(p in note for p in ("10251", "10252", "10259", "10257"))


@pytest.mark.parametrize("lang", LANGS)
def test_the_cluster_lesson_states_the_unique_hostname_and_mac_rule(lang: str) -> None:
    why = load("cluster", lang).step(1).why
    assert all(w in why for w in ("MAC", "product_uuid"))
    assert ("unique hostname" in why) if lang == "en" else ("호스트 이름" in why)


def test_every_nodes_hostname_and_mac_differ_as_the_course_requires() -> None:
    from cnilab.cluster.plan import build_plan

    plan = build_plan(nodes=50)
    assert len({n.name for n in plan.nodes}) == len({n.mac for n in plan.nodes}) == 50


@pytest.mark.parametrize("lang", LANGS)
def test_step_4_and_the_cni_lesson_tell_one_story_of_where_the_pair_is_made(lang: str) -> None:
    # The reference bridge plugin makes the pair inside CNI_NETNS and moves the node's end out;
    # step 4 (as Docker) moves the container's end in. Neither may say the plugin does step 4.
    why = load("eight-steps", lang).step(4).why
    plugin = load("cni", lang).step(3).what
    moved_out = {"en": "moves the node end out", "ko": "노드 쪽 끝을 노드로 내보냅니다"}[lang]
    assert moved_out in why and "CNI_NETNS" in why
    assert not re.search(r"does the same|같은 일을", why)
    assert {"en": "moves that end out", "ko": "이 끝을 내보냅니다"}[lang] in plugin


@pytest.mark.parametrize("lang", LANGS)
def test_del_removes_the_namespace_only_when_the_pod_goes_not_on_detach(lang: str) -> None:
    # `cni detach` shows this section while the container keeps running: it must not claim
    # the namespace is removed after every DEL.
    what = load("cni", lang).step(7).what
    assert not re.search(r"DEL \(with prevResult when it has one\), then removes the namespace|"
                         r"DEL을 호출한 뒤 네임스페이스를 지웁니다", what)
    assert "cni detach" in what and {"en": "keeps running", "ko": "계속 실행"}[lang] in what
