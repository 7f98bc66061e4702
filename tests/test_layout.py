"""The package layout's one rule: imports run one way, from the pipeline's later stages to its earlier ones.

Every top-level module and package of `sicsrec/` has a layer; a module may import its own package
and anything in a lower layer, nothing else (lazy imports inside functions count too). A module
missing from the table fails the test, so a new package has to take its place in the order.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sicsrec"

# data < features < stage_a < model < eval < train < checkpoint < run < serve < cli, app
LAYERS: dict[str, int] = {
    "sicsrec": 0,  # the package root: __version__ only
    "utils": 0,
    "dist": 0,  # torchrun's rank, process group and collectives (eval shards, train syncs)
    "config": 1,
    "events": 1,
    "data": 2,
    "features": 3,
    "stage_a": 4,
    "model": 5,
    "eval": 6,
    "train": 7,  # the trainer early-stops on the evaluator's metrics
    "checkpoint": 8,
    "run": 9,
    "serve": 10,
    "cli": 11,
    "app": 11,
    "__main__": 12,
}


def unit(module: str) -> str:
    """The layer-table entry of a dotted module name: 'sicsrec.run.prepare' -> 'run'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def sicsrec_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of `sicsrec...` in a file, at any depth (function-level included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "sicsrec"]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] == "sicsrec"
        ):
            # `from sicsrec import x` may name a subpackage: count each name that is one
            subs = [f"sicsrec.{a.name}" for a in node.names if node.module == "sicsrec" and a.name in LAYERS]
            found += [(node.lineno, m) for m in subs or [node.module]]
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def test_every_module_has_a_layer() -> None:
    units = {unit(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert not units - set(LAYERS), f"add these to LAYERS in {__file__}: {sorted(units - set(LAYERS))}"


def test_imports_run_one_way() -> None:
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = unit(module_name(path))
        for line, target in sicsrec_imports(path):
            other = unit(target)
            if other not in LAYERS:
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {target}: not in the layer table")
            elif other != own and LAYERS[other] >= LAYERS[own]:
                broken.append(
                    f"{path.relative_to(ROOT)}:{line} imports {target} "
                    f"({other}, layer {LAYERS[other]}) from {own} (layer {LAYERS[own]})"
                )
    assert not broken, "imports against the layer order:\n" + "\n".join(broken)


def test_the_model_never_imports_training_settings() -> None:
    # The model's own config holds its loss weights; TrainConfig belongs to the trainer.
    offenders = [
        f"{p.relative_to(ROOT)}:{n.lineno}"
        for p in (PACKAGE / "model").rglob("*.py")
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(n, ast.ImportFrom) and any(a.name == "TrainConfig" for a in n.names)
    ]
    assert not offenders, f"the model imports TrainConfig at {offenders}"


def test_nothing_outside_the_app_imports_it() -> None:
    # The library and the benchmarks talk to the app only over HTTP or a browser, never in process.
    files = [p for p in PACKAGE.rglob("*.py") if unit(module_name(p)) != "app"] + sorted((ROOT / "bench").rglob("*.py"))
    offenders = [f"{p.relative_to(ROOT)}:{line}" for p in files for line, m in sicsrec_imports(p) if unit(m) == "app"]
    assert not offenders, f"imports of sicsrec.app outside the app: {offenders}"


def test_the_checker_sees_lazy_and_package_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from sicsrec import __version__, run\n\ndef f():\n    import sicsrec.app.plots\n"
        "    from sicsrec.serve.history import parse_history\n"
    )
    assert [unit(m) for _, m in sicsrec_imports(probe)] == ["run", "app", "serve"]
