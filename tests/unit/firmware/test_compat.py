import pytest

from firmware.compat import SystemIdentity, may_mirror
from firmware.models import load_models
from firmware.version import FirmwareVersion

V1, V2 = FirmwareVersion.parse("1.0.0.001"), FirmwareVersion.parse("1.0.0.002")


@pytest.fixture(scope="module")
def catalog():
    return load_models()


def check(local, peer, catalog):
    return may_mirror(SystemIdentity(*local), SystemIdentity(*peer), catalog)


def test_same_model_and_version_from_450_up_may_mirror(catalog):
    for model in (450, 650, 850, 950, 1050):
        verdict = check((model, V1), (model, V1), catalog)
        assert verdict.allowed and verdict.code == "ok"


@pytest.mark.parametrize("model", [150, 350])
def test_a_model_below_450_is_refused_on_either_side(model, catalog):
    for local, peer, who in (((model, V1), (model, V1), "this system"),
                             ((450, V1), (model, V1), "the peer")):
        verdict = check(local, peer, catalog)
        assert not verdict.allowed and verdict.code == "model-cannot-mirror"
        assert verdict.reason == (f"{who} is a model {model}, which cannot mirror: "
                                  "mirroring needs model 450 or higher")


def test_a_different_model_is_refused(catalog):
    verdict = check((450, V1), (650, V1), catalog)
    assert not verdict.allowed and verdict.code == "model-mismatch"
    assert "the peer is a model 650 but this system is a model 450" in verdict.reason
    assert "must be the same model" in verdict.reason


def test_a_different_firmware_version_is_refused_and_says_which_is_newer(catalog):
    verdict = check((450, V1), (450, V2), catalog)
    assert not verdict.allowed and verdict.code == "version-mismatch"
    assert "the peer runs firmware 1.0.0.002 but this system runs 1.0.0.001" in verdict.reason
    assert "the peer is newer" in verdict.reason
    assert "this system is newer" in check((450, V2), (450, V1), catalog).reason


def test_an_unknown_model_is_refused(catalog):
    verdict = check((450, V1), (999, V1), catalog)
    assert not verdict.allowed and verdict.code == "unknown-model"
    assert "the peer reports model 999" in verdict.reason


def test_the_model_rule_comes_before_the_version_rule(catalog):
    assert check((450, V1), (650, V2), catalog).code == "model-mismatch"
