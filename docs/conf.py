# Sphinx configuration of tessera's reference documentation (`make docs`, Debian's python3-sphinx
# and python3-myst-parser). The API pages are generated from the code's docstrings (autodoc); the
# guides are the Markdown files beside this one. Warnings are errors (`make docs` passes -W), so a
# docstring that does not render fails the build; tests/python/test_api.py fails on a public name
# without one.
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "python")))

import tessera  # noqa: E402

project = "tessera"
release = tessera.__version__
version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the signatures show them; the C++ classes have none to show
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]  # guides link to source files, which are not pages
html_theme = "alabaster"
html_title = f"tessera {release}"


# tessera's docstrings are plain text: a sentence, then an indented example; "name: what it is"
# lines whose long descriptions continue indented. reStructuredText reads an indented block as a
# quotation unless the paragraph before it ends with "::", a continuation line as a definition, and
# a lone "*" (x * y, **options) as the start of an emphasis. This turns the plain text into
# reStructuredText, so the docstrings stay readable in help() and in an editor.
def _indent(line):
    return len(line) - len(line.lstrip())


def _escape(line):
    parts = line.split("``")
    for i in range(0, len(parts), 2):  # outside ``literals``
        parts[i] = parts[i].replace("*", r"\*")
    return "``".join(parts)


def _plain_to_rst(app, what, name, obj, options, lines):
    out = []
    in_code, code_indent = False, 0
    for i, line in enumerate(lines):
        if in_code:
            if line.strip() and _indent(line) < code_indent:
                in_code = False
            else:
                out.append(line)
                continue
        if not line.strip():
            out.append(line)
            continue
        prev = out[-1] if out else ""
        if prev.strip() and _indent(line) > _indent(prev) and not prev.rstrip().endswith("::"):
            out.append(" " * _indent(prev) + _escape(line.strip()))  # a continuation: the same paragraph
            continue
        before = next((p for p in reversed(out) if p.strip()), "")
        if not prev.strip() and out and before and _indent(line) > _indent(before):
            if not before.rstrip().endswith("::"):  # an indented block after a paragraph: an example
                j = max(k for k, p in enumerate(out) if p.strip())
                out[j] = out[j].rstrip() + (":" if out[j].rstrip().endswith(":") else " ::")
            in_code, code_indent = True, _indent(line)
            out.append(line)
            continue
        out.append(_escape(line))
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", _plain_to_rst)
