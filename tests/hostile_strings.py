"""Hostile strings for the injection tests (tests/test_hostile.py).

Each is a value a client may legitimately put into a free-text field or a
filter; the server must store it (or refuse it with a 4xx) and give it back as
plain text: never run as SQL, never rendered as markup, never a formula.
"""

from __future__ import annotations

#: SQL, markup, path and template payloads, plus Unicode that trips naive code.
#: None holds a NUL or a lone surrogate (the store refuses those; see NUL below).
HOSTILE: tuple[str, ...] = (
    "' OR 1=1 --",
    "' OR '1'='1",
    '"; DROP TABLE voice_pipeline_events; --',
    "'); DROP TABLE api_tokens; --",
    "1; SELECT pg_sleep(5); --",
    "' UNION SELECT token_hash, name FROM api_tokens --",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "{{7*7}}${7*7}<%= 7*7 %>",
    "%00",
    "%",
    "_",
    "\\",
    "\\x00\\' \\\"",
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    '=HYPERLINK("http://evil.example/","x")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\tTAB=1",
    "\r\nSet-Cookie: pwned=1",
    "line one\nline two",
    "\u202egnp.exe",  # right-to-left override
    "zero\u200bwidth\ufeffbom",
    "\uff53\uff43\uff52\uff49\uff50\uff54\uff1c\uff1e\uff07",  # full-width "script<>'"
    "\u0130\u0131\u017f\u212a",  # case-folding traps: dotted I, dotless i, long s, Kelvin
    "e\u0301\u0301\u0301",  # combining marks
    "🙂👩‍👩‍👧‍👦",
    "\u03a9\u2248\u00e7\u221a\u222b\u02dc\u00b5\u2264\u2265\u00f7",  # math symbols
)

#: The strings above that a spreadsheet would run as a formula.
FORMULA_LEADS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

#: A NUL in a filter, a path or a form field.
NUL: tuple[str, ...] = ("\x00", "a\x00b")

#: Markup that must never come back unescaped in an HTML page.
MARKUP: tuple[str, ...] = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
