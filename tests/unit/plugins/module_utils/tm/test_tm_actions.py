"""Helpers of tm/actions.py that the drivers share."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm.actions import last_history

VM = ("<VM><ID>7</ID><HISTORY_RECORDS>"
      "<HISTORY><SEQ>0</SEQ><DS_ID>100</DS_ID><ACTION>0</ACTION><VM_MAD>kvm</VM_MAD></HISTORY>"
      "<HISTORY><SEQ>1</SEQ><DS_ID>\n  101 \n</DS_ID><ACTION/><VM_MAD> lxc</VM_MAD></HISTORY>"
      "</HISTORY_RECORDS><TEMPLATE><HISTORY><DS_ID>999</DS_ID></HISTORY></TEMPLATE></VM>")


@pytest.mark.parametrize("name, back, value", [
    ("DS_ID", 0, "101"),        # stripped
    ("VM_MAD", 0, "lxc"),
    ("ACTION", 0, ""),          # an empty element
    ("HOSTNAME", 0, ""),        # no such element
    ("DS_ID", 1, "100"),        # the record before the last
    ("ACTION", 1, "0"),
    ("DS_ID", 2, ""),           # no such record
])
def test_last_history_reads_the_last_record(name, back, value):
    assert last_history(ET.fromstring(VM), name, back) == value


@pytest.mark.parametrize("doc", [
    ET.Element("VM"),   # vm_document's answer for a VM it cannot read
    ET.fromstring("<VM><HISTORY_RECORDS/></VM>"),
    ET.fromstring("<VM><TEMPLATE><HISTORY_RECORDS><HISTORY><DS_ID>5</DS_ID></HISTORY></HISTORY_RECORDS></TEMPLATE></VM>"),
])
def test_last_history_without_records_is_empty(doc):
    assert last_history(doc, "DS_ID") == ""
    assert last_history(doc, "DS_ID", back=1) == ""


def test_last_history_of_a_single_record_has_no_previous():
    doc = ET.fromstring("<VM><HISTORY_RECORDS><HISTORY><DS_ID>0</DS_ID></HISTORY></HISTORY_RECORDS></VM>")
    assert last_history(doc, "DS_ID") == "0"
    assert last_history(doc, "DS_ID", back=1) == ""
