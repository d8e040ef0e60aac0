"""Griffe extension for the API reference: the reStructuredText blocks of npgrad's docstrings, as Markdown.

The docstrings are plain text with ``double backticks`` (code in Markdown too) and, in ``nn.MLP``, a
google-style ``Args:`` section (mkdocs.yml: ``docstring_style: google``). Three reST forms would run
together into one paragraph, so for the site only (the source is unchanged):

- a simple table, rows between ``====  ====`` borders, becomes a Markdown table; a row whose first
  column is blank continues the row above, as in reST (``join``);
- a doctest, the lines from ``>>>`` to the next blank line, becomes a ``pycon`` code block;
- a paragraph's closing ``::`` (reST's literal-block marker) becomes ``:``.
"""
from __future__ import annotations

import re
import textwrap

try:
    import griffe
except ImportError:  # pytest imports docs/ for doctests without the docs extra
    griffe = None

BORDER = re.compile(r"^ *=+( +=+)+ *$")


def split_row(line: str, starts: list[int]) -> list[str]:
    """Cells of one table row, cut where each column starts (after two spaces). Text that runs past a
    column's start (malformed reST, but readable) moves the cut to the next gap of two spaces before the
    column after, or else to the nearest single space; never inside a ``code`` span."""
    cuts = [0]
    for k, start in enumerate(starts[1:], 1):
        end = starts[k + 1] if k + 1 < len(starts) else len(line) + 1
        if start >= len(line) or line[start - 2:start] == "  " and line[:start].count("``") % 2 == 0:
            cuts.append(start)
            continue
        outside = [m.end() for m in re.finditer(r" +", line) if line[:m.end()].count("``") % 2 == 0]  # of code
        gaps = [p for p in outside if max(start - 2, cuts[-1] + 1) <= p < end and line[p - 2:p] == "  "]
        words = [p for p in outside if p > cuts[-1]]
        cuts.append(gaps[0] if gaps else min(words, key=lambda p: abs(p - start), default=len(line)))
    return [line[a:b].strip() for a, b in zip(cuts, cuts[1:] + [len(line)])]


def join(text: str, more: str) -> str:
    """A cell and its continuation line: one paragraph, as in reST, but a line of code under a line of code
    (``nn``'s formulas) keeps its own line."""
    if not more:
        return text
    return f"{text}<br>{more}" if text.endswith("``") and more.startswith("``") else f"{text} {more}"


def markdown_table(lines: list[str], i: int) -> tuple[list[str], int]:
    """The Markdown of the simple table whose top border is ``lines[i]``, and the index after it."""
    indent = len(lines[i]) - len(lines[i].lstrip())
    starts = [m.start() - indent for m in re.finditer(r"=+", lines[i])]
    header: list[list[str]] = []
    rows: list[list[str]] = []
    j = i + 1
    while j < len(lines):
        line = lines[j][indent:]
        if BORDER.match(line):
            j += 1
            if j == len(lines) or not lines[j].strip():
                break  # the bottom border
            header, rows = rows, []  # the border under the header
            continue
        cells = split_row(line, starts)
        if rows and not cells[0]:
            rows[-1] = [join(a, b) for a, b in zip(rows[-1], cells)]
        elif line.strip():
            rows.append(cells)
        j += 1
    head = header[0] if header else [" "] * len(starts)
    out = ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(starts)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [" " * indent + line if line else line for line in out] + [""], j


def convert(text: str) -> str:
    """The docstring ``text`` with its tables, doctests and ``::`` in Markdown."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if BORDER.match(line):
            table, i = markdown_table(lines, i)
            out += table
        elif line.lstrip().startswith(">>>"):
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            if out and out[-1].rstrip().endswith("::"):
                out[-1] = out[-1].rstrip()[:-1]
            elif len(out) > 1 and not out[-1].strip() and out[-2].rstrip().endswith("::"):
                out[-2] = out[-2].rstrip()[:-1]
            out += ["", "```pycon", *textwrap.dedent("\n".join(lines[i:j])).splitlines(), "```", ""]
            i = j
        else:
            out.append(line[:-1] if line.endswith("::") else line)  # reST's "::" before a literal block
            i += 1
    return "\n".join(out)


if griffe is not None:

    class RestBlocks(griffe.Extension):
        """Rewrites every docstring with ``convert`` as griffe loads it."""

        def on_object(self, *, obj, loader, **kwargs) -> None:
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value)

        def on_package(self, *, pkg, loader, **kwargs) -> None:  # on_object skips the package itself
            self.on_object(obj=pkg, loader=loader)
