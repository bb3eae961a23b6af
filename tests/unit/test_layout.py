"""services/ is one package per stage of the data flow; a stage imports only the stages below
it (services/__init__.py gives the order), and nothing imports the CLI."""
import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
STAGES = ["common", "archive", "policy", "intake", "mirror", "appliance", "web", "supervisor", "cli"]


def imported_modules(path: Path) -> set[str]:
    """Every services.* module that `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (use services.STAGE.MODULE)"
            if node.module and node.module.startswith("services"):
                found.update(f"{node.module}.{a.name}" if node.module in
                             ("services", *(f"services.{s}" for s in STAGES)) else node.module
                             for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("services"))
    return found


def stage_of(module: str) -> str:
    return module.split(".")[1]


def modules():
    return sorted(p for p in SERVICES.rglob("*.py"))


def test_every_module_is_in_a_stage_package():
    loose = [p.name for p in SERVICES.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    assert {p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists()} == set(STAGES)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SERVICES)))
def test_a_stage_imports_only_stages_below_it(path):
    importer = path.relative_to(SERVICES).parts[0]
    if importer not in STAGES:
        return
    for module in imported_modules(path):
        imported = stage_of(module)
        assert STAGES.index(imported) <= STAGES.index(importer), \
            f"{path.relative_to(SERVICES)} ({importer}) imports {module} ({imported}), a higher stage"
        if importer != "cli":
            assert imported != "cli", f"{path} imports the CLI ({module})"


def test_no_module_keeps_the_prefix_its_package_carries():
    for path in modules():
        stage = path.parent.name
        assert not path.stem.startswith(f"{stage}_") and not path.stem.endswith(f"_{stage}"), path
