"""MkDocs hook: the site serves its own copy of MathJax, so equations render offline and without a CDN.

MathJax 3 comes from the ``django-static-mathjax`` package of the docs extra: static files only, it
does not need Django. Only what the TeX-to-HTML component loads is copied (about 3 MB): the
component, its fonts, the TeX extensions it autoloads (``\\boldsymbol``, ...) and its menu.
``docs/javascripts/mathjax.js`` configures it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

KEEP = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui", "a11y")


def mathjax_root() -> Path:
    """The ``es5`` folder of the installed MathJax distribution."""
    spec = importlib.util.find_spec("mathjax")
    root = Path(spec.origin).parent / "static" / "mathjax" / "es5" if spec and spec.origin else None
    if root is None or not (root / "tex-chtml.js").is_file():
        from mkdocs.exceptions import PluginError
        raise PluginError('MathJax is not installed: pip install -e ".[docs]" (django-static-mathjax)')
    return root


def on_files(files, config):
    from mkdocs.structure.files import File  # here, so pytest's doctest collection needs no mkdocs

    root = mathjax_root()
    for keep in KEEP:
        path = root / keep
        for src in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            files.append(File.generated(config, f"mathjax/{src.relative_to(root).as_posix()}", abs_src_path=str(src)))
    return files
