"""Imports point one way along the data flow: a module never imports from a layer to its right."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "plasticlab"
LAYERS = {
    "registry": 0, "seeding": 0, "config": 0, "units": 0, "unit_discovery": 0, "augment": 0,
    "data": 1, "tasks": 2, "language": 2, "envs": 3,
    "models": 4, "methods": 4, "diagnostics": 4,
    "engine": 5, "store": 6,
    "api": 7, "sweep": 8, "report": 8, "transfer": 8, "recipes": 8,
    "cli": 9, "__main__": 9, "__init__": 9,
}


def layer_of(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def test_imports_point_one_way():
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        name = ".".join(rel.parts)
        if name == "__init__" or name.endswith(".__init__") and len(rel.parts) == 1:
            continue
        top = rel.parts[0]
        if top == "diagnostics" and rel.parts[-1] == "report":
            own = 7  # why: `diagnose` rebuilds a run from its directory: a tool, like api
        else:
            own = LAYERS[top]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("plasticlab."):
                targets = [node.module[len("plasticlab."):]]
            elif isinstance(node, ast.ImportFrom) and node.module == "plasticlab":
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name[len("plasticlab."):] for a in node.names if a.name.startswith("plasticlab.")]
            for t in targets:
                if t and t.split(".")[0] in LAYERS and layer_of(t) > own:
                    bad.append(f"{name} (layer {own}) imports plasticlab.{t} (layer {layer_of(t)})")
    assert not bad, "\n".join(bad)
