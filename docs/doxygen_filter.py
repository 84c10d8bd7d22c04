#!/usr/bin/env python3
"""Doxygen INPUT_FILTER for tessera's public headers (docs/Doxyfile).

The headers document themselves with plain ``//`` comments, written to be read in an editor. This
turns those comments into Doxygen documentation without touching the headers, keeping every line
where it is (Doxygen's warnings name the header's own line numbers):

- the file's opening comment (``// tessera/core/dag.h -- what it is``, up to ``#pragma once``)
  documents the header as a group of its own (``\\defgroup tessera_core_dag_h`` on the
  ``#pragma once`` line, ``@{`` on the blank line after it; the group closes before each namespace
  the header opens and opens again inside it, since Doxygen would otherwise group the namespace
  rather than its names). docs/cpp.rst shows one group per header;
- a run of ``//`` lines directly above a declaration, at namespace, class or enum scope, becomes
  ``///`` (its documentation); a run followed by a blank line stays a plain comment;
- a trailing ``// comment`` after a member, enumerator, free function or parameter (a line that
  ends with ``;`` or ``,``, or an enumerator) becomes ``///<``, and comment lines indented under it
  continue it;
- either documents every name of a declaration of several (``double up = 0, down = 0;  // bytes``):
  Doxygen would give it to one name only (the first, the last), so the line becomes one
  declaration per name, each documented, on the same line;
- comments inside function bodies and macros, ``// NOLINT`` and ``// namespace x`` stay plain;
- the comments are plain text: Doxygen's special characters (backslash, @, %, #word, <tag) are
  escaped outside `code spans`, and lines indented deeper than their block after a blank line
  (examples, tables) get two more spaces, so Markdown renders them as code, unescaped.

Usage (Doxygen runs it as ``FILTER FILE`` and reads standard output): doxygen_filter.py HEADER
"""
import re
import sys

SCOPE_WORDS = re.compile(r"\b(namespace|class|struct|union|enum)\b")
TEMPLATE_HEAD = re.compile(r"\btemplate\s*<[^;{}]*?>\s*")
STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')


def split_comment(line):
    """(code, comment) with comment the text after the first // outside a string ('' if none)."""
    masked = STRING.sub(lambda m: "\0" * len(m.group(0)), line)
    at = masked.find("//")
    if at < 0:
        return line, None
    return line[:at], line[at + 2:]


def is_comment_only(line):
    return line.lstrip().startswith("//")


def indent(text):
    return len(text) - len(text.lstrip(" "))


def plain(comment):
    """A comment Doxygen should leave alone (already Doxygen, a lint marker, a closing label)."""
    c = comment.strip()
    return (comment.startswith(("/", "!")) or c.startswith(("NOLINT", "namespace ", "clang-format"))
            or c == "internal")


class Scopes:
    """Tracks whether the current line is at namespace/class/enum scope or inside a body."""

    def __init__(self):
        self.stack = []  # per open brace: "scope", "enum" or "body"
        self.pending = ""  # declaration text since the last ; { or }
        self.parens = 0

    def at_scope(self):
        return all(s != "body" for s in self.stack)

    def in_enum(self):
        return bool(self.stack) and self.stack[-1] == "enum"

    def feed(self, code):
        code = STRING.sub('""', code)
        if code.lstrip().startswith("#"):
            return
        for ch in code:
            if ch == "(":
                self.parens += 1
            elif ch == ")":
                self.parens = max(0, self.parens - 1)
            if ch == "{":
                head = TEMPLATE_HEAD.sub(" ", self.pending)
                m = SCOPE_WORDS.search(head) if self.parens == 0 else None
                if m and "=" not in head and "(" not in head.split(m.group(1))[0]:
                    self.stack.append({"enum": "enum", "namespace": "namespace"}.get(m.group(1), "scope"))
                elif 'extern ""' in head:
                    self.stack.append("scope")
                else:
                    self.stack.append("body")
                self.pending = ""
            elif ch == "}":
                if self.stack:
                    self.stack.pop()
                self.pending = ""
            elif ch == ";":
                self.pending = ""
            else:
                self.pending += ch
        self.pending += " "


def split_declarators(code):
    """(type, [declarator, ...]) of a declaration of several variables ("double a = 0, b = 0;" ->
    ("double ", ["a = 0", "b = 0"])), or None for anything else (one name, a function, ...)."""
    text = code.strip()
    if not text.endswith(";") or text.startswith(("using ", "typedef ", "friend ", "return ")):
        return None
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(text[:-1]):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:k].strip())
            start = k + 1
    parts.append(text[start:-1].strip())
    if len(parts) < 2 or not all(re.match(r"^\w+\s*(=.*|\{.*\})?$", p) for p in parts[1:]):
        return None
    head = re.split(r"\s*(?:=|\{)", parts[0], maxsplit=1)[0]
    m = re.match(r"^(.*[>:*&\s])(\w+)$", head)
    if not m or "(" in head or not m.group(1).strip():
        return None
    return m.group(1), [parts[0][len(m.group(1)):]] + parts[1:]


def several(code, doc, above=False):
    """A declaration of several variables with every name documented by `doc` (one line, so the
    line numbers stay): "double a = 0, b = 0;" -> "double a = 0; /**< doc */ double b = 0;"; the
    last name is left for the ///< that follows (above: the first name is left to the /// run
    above, the others all get `doc`). None if `code` declares one name."""
    split = split_declarators(code)
    if split is None:
        return None
    type_, names = split
    lead = code[:len(code) - len(code.lstrip())]
    doc = " /**< %s */" % " ".join(doc.split()).replace("*/", "* /")
    decls = ["%s%s;" % (type_, n) for n in names]
    if above:
        return lead + decls[0] + " " + " ".join(d + doc for d in decls[1:])
    return lead + " ".join(d + doc for d in decls[:-1]) + " " + decls[-1]


def escape(text):
    """Doxygen's special characters as text, outside `code spans`."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        p = parts[i].replace("\\", "\\\\")
        p = re.sub(r"([@%])", r"\\\1", p)
        p = re.sub(r"#(?=\w)", r"\\#", p)
        p = re.sub(r"<(?=[A-Za-z/!])", r"\\<", p)
        parts[i] = p
    return "`".join(parts)


def doc_texts(texts):
    """The texts of a comment block for /// lines. Lines indented deeper than the block after a
    blank line (examples, tables) get two more spaces, so Markdown renders them as code, and are
    left as they are; the other lines have Doxygen's special characters escaped."""
    base = min((indent(t) for t in texts if t.strip()), default=1)
    out, code, prev_blank = [], False, True
    for t in texts:
        t = t.rstrip("\n")
        if not t.strip():
            out.append(t)
            prev_blank = True
            continue
        code = indent(t) > base and (code or prev_blank)
        out.append("  " + t if code else escape(t))
        prev_blank = False
    return out


def filter_lines(lines):
    out = list(lines)
    n = len(lines)
    i = 0
    group = None
    # The file's opening comment: its documentation. "tessera/x/y.h -- text" names the file.
    if n and is_comment_only(lines[0]):
        j = 0
        while j < n and is_comment_only(lines[j]):
            j += 1
        first = split_comment(lines[0])[1]
        m = re.match(r"\s*(tessera/\S+\.h)\s*(?:--|:)?\s*(.*)$", first)
        if m:
            texts = doc_texts([" " + m.group(2)] + [split_comment(lines[k])[1] for k in range(1, j)])
            for k in range(j):
                out[k] = "///" + texts[k] + "\n"
            # The header is a group (one per header: Breathe shows each header's names under its
            # own title without repeating the namespaces they share, as doxygenfile does). The
            # comment above documents it; #pragma once and the blank line after it (Doxygen needs
            # neither) name it and open it, so every line stays where it is.
            group = re.sub(r"\W", "_", m.group(1))
            if j + 1 < n and lines[j].strip() == "#pragma once" and not lines[j + 1].strip():
                out[j] = "/// \\defgroup %s %s\n" % (group, m.group(1))
                out[j + 1] = "/// @{\n"
                out.append("/// @}\n")
                j += 2
        i = j
    scopes = Scopes()
    in_macro = False  # a line continuing a preprocessor directive
    trailing_col = None  # the column of the last trailing comment that became ///<
    run_doc, run_end = "", -1  # the text of the last /// run and the line after it
    while i < n:
        line = lines[i]
        if is_comment_only(line):
            j = i
            while j < n and is_comment_only(lines[j]) and indent(lines[j]) == indent(line):
                j += 1
            comment = split_comment(line)[1]
            if trailing_col is not None and indent(line) >= trailing_col - 2 and scopes.at_scope():
                for k in range(i, j):  # continues the trailing comment above
                    out[k] = " " * indent(lines[k]) + "///<" + escape(split_comment(lines[k])[1])
                i = j
                continue
            trailing_col = None
            nxt = lines[j] if j < n else ""
            nxt_code = split_comment(nxt)[0].strip()
            declares = (nxt_code and not nxt_code.startswith(("}", "public:", "private:", "protected:"))
                        and not (nxt_code.startswith("#") and not nxt_code.startswith("#define"))
                        and not re.match(r"namespace\b", nxt_code))
            if declares and scopes.at_scope() and not plain(comment):
                texts = doc_texts([split_comment(lines[k])[1] for k in range(i, j)])
                for k in range(i, j):
                    out[k] = " " * indent(lines[k]) + "///" + texts[k - i] + "\n"
                run_doc, run_end = " ".join(texts), j
            i = j
            continue
        code, comment = split_comment(line)
        trailing_col = None
        if comment is not None and scopes.at_scope() and not plain(comment):
            c = code.rstrip()
            if (c.endswith((";", ",")) or scopes.in_enum() and re.match(r"^\s*\w+\s*(=.*)?$", c)
                    or scopes.parens > 0 and c.endswith(")")):
                # A trailing comment documents every name the line declares ("int a, b;  // x").
                k, more = i + 1, []
                while k < n and is_comment_only(lines[k]) and indent(lines[k]) >= len(code) - 2:
                    more.append(split_comment(lines[k])[1])
                    k += 1
                split = several(code, escape(" ".join([comment] + more)))
                out[i] = (split + " " * (len(code) - len(code.rstrip())) if split else code) + "///<" + escape(comment)
                trailing_col = len(code)
        elif comment is None and run_end == i and scopes.at_scope():
            split = several(code.rstrip("\n"), run_doc, above=True)  # the /// run above documents every name
            if split:
                out[i] = split + "\n"
        depth = len(scopes.stack)
        directive = in_macro or code.lstrip().startswith("#")
        in_macro = directive and line.rstrip("\n").endswith("\\")
        if directive:
            i += 1
            continue
        scopes.feed(code)
        if group and depth == 0 and scopes.stack[:1] == ["namespace"]:
            # Doxygen puts a namespace opened inside a group into it, not the namespace's names:
            # the group closes before a namespace and opens again inside it (and after it).
            out[i] = "/** @} */ " + out[i].rstrip("\n") + " /** \\addtogroup %s */ /** @{ */\n" % group
        elif group and depth == 1 and not scopes.stack:
            code_part, rest = split_comment(out[i])
            rest = "" if rest is None else "//" + rest
            out[i] = "/** @} */ %s /** \\addtogroup %s */ /** @{ */ %s" % (code_part.rstrip("\n"), group, rest)
            out[i] = out[i].rstrip() + "\n"
        i += 1
    return out


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        lines = f.readlines()
    sys.stdout.write("".join(filter_lines(lines)))


if __name__ == "__main__":
    main()
