# Sphinx configuration of tessera's reference documentation (`make docs`, Debian's python3-sphinx,
# python3-myst-parser, doxygen and python3-breathe). The Python API pages are generated from the
# code's docstrings (autodoc), the C++ API page (cpp.rst) from the public headers' comments (Doxygen
# XML, written when Sphinx starts, rendered by Breathe); the guides are the Markdown files beside
# this one. Warnings are errors (`make docs` passes -W), so a
# docstring that does not render fails the build, and so does a public C++ name without a comment
# (Doxyfile); tests/python/test_api.py fails on a public Python name without a docstring.
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "python")))

import tessera  # noqa: E402

project = "tessera"
release = tessera.__version__
version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser", "breathe"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the signatures show them; the C++ classes have none to show
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]  # guides link to source files, which are not pages
html_theme = "alabaster"
html_title = f"tessera {release}"
breathe_projects = {"tessera": ""}  # set by _run_doxygen: the XML it writes into the build directory
breathe_default_project = "tessera"
breathe_default_members = ("members", "undoc-members")
breathe_show_include = True


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


# The C++ reference: Doxygen (docs/Doxyfile) reads the public headers through docs/doxygen_filter.py
# and writes XML into the build directory (TESSERA_DOXYGEN_DIR, by default beside Sphinx's
# doctrees); Breathe renders it. Each Doxygen warning is a Sphinx warning, so with -W a comment
# Doxygen cannot read fails the build, and so does every public name without documentation (the
# Doxyfile's EXTRACT_ALL=NO + WARN_IF_UNDOCUMENTED=YES). TESSERA_DOCS_UNDOCUMENTED=0 turns that
# check off for a local build (EXTRACT_ALL=YES shows the undocumented names, without a warning).
_DOCS = os.path.dirname(os.path.abspath(__file__))


def _run_doxygen(app):
    from sphinx.errors import ConfigError
    from sphinx.util import logging

    log = logging.getLogger("tessera.doxygen")
    doxygen = shutil.which("doxygen")
    if doxygen is None:
        raise ConfigError("doxygen is not installed: the C++ reference needs Debian's doxygen "
                          "(scripts/setup.sh installs it: apt-get install doxygen python3-breathe)")
    out = os.path.abspath(os.environ.get("TESSERA_DOXYGEN_DIR") or os.path.join(app.doctreedir, "doxygen"))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(_DOCS, "Doxyfile"), encoding="utf-8") as f:
        config = f.read()
    config += f'\nOUTPUT_DIRECTORY = "{out}"\n'
    config += f'INPUT_FILTER = "{sys.executable} -S {os.path.join(_DOCS, "doxygen_filter.py")}"\n'
    if os.environ.get("TESSERA_DOCS_UNDOCUMENTED", "") == "0":  # strict unless turned off
        config += "EXTRACT_ALL = YES\nWARN_IF_UNDOCUMENTED = NO\n"
    run = subprocess.run([doxygen, "-"], input=config, cwd=_DOCS, capture_output=True, text=True)
    seen = set()
    for line in (run.stderr + run.stdout).splitlines():
        if line.strip() and line not in seen:  # Doxygen repeats some warnings
            seen.add(line)
            log.warning("doxygen: %s", line)
    if run.returncode != 0:
        raise ConfigError(f"doxygen failed (exit status {run.returncode}): see the warnings above")
    app.config.breathe_projects = {"tessera": os.path.join(out, "xml")}
    _MEMBER_NAMESPACE.clear()
    _MEMBER_NAMESPACE.update(_member_namespaces(os.path.join(out, "xml")))
    # Every public header has its section in cpp.rst: a new header is not left out silently.
    include = os.path.join(_DOCS, "..", "cpp", "include")
    with open(os.path.join(_DOCS, "cpp.rst"), encoding="utf-8") as f:
        page = f.read()
    for layer in sorted(os.listdir(os.path.join(include, "tessera"))):
        if os.path.isdir(os.path.join(include, "tessera", layer)):
            for header in sorted(os.listdir(os.path.join(include, "tessera", layer))):
                name = f"tessera/{layer}/{header}"
                group = name.replace("/", "_").replace(".", "_")
                if header.endswith(".h") and f".. doxygengroup:: {group}\n" not in page:
                    log.warning("docs/cpp.rst: the public header %s has no section (doxygengroup %s)",
                                name, group)


# cpp.rst shows each header as a Doxygen group. Breathe 4.34 qualifies a group's classes (by their
# compound names) but not its functions, variables and enums, which would land in the global scope
# (and two curve_keypair() of two namespaces would clash): this gives Breathe the namespace of
# each such member, read from Doxygen's namespace XML.
_MEMBER_NAMESPACE = {}


def _member_namespaces(xml_dir):
    import glob
    import xml.etree.ElementTree as ET

    scopes = {}
    for path in glob.glob(os.path.join(xml_dir, "namespace*.xml")):
        compound = ET.parse(path).getroot().find("compounddef")
        name = compound.findtext("compoundname")
        for member in compound.iter("memberdef"):
            scopes[member.get("id")] = name.split("::")
    return scopes


def _qualify_group_members():
    from breathe.renderer.sphinxrenderer import SphinxRenderer

    plain = SphinxRenderer.get_qualification

    def get_qualification(self):
        names = plain(self)
        node = self.qualification_stack[0]
        if not names and self.nesting_level == 0 and getattr(node, "node_type", "") == "memberdef":
            return list(_MEMBER_NAMESPACE.get(node.id, []))
        return names

    SphinxRenderer.get_qualification = get_qualification


def setup(app):
    _qualify_group_members()
    app.connect("autodoc-process-docstring", _plain_to_rst)
    app.connect("builder-inited", _run_doxygen)
