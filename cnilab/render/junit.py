"""JUnit XML for CI dashboards: one test case per step and one per packet proof."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def junit_xml(steps: list[dict[str, Any]]) -> bytes:
    """The run-all summary (as printed by --json) as a JUnit testsuite."""
    suite = ET.Element("testsuite", name="cnilab run-all")
    cases = failures = 0
    for s in steps:
        case = ET.SubElement(suite, "testcase", classname="cnilab.lab.steps",
                             name=f"step {s['step']}: {s['title']}")
        cases += 1
        if "error" in s:
            ET.SubElement(case, "failure", message=s["error"])
            failures += 1
        for p in s["proofs"]:
            proof = ET.SubElement(suite, "testcase", classname=f"cnilab.step{s['step']}.proofs",
                                  name=p["claim"])
            cases += 1
            if not p["ok"]:
                ET.SubElement(proof, "failure", message=p["seen"])
                failures += 1
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    return (ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n").encode()
