"""What a directory entry says, read without a server: addresses (mail, AD proxyAddresses),
the role from groups, whether the account is disabled, DNs compared as LDAP does, the
entry's id for life, AD's last writes of whether an account may sign in."""
import struct
import uuid

import pytest

from services.appliance.directory import (access_writes, addresses, disabled_reason, entry_id,
                                          normalized_dn, role_of)

AD_MAIL = ["mail", "proxyAddresses"]


def test_proxy_addresses_give_their_smtp_entries_primary_first():
    values = {"mail": ["Alice@Example.com"],
              "proxyaddresses": ["smtp:a.liddell@example.com", "X500:/o=Example/cn=alice",
                                 "SMTP:alice@example.com", "SIP:alice.voice@example.com",
                                 "sMtP:Alice.L@Example.ORG", "EUM:1234;phone-context=x",
                                 "x400:c=US;a= ;p=Example;o=Exchange;s=Liddell;"]}
    assert addresses(values, AD_MAIL) == ["alice@example.com", "a.liddell@example.com",
                                          "alice.l@example.org"]


@pytest.mark.parametrize("value", [
    "", " ", "alice", "@example.com", "alice@", "alice@localhost", "alice smith@example.com",
    "<alice@example.com>", "alice@example.com, bob@example.com", "smtp:", "SMTP: ",
    "sip:alice@example.com", "X500:alice@example.com", "smtp:not an address",
    "alice@example.com;bob@example.com", "a\x00@example.com", "mailto:alice@example.com"])
def test_values_that_are_not_one_mail_address_give_none(value):
    assert addresses({"mail": [value], "proxyaddresses": [value]}, AD_MAIL) == []


def test_each_address_once_whatever_its_case_and_attribute():
    values = {"mail": ["bob@example.com", "BOB@example.com"],
              "proxyaddresses": ["SMTP:Bob@Example.com", "smtp:bob@example.com"]}
    assert addresses(values, AD_MAIL) == ["bob@example.com"]


def test_attributes_not_configured_give_nothing():
    assert addresses({"mail": ["a@example.com"], "othermail": ["b@example.com"]},
                     ["mail"]) == ["a@example.com"]


GROUPS = ["CN=IT,CN=Users,DC=corp,DC=example", "CN=Archive Admins,CN=Users,DC=corp,DC=example"]
ADMINS_DN = "CN=Archive Admins,CN=Users,DC=corp,DC=example"
IT_DN = "CN=IT,CN=Users,DC=corp,DC=example"


@pytest.mark.parametrize("admins, auditors, role", [
    ([ADMINS_DN], [], "admin"),
    (["cn=archive admins, cn=users,dc=CORP,dc=example"], [], "admin"),
    ([], [IT_DN], "auditor"),
    ([ADMINS_DN], [IT_DN], "admin"),  # the higher of the two
    (["Archive Admins"], ["IT"], "user"),  # a group's name alone matches nothing
    (["cn=IT"], [], "user"),  # a DN of another place in the tree
    (["CN=Archive Admins,OU=Sales,DC=corp,DC=example"], [], "user"),  # same name, other OU
    (["CN=Archive Admins,CN=Users,DC=other"], [], "user"),
    ([], [], "user"),
])
def test_the_role_is_the_highest_a_group_gives(admins, auditors, role):
    assert role_of(GROUPS, admins, auditors) == role


@pytest.mark.parametrize("values, disabled", [
    ({"useraccountcontrol": ["512"]}, False),
    ({"useraccountcontrol": ["514"]}, True),
    ({"useraccountcontrol": ["66050"]}, True),  # 0x10202: disabled, password never expires
    ({"useraccountcontrol": ["66048"]}, False),
    ({"useraccountcontrol": ["garbage"]}, False),
    ({"pwdaccountlockedtime": ["000001010000Z"]}, True),
    ({"pwdaccountlockedtime": ["20240101000000Z"]}, True),
    ({}, False),
])
def test_disabled_accounts(values, disabled):
    assert (disabled_reason(values) is not None) is disabled


def test_dns_compare_without_case_or_spaces():
    assert normalized_dn("CN=Alice Liddell, OU=People,DC=Example") == \
        normalized_dn("cn=alice liddell,ou=people, dc=example")
    assert normalized_dn("cn=a\\,b,dc=x") != normalized_dn("cn=a,cn=b,dc=x")


def test_the_entry_id_is_ads_object_guid_in_its_mixed_endian_layout_or_the_entry_uuid():
    # [MS-DTYP] 2.3.4.2: a GUID's first three fields little-endian; Samba shows this one as
    # 3f2504e0-4f89-11d3-9a0c-0305e82c3301 (RFC 4122's own example UUID)
    guid = uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    assert entry_id({"objectGUID": [guid.bytes_le]}) == str(guid)
    assert entry_id({"entryUUID": [b"3F2504E0-4F89-11D3-9A0C-0305E82C3301"]}) == str(guid)
    assert entry_id({"objectGUID": [b"short"], "entryUUID": [b"not a uuid"]}) is None
    assert entry_id({"entryUUID": [b"\xff" * 36]}) is None
    assert entry_id({}) is None


def test_the_entry_id_is_only_ever_the_attribute_of_the_directorys_kind():
    """An OpenLDAP schema may define objectGUID as an ordinary attribute that a user (or a
    helpdesk) can write: set to another entry's entryUUID, it would make that entry's
    codes theirs. Only entryUUID is an OpenLDAP entry's id, only objectGUID an AD one's."""
    victim = uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    own = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    forged = {"objectGUID": [victim.bytes_le], "entryUUID": [own.encode()]}
    assert entry_id(forged, "openldap") == own
    assert entry_id({"objectGUID": [victim.bytes_le]}, "openldap") is None
    assert entry_id(forged, "ad") == str(victim)
    assert entry_id({"entryUUID": [own.encode()]}, "ad") is None


def metadata(*entries: tuple[int, int, int]) -> bytes:
    """A replPropertyMetaData blob (version 1): (ATTRTYP, version, local USN) each,
    written at one time by one DC."""
    blob = struct.pack("<IIII", 1, 0, len(entries), 0)
    for attribute, version, local_usn in entries:
        blob += struct.pack("<IIQ16sqq", attribute, version, 13_300_000_000, b"\x01" * 16,
                            4000 + version, local_usn)
    return blob


def test_ads_writes_of_whether_an_account_may_sign_in_are_read_from_its_metadata():
    """userAccountControl (0x90008), accountExpires (0x9009f), lockoutTime (0x90296) count;
    other attributes (description, 0xd) and the local USN, which differs from DC to DC, not."""
    before = access_writes({"replPropertyMetaData": [metadata((0x90008, 1, 10), (0xD, 1, 11))]},
                           "ad")
    assert before and before.startswith("90008:1:")
    assert access_writes({"replPropertyMetaData": [metadata((0x90008, 1, 99), (0xD, 7, 12))]},
                         "ad") == before
    for changed in [(0x90008, 3, 10)], [(0x90008, 1, 10), (0x9009F, 2, 12)], \
            [(0x90008, 1, 10), (0x90296, 1, 13)]:
        assert access_writes({"replPropertyMetaData": [metadata(*changed)]}, "ad") != before
    assert access_writes({"replPropertyMetaData": [metadata((0x90008, 1, 10))]},
                         "openldap") is None
    for spoiled in [b"", b"\x01\x00", metadata((0x90008, 1, 10))[:-1],
                    struct.pack("<IIII", 2, 0, 0, 0)]:
        assert access_writes({"replPropertyMetaData": [spoiled]}, "ad") is None
    assert access_writes({}, "ad") is None
