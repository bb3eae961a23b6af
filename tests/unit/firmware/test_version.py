import pytest
from hypothesis import given, strategies as st

from firmware.version import FirmwareVersion, VersionError, current_version


def test_parses_and_prints_with_three_digit_build():
    version = FirmwareVersion.parse("1.0.0.001")
    assert (version.major, version.minor, version.patch, version.build) == (1, 0, 0, 1)
    assert str(version) == "1.0.0.001"


def test_compares_numerically_part_by_part():
    ordered = ["1.0.0.001", "1.0.0.002", "1.0.0.010", "1.0.1.000", "1.2.0.000", "2.0.0.000",
               "10.0.0.000"]
    parsed = [FirmwareVersion.parse(v) for v in ordered]
    assert parsed == sorted(reversed(parsed))
    assert FirmwareVersion.parse("1.0.0.1") == FirmwareVersion.parse("1.0.0.001")


@pytest.mark.parametrize("bad", ["", "1.0.0", "1.0.0.0.1", "1.0.0.a", "v1.0.0.001", "1..0.001",
                                 "-1.0.0.001", "1.0.0.001-rc1", "1,0,0,001", "1.0.0.1234567"])
def test_rejects_malformed_versions_with_the_expected_form(bad):
    with pytest.raises(VersionError, match="MAJOR.MINOR.PATCH.BUILD"):
        FirmwareVersion.parse(bad)


def test_rejects_a_non_string():
    with pytest.raises(VersionError, match="must be a string"):
        FirmwareVersion.parse(1.0)


@given(st.tuples(*[st.integers(0, 999999)] * 4))
def test_round_trips_and_orders_like_tuples(parts):
    version = FirmwareVersion(*parts)
    assert FirmwareVersion.parse(str(version)) == version
    assert (version < FirmwareVersion(*parts[:3], parts[3] + 1))


def test_the_tree_has_one_valid_version_that_the_package_metadata_follows():
    from importlib.metadata import version as dist_version
    tree = current_version()
    assert dist_version("archiver-appliance").split(".") == [
        str(n) for n in (tree.major, tree.minor, tree.patch, tree.build)]
