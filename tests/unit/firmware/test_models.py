import copy

import pytest
import yaml

from firmware.models import TREE_MODELS_FILE, UnknownModel, load_models
from firmware.strict import ConfigError

REAL = yaml.safe_load(TREE_MODELS_FILE.read_text())


def test_the_tree_defines_every_model_with_the_documented_caps():
    catalog = load_models()
    assert [p.model for p in catalog] == [150, 350, 450, 650, 850, 950, 1050]
    caps = {p.model: p.attachment_text_bytes for p in catalog}
    assert caps[850] == 2 * 1024**2 and caps[950] == 4 * 1024**2 and caps[1050] == 6 * 1024**2
    assert caps[150] < caps[350] < caps[450] < caps[650] < caps[850]
    assert [p.model for p in catalog if p.features.mirroring] == [450, 650, 850, 950, 1050]
    assert [p.model for p in catalog if p.features.custom_branding] == [650, 850, 950, 1050]


def test_every_field_is_documented_in_the_file():
    text = TREE_MODELS_FILE.read_text()
    header = text.split("models:\n")[0]
    for name in ("model", "name", "storage_gb", "attachment_text_kb", "mirroring",
                 "custom_branding", "concurrency", "max_message_mb", "sessions_per_address",
                 "reserved_for_trusted", "data_memory_mb", "index_backlog",
                 "min_free_disk_mb", "vcpus", "memory_mb", "disk_gb", "timeout_s", "workers"):
        assert f"#   {name}" in header or f"#     {name}" in header, name


def test_an_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModel, match="unknown model 451: .* defines 150, 350, 450"):
        load_models().get(451)


def load_changed(tmp_path, change):
    doc = copy.deepcopy(REAL)
    change(doc)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def error_of(path):
    with pytest.raises(ConfigError) as caught:
        load_models(path)
    return str(caught.value)


def entry(doc, model):
    return next(e for e in doc["models"] if e["model"] == model)


@pytest.mark.parametrize("change, key, expected", [
    (lambda d: entry(d, 450).update(colour="red"), "key 'colour'", "expected one of the known keys"),
    (lambda d: entry(d, 450)["smtp"].update(turbo=True), "key 'smtp.turbo'", "expected one of the known keys"),
    (lambda d: entry(d, 450).pop("storage_gb"), "key 'storage_gb'", "(the key is missing)"),
    (lambda d: entry(d, 450)["vm"].pop("memory_mb"), "key 'vm.memory_mb'", "(the key is missing)"),
    (lambda d: entry(d, 450).update(storage_gb="4 TB"), "key 'storage_gb'", "expected a positive integer, got '4 TB'"),
    (lambda d: entry(d, 450).update(storage_gb=True), "key 'storage_gb'", "expected a positive integer, got True"),
    (lambda d: entry(d, 450).update(storage_gb=-1), "key 'storage_gb'", "expected a positive integer, got -1"),
    (lambda d: entry(d, 450)["smtp"].update(concurrency=2.5), "key 'smtp.concurrency'", "got 2.5"),
    (lambda d: entry(d, 450)["smtp"].update(reserved_for_trusted=40), "key 'smtp.reserved_for_trusted'",
     "expected fewer than smtp.concurrency (40), so others get a session too, got 40"),
    (lambda d: entry(d, 450)["smtp"].update(sessions_per_address=21), "key 'smtp.sessions_per_address'",
     "expected at most the 20 sessions not reserved for trusted servers, got 21"),
    (lambda d: entry(d, 450)["smtp"].update(data_memory_mb=400), "key 'smtp.data_memory_mb'",
     "expected at least 416 (4 x smtp.max_message_mb + 16: storing the largest message takes that), got 400"),
    (lambda d: entry(d, 450)["features"].update(mirroring="yes"), "key 'features.mirroring'", "expected true or false, got 'yes'"),
    (lambda d: entry(d, 450).update(name=450), "key 'name'", "expected a string, got 450"),
    (lambda d: entry(d, 450).update(vm=[1, 2]), "key 'vm'", "expected a mapping of vcpus, memory_mb, disk_gb, got [1, 2]"),
])
def test_each_validation_error_names_file_model_key_and_expectation(tmp_path, change, key, expected):
    path = load_changed(tmp_path, change)
    message = error_of(path)
    assert message.startswith(f"{path}: model 450: {key}: "), message
    assert expected in message, message


def test_a_duplicate_model_is_refused(tmp_path):
    path = load_changed(tmp_path, lambda d: d["models"].append(copy.deepcopy(entry(d, 650))))
    assert error_of(path) == (f"{path}: model 650: key 'model': expected each model once, "
                              "but it is defined twice, got 650")


@pytest.mark.parametrize("number, shown", [("pro", "models[3] (model 'pro')"),
                                           ("450", "models[3] (model '450')"),
                                           (None, "models[3]")])
def test_a_non_numeric_model_is_refused(tmp_path, number, shown):
    path = load_changed(tmp_path, lambda d: d["models"][2].update(model=number))
    assert error_of(path).startswith(f"{path}: {shown}: key 'model': expected a model number")


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path):
    path = tmp_path / "models.yaml"
    text = TREE_MODELS_FILE.read_text().replace(
        "    storage_gb: 4000\n", "    storage_gb: 4000\n    storage_gb: 8000\n")
    path.write_text(text)
    message = error_of(path)
    assert f"{path}:" in message and "key 'storage_gb'" in message
    assert "expected each key once, but it is also given on line" in message


@pytest.mark.parametrize("content, expected", [
    ("models: []\n", "key 'models': expected a non-empty list"),
    ("- 1\n- 2\n", "top level: expected a mapping of models"),
    ("models: [\n", "top level: expected valid YAML"),
    ("models: {}\nextra: 1\n", "key 'extra': expected one of the known keys models"),
])
def test_a_broken_file_is_refused_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "models.yaml"
    path.write_text(content)
    message = error_of(path)
    assert message.startswith(str(path)) and expected in message, message


def test_a_missing_file_is_refused_naming_it(tmp_path):
    assert "expected a readable file" in error_of(tmp_path / "nope.yaml")


def test_smtp_memory_of_every_model_is_what_the_file_says_and_fits_its_memory():
    from services.intake.smtp_data import SESSION_MEMORY_BYTES
    assert SESSION_MEMORY_BYTES <= 1.5 * 1024**2  # the per-session figure of models.yaml
    text = TREE_MODELS_FILE.read_text()
    for profile in load_models():
        smtp = profile.smtp
        total = smtp.concurrency * 1.5 + smtp.data_memory_mb
        row = (f"{profile.model:>5}: {smtp.concurrency:>3} x 1.5 + {smtp.data_memory_mb:>4} = "
               f"{total:>4.0f} of {profile.vm.memory_mb:>4}")
        assert row in text, row
        assert total <= 0.6 * profile.vm.memory_mb, profile.model  # the rest for the others
