"""Syntax colouring of a file's diff lines, on the server, with Pygments.

The lexer is chosen by the file's name; a name Pygments does not know, a
plain-text lexer or any error of a lexer leaves the file plain. Each side of
a hunk (its old lines: context and removed; its new lines: context and added)
is lexed as one text, so a string or comment spanning lines is coloured as
one; a hunk that starts inside one cannot know it, as git's context does not
say. The result is markup with CSS classes only (Pygments' short token
names, `k`, `s2`, `c1`...; `static/diff.css` colours them): the strict
Content-Security-Policy allows no inline style. Every token's text is
escaped here, by markupsafe, the escaping Jinja2 uses.
"""
from __future__ import annotations

import functools
import posixpath
from collections.abc import Sequence

from markupsafe import Markup, escape
from pygments.lexer import Lexer
from pygments.lexers import find_lexer_class_for_filename
from pygments.lexers.special import TextLexer
from pygments.token import STANDARD_TYPES, _TokenType

from errauto_daemon.web.diff import FileDiff, Line

UNSTYLED = frozenset({"", "w"})  # plain text and whitespace: no span, nothing to colour
# A hunk's two texts: (the kinds of line lexed together, the kinds whose colouring is kept).
# Context lines are kept from the new side.
_SIDES = ((("context", "del"), ("del",)), (("context", "add"), ("context", "add")))


@functools.lru_cache(maxsize=512)
def _lexer_class(basename: str) -> type[Lexer] | None:
    try:
        found = find_lexer_class_for_filename(basename)
    except Exception:  # a lexer plugin that fails to load must not break the page
        return None
    return None if found is None or issubclass(found, TextLexer) else found


def lexer_for(name: str) -> Lexer | None:
    """The lexer for a file of this name, or None: shown plain."""
    found = _lexer_class(posixpath.basename(name))
    if found is None:
        return None
    try:
        # Leading and trailing blank lines are lines of the diff: keep them.
        return found(stripnl=False, stripall=False, ensurenl=False, tabsize=0)
    except Exception:
        return None


@functools.lru_cache(maxsize=256)
def css_class(ttype: _TokenType) -> str:
    """Pygments' short class name for a token type: its own, or its nearest ancestor's."""
    while ttype not in STANDARD_TYPES and ttype.parent is not None:
        ttype = ttype.parent
    return STANDARD_TYPES.get(ttype, "")


def colour_text(lexer: Lexer, lines: Sequence[str]) -> list[Markup] | None:
    """Each of `lines`, lexed as one text, as markup; None if the lexer fails or changes the text."""
    text = "".join(line + "\n" for line in lines)
    try:
        tokens = list(lexer.get_tokens(text))
    except Exception:
        return None
    if "".join(value for _, value in tokens) != text:
        return None  # a lexer that rewrites its input would shift the lines
    out: list[Markup] = []
    runs: list[tuple[str, str]] = []  # the line so far: (class, text), neighbours of one class joined
    for ttype, value in tokens:
        cls = css_class(ttype)
        for i, piece in enumerate(value.split("\n")):
            if i > 0:
                out.append(_markup(runs))
                runs = []
            if piece and runs and runs[-1][0] == cls:
                runs[-1] = (cls, runs[-1][1] + piece)
            elif piece:
                runs.append((cls, piece))
    if runs:
        out.append(_markup(runs))
    return out if len(out) == len(lines) else None


def _markup(runs: Sequence[tuple[str, str]]) -> Markup:
    return Markup("".join(str(escape(text)) if cls in UNSTYLED else f'<span class="{cls}">{escape(text)}</span>'
                          for cls, text in runs))


def colour_file(f: FileDiff) -> list[Markup | None] | None:
    """Each line of the file's diff as coloured markup (None for a line shown as it is), or None: all plain."""
    lexer = lexer_for(f.name)
    if lexer is None:
        return None
    shown: list[Markup | None] = [None] * len(f.lines)
    for hunk in _hunks(f.lines):
        for lexed, kept in _SIDES:
            indexes = [i for i in hunk if f.lines[i].kind in lexed]
            if not any(f.lines[i].kind in kept for i in indexes):
                continue
            coloured = colour_text(lexer, [f.lines[i].text for i in indexes])
            if coloured is None:
                return None
            for i, markup in zip(indexes, coloured):
                if f.lines[i].kind in kept:
                    shown[i] = markup
    return shown


def _hunks(lines: Sequence[Line]) -> list[list[int]]:
    """The indexes of each hunk's lines (what follows an @@ header, up to the next)."""
    hunks: list[list[int]] = []
    for i, line in enumerate(lines):
        if line.kind == "hunk" or not hunks:
            hunks.append([])
        if line.kind in ("context", "add", "del"):
            hunks[-1].append(i)
    return hunks
