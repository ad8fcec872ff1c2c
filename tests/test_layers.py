"""Imports run one way, as README.md's "Architecture" section draws it: names ← plain stage logic
← resources ← services ← assets ← entry points. Read from the source (ast), nothing imported: a
module that imports a higher layer fails here, named with the import and its line."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("media_assets", "resources", "sensors", "partitions")

# Lowest first. A module belongs to the layer of its longest matching prefix (the bare
# ``media_assets`` package only to itself); it may import its own layer and the ones below.
# Keep in step with README.md's "Architecture" section.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("names", ("media_assets", "media_assets.names")),
    (
        "plain",  # stage logic, no Dagster: tested directly
        (
            "media_assets.web",
            "media_assets.video",
            "media_assets.demo",
            "media_assets.chunks",
            "media_assets.contracts",
            "media_assets.egress",
            "media_assets.enrich",
            "media_assets.manifest",
            "media_assets.pii",
            "media_assets.quality",
            "media_assets.records",
            "media_assets.retry",
            "partitions.keys",
        ),
    ),
    (
        "resources",
        ("resources", "partitions", "media_assets.dagster_compat", "media_assets.postgres_events"),
    ),
    (
        "services",  # operations over resources and the instance, knowing no asset definition
        (
            "media_assets.batching",
            "media_assets.deadletters",
            "media_assets.executors",
            "media_assets.instance",
            "media_assets.k8s",
            "media_assets.logs",
            "media_assets.metrics",
            "media_assets.moments",
            "media_assets.registry",
            "media_assets.search",
            "media_assets.status",
        ),
    ),
    ("assets", ("media_assets.assets", "media_assets.jobs", "media_assets.removal")),
    (
        "entry",  # what Dagster, the daemon and a person start from
        (
            "media_assets.definitions",
            "media_assets.celery_app",
            "media_assets.cli",
            "media_assets.ingest",
            "media_assets.stale",
            "sensors",
        ),
    ),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}
# Layers whose modules must not import Dagster at all.
NO_DAGSTER = {"names", "plain"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != "media_assets"
            if (module == prefix or inside) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def resolve(name: str) -> str:
    """The project module an import names: ``from media_assets import deadletters`` imports the
    module media_assets.deadletters, ``from media_assets.assets import CHAINS`` the package."""
    path = ROOT.joinpath(*name.split("."))
    return name if path.with_suffix(".py").exists() or path.is_dir() else name.rpartition(".")[0]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, project module) of every import in the file, wherever it is (functions and
    ``TYPE_CHECKING`` blocks included: they are dependencies all the same)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            yield node.lineno, name


MODULES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    unplaced = [str(p.relative_to(ROOT)) for p in MODULES if layer_of(module_name(p)) is None]
    assert not unplaced, (
        f"{unplaced}: place each in a layer in tests/test_layers.py and README.md's Architecture"
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    module = module_name(path)
    layer = layer_of(module)
    if layer is None:
        pytest.skip("not placed in a layer (test_every_module_has_a_layer fails for it)")
    wrong = []
    for line, name in imports(path):
        top = name.split(".")[0]
        if top == "dagster" and layer in NO_DAGSTER:
            wrong.append(f"line {line}: imports {name}, but {layer} modules know no Dagster")
        if top not in PACKAGES:
            continue
        target = resolve(name)
        target_layer = layer_of(target)
        if target_layer is not None and RANK[target_layer] > RANK[layer]:
            wrong.append(f"line {line}: imports {target} ({target_layer}) from {layer}")
    assert not wrong, f"{path.relative_to(ROOT)} ({module}, layer {layer}):\n" + "\n".join(wrong)


def test_dagster_internals_are_used_only_in_dagster_compat() -> None:
    """Every use of ``dagster._...`` goes through media_assets/dagster_compat.py, whose tests
    (tests/test_dagster_compat.py) fail by name when a Dagster upgrade changes one."""
    private = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in MODULES
        if module_name(path) != "media_assets.dagster_compat"
        for line, name in imports(path)
        if name.startswith("dagster._") or name.startswith("dagster_shared.")
    ]
    assert not private, "move these behind media_assets/dagster_compat.py:\n" + "\n".join(private)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk finds imports in functions too and resolves a name imported from a package."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from media_assets.assets import CHAINS\n")
    ((line, name),) = list(imports(source))
    assert (line, layer_of(resolve(name))) == (2, "assets")
    assert layer_of(resolve("media_assets.deadletters")) == "services"
    assert layer_of("media_assets.web.render") == "plain"
