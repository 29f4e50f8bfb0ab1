"""The domain XML the VM component makes libvirt define, rendered without a libvirt daemon, and
checked against libvirt's own schema.

pulumi-libvirt builds a domain from its arguments, then applies the stack's XSLT with the
external `xsltproc` and sends the result to libvirt. `provider_xml` starts from the XML the
provider really generated for a TCG VM of this stack (captured from its debug log,
tests/unit/data/capture_qemu_memory.py) and sets what comes from the Domain's arguments (type,
name, memory, vCPUs, CPU mode): the KVM branch, which no machine here can deploy, gets the XML
the provider would generate for it. `transform` applies the XSLT as the provider does, and
`schema_problems` runs `virt-xml-validate` (libvirt-clients, with xmllint from libxml2-utils).
"""

from __future__ import annotations

import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "unit" / "data" / "resources"
# pulumi-libvirt's generated XML and what it sent after the XSLT, for stack h-memory with
# twinlab:tcgCacheMiB=64 (ports 18381/12382).
CAPTURED_PROVIDER_XML = DATA / "vm-tcg64.provider.xml"
CAPTURED_SENT_XML = DATA / "vm-tcg64.transformed.xml"


def provider_xml(domain_args: Mapping[str, Any], captured: Path = CAPTURED_PROVIDER_XML) -> str:
    """The XML pulumi-libvirt generates for a Domain with these arguments (as the Pulumi mocks
    record them): the captured XML with the argument-driven fields set as the provider sets
    them (resourceLibvirtDomainCreate: type, name, memory in MiB, vcpu, cpu mode)."""
    root = ET.fromstring(captured.read_text())
    root.set("type", str(domain_args["type"]))
    _element(root, "name").text = str(domain_args["name"])
    # The provider's integers (the mocks hand numbers back as floats).
    _element(root, "memory").text = str(int(float(domain_args["memory"])))
    _element(root, "vcpu").text = str(int(float(domain_args["vcpu"])))
    cpu = _element(root, "cpu")
    cpu.attrib.clear()
    mode = (domain_args.get("cpu") or {}).get("mode")
    if mode:
        cpu.set("mode", str(mode))
    return ET.tostring(root, encoding="unicode")


def _element(root: ET.Element, tag: str) -> ET.Element:
    found = root.find(tag)
    if found is None:
        raise AssertionError(f"the captured provider XML has no <{tag}>")
    return found


def transform(xml: str, xslt: str) -> str:
    """Apply the stack's XSLT with xsltproc, as pulumi-libvirt does before it defines."""
    with tempfile.TemporaryDirectory() as work:
        sheet, document = Path(work) / "sheet.xsl", Path(work) / "domain.xml"
        sheet.write_text(xslt)
        document.write_text(xml)
        done = subprocess.run(
            ["xsltproc", str(sheet), str(document)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    if done.returncode != 0:
        raise AssertionError(f"xsltproc failed: {done.stderr.strip()}")
    return done.stdout


def schema_problems(xml: str) -> str | None:
    """None when libvirt's domain schema accepts `xml`, else what virt-xml-validate said."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as document:
        document.write(xml)
        document.flush()
        done = subprocess.run(
            ["virt-xml-validate", document.name, "domain"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if done.returncode == 0:
        return None
    return (done.stdout + done.stderr).strip() or f"virt-xml-validate exited {done.returncode}"


def canonical(xml: str) -> str:
    """The XML without formatting whitespace, for comparing two renderings."""
    root = ET.fromstring(xml)
    for element in root.iter():
        element.text = (element.text or "").strip() or None
        element.tail = None
    return ET.tostring(root, encoding="unicode")
