"""A Griffe extension for the API reference: the package's docstrings, as MkDocs renders them.

mxopt's docstrings are Google style (``Args:``, ``Example:``) with a few
reStructuredText habits that Markdown does not know.  mkdocstrings loads this
extension (mkdocs.yml: ``extensions: [tools/griffe_docstrings.py]``) and,
once Griffe has read the package, every docstring is rewritten:

* a Sphinx role, ``:class:`mxopt.Trainer``` or ``:func:`shard```, becomes a
  cross-reference (an optional ``<autoref>``, which mkdocs-autorefs turns
  into a link when the target is on a page of the reference, and into plain
  code when it is not, e.g. a private module).  A bare name is looked up
  where Python would: in the class that holds the docstring, then in its
  module;
* a paragraph that ends in ``::`` (a reST literal block follows) ends in
  ``:``; the indented block after it is a code block in Markdown too;
* a reST link, ```text <url>`_``, becomes a Markdown link;
* ``:math:`x``` becomes inline math, ``.. math::`` a displayed formula and
  ``.. code-block:: sh`` a fenced code block;
* a doctest becomes a fenced ``pycon`` code block (in Markdown, ``>>>``
  starts a quotation and ``x[0][1]`` is a link).

The docstrings themselves are not changed, so ``help()`` and the doctests
see them as written.
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|attr|data|exc|obj|const):`([~!]?)([^`]+)`")
_LITERAL = re.compile(r"(?m)(\S)::[ \t]*$(?=\n[ \t]*\n)")
_BARE_LITERAL = re.compile(r"(?m)^[ \t]*::[ \t]*\n(?=[ \t]*\n)")
_REST_LINK = re.compile(r"`([^`<>]+?)\s*<(https?://[^>`]+)>`__?")


def _target(obj: griffe.Object, name: str) -> str | None:
    """The path of the object `name` means in the docstring of `obj`, or None."""
    root = obj.package
    if name.split(".")[0] == root.name:
        candidates = [name]
    else:
        scopes = []
        scope = obj
        while scope is not None:
            if scope.is_class or scope.is_module:
                scopes.append(scope)
            scope = scope.parent
        candidates = [f"{s.path}.{name}" for s in scopes if name.split(".")[0] in s.members]
    for path in candidates:
        try:
            found = root.modules_collection.get_member(path)
        except (KeyError, ValueError):
            continue
        try:
            return found.final_target.path if found.is_alias else found.path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return path
    return None


def _role(obj: griffe.Object, match: re.Match) -> str:
    kind, modifier, name = match.groups()
    shown = name.rsplit(".", 1)[-1] if modifier == "~" else name
    if kind in ("func", "meth"):
        shown += "()"
    code = f"<code>{html.escape(shown)}</code>"
    target = None if modifier == "!" else _target(obj, name)
    if target is None:
        return code
    return f'<autoref identifier="{html.escape(target)}" optional>{code}</autoref>'


def _fence_doctests(text: str) -> str:
    """Every doctest (a ``>>>`` line, its ``...`` lines and its output, up to
    a blank line) as a fenced ``pycon`` block, at its own indentation: in
    Markdown, ``>>>`` would start a quotation and ``x[0][1]`` a link."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if not stripped.startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(stripped)]
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}```pycon", *(indent + line for line in block), f"{indent}```"]
    return "\n".join(out)


_DIRECTIVE = re.compile(r"^([ \t]*)\.\. (math|code-block|code|sourcecode)::[ \t]*(.*)$")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")


def _directives(text: str) -> str:
    """reST's ``.. math::`` as a displayed formula and ``.. code-block:: lang``
    as a fenced block: the directive's indented body, up to the first line
    that is indented no deeper than the directive."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent, kind, argument = match.groups()
        i += 1
        body = [argument] if kind == "math" and argument.strip() else []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        depth = min((len(b) - len(b.lstrip()) for b in body if b.strip() and b is not argument), default=0)
        body = [b if b is argument else b[depth:] for b in body]
        if out and out[-1].strip():
            out.append("")
        if kind == "math":
            out += [f"{indent}$$", *(indent + b for b in body), f"{indent}$$", ""]
        else:
            out += [f"{indent}```{argument.strip()}", *(indent + b for b in body), f"{indent}```", ""]
    return "\n".join(out)


def rewrite(obj: griffe.Object, text: str) -> str:
    """The Markdown that MkDocs should render for the docstring `text` of `obj`."""
    text = _fence_doctests(text)
    text = _directives(text)
    text = _MATH_ROLE.sub(lambda m: "\\(" + m.group(1) + "\\)", text)
    text = _ROLE.sub(lambda m: _role(obj, m), text)
    text = _BARE_LITERAL.sub("", text)
    text = _LITERAL.sub(r"\1:", text)
    return _REST_LINK.sub(r"[\1](\2)", text)


class Docstrings(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        seen: set[int] = set()

        def visit(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj, obj.docstring.value)
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member)

        visit(pkg)
