"""The mirror client's timers: the appliance's defaults, or archiver.yaml's mirror keys."""
import pytest

from firmware.strict import ConfigError
from services.common.config import load_config
from services.mirror.client import Timers


def write(tmp_path, text):
    path = tmp_path / "archiver.yaml"
    path.write_text(text)
    return path


def test_the_mirror_timers_default_to_the_appliances_and_can_be_set(tmp_path):
    assert Timers.of(None) == Timers.of(load_config(write(tmp_path, "mirror: {}\n")).mirror) \
        == Timers(retry_first=1.0, retry_cap=10.0, rehello=10.0, read_timeout=30.0)
    config = load_config(write(tmp_path, "mirror: {retry_first_seconds: 0.5, "
                                         "retry_cap_seconds: 2, rehello_seconds: 3, "
                                         "read_timeout_seconds: 8}\n"))
    assert Timers.of(config.mirror) == Timers(retry_first=0.5, retry_cap=2, rehello=3,
                                              read_timeout=8)
    with pytest.raises(ConfigError, match="key 'mirror.rehello_seconds': expected a positive"):
        load_config(write(tmp_path, "mirror: {rehello_seconds: 0}\n"))
