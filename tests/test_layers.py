"""The README's layers of npgrad/ (its table under "Dependencies point one way"), held against the imports."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
EVERYONE = {"errors", "version"}
ENTRY = {ROOT / "npgrad/__init__.py", ROOT / "npgrad/__main__.py"}  # front doors: import what they expose
REACH_DOWN = {("config", "tuned"), ("population", "runs"), ("population", "ray_backend")}  # the README names them


def readme_layers():
    """``{module: layer index}`` from the README's table, top layer 0; ``algos/*.py`` is every file in algos/."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| layer | files | what it does |")[1].split("\n\n")[0]
    layers = {}
    for index, row in enumerate(line for line in table.splitlines()[2:] if line.startswith("|")):
        for name in re.findall(r"`([\w/*]+)\.py`", row.split("|")[2]):
            for path in sorted(ROOT.glob(f"npgrad/{name}.py")):
                layers[module_of(path)] = index
    return layers


def module_of(path):
    """``algos.trpo`` for npgrad/algos/trpo.py, ``algos`` for npgrad/algos/__init__.py."""
    return path.relative_to(ROOT / "npgrad").with_suffix("").as_posix().replace("/__init__", "").replace("/", ".")


def imports_of(path):
    """The npgrad modules ``path`` imports, at the top or inside a function (relative imports only, as npgrad's)."""
    package = module_of(path).split(".")[:-1] if path.stem != "__init__" else module_of(path).split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, *node.module.split(".")]))
            else:  # from . import io, runs
                found.update(".".join([*base, alias.name]) for alias in node.names)
    return found


def test_every_module_is_in_one_layer():
    layers = readme_layers()
    modules = {module_of(p) for p in ROOT.glob("npgrad/**/*.py") if p not in ENTRY} - EVERYONE
    assert modules - set(layers) == set(), f"modules in no layer of the README's table: {sorted(modules - set(layers))}"


def test_imports_point_up_the_layers():
    layers = readme_layers()
    down = []
    for path in sorted(ROOT.glob("npgrad/**/*.py")):
        importer = module_of(path)
        if path in ENTRY or importer in EVERYONE:
            continue
        for imported in sorted(imports_of(path) - EVERYONE):
            if imported in layers and layers[imported] > layers[importer] and (importer, imported) not in REACH_DOWN:
                down.append(f"{importer} imports {imported}")
    assert down == [], f"imports from a lower layer of the README's table: {down}"
