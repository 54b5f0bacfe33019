"""Keep secrets out of what a run records.

Redaction works on names: a value is hidden when the name it is stored under
(an environment variable, a config key, a command-line flag) looks like it
holds a key, token, password or other credential. Values that are known to be
secret can then also be scrubbed from free text such as command lines.
Credentials embedded in URLs (``scheme://user:password@host``) are removed
wherever a value is kept.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from wbtool.lazyre import lazy_compile

REDACTED = "<redacted>"

#: Shortest value that :func:`redact_text` replaces; shorter ones match too much.
MIN_SECRET_LEN = 6

# Words that mark a secret wherever they appear in a name.
_ANYWHERE = frozenset({
    "password", "passwd", "passphrase", "secret", "secrets", "credential", "credentials",
    "apikey", "accesskey", "privatekey", "secretkey", "csrftoken", "sessionid",
})
# Words that mark a secret when they are the last part of a name.
_LAST = frozenset({
    "token", "auth", "authorization", "cookie", "cookies", "bearer", "jwt", "pwd",
})
# Qualifiers that make a following "key" a secret anywhere in a name.
_KEY_QUALIFIERS = frozenset({
    "api", "access", "private", "secret", "signing", "encryption", "master", "auth",
    "session", "license", "deploy",
})
# Qualifiers that make a trailing "key" an ordinary identifier.
_BENIGN_KEY_QUALIFIERS = frozenset({
    "public", "pub", "sort", "primary", "foreign", "cache", "dict", "map", "lookup", "hash",
    "index", "join", "group", "partition", "shard", "column", "row", "rng", "prng", "random",
    "seed", "metric", "monitor", "input", "output", "target", "label", "image", "text",
    "feature", "data", "batch", "routing", "idempotency", "dedup",
})

# Runs of letters and digits, split before an upper-case letter that starts a word;
# everything else (``_ - . / :`` …) separates words.
_WORDS = lazy_compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")
_URL_CREDENTIALS = lazy_compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@?#]+@")
# Token formats that are secret whatever name they are stored under.
_KNOWN_TOKENS = lazy_compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|hf_[A-Za-z0-9]{30,}"
    r"|sk-[A-Za-z0-9_\-]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}"
    r"|glpat-[A-Za-z0-9_\-]{20,})\b"
)


def name_parts(name: str) -> list[str]:
    """Split ``name`` into lower-case words at ``_ - . / :`` and camelCase boundaries."""
    return [w.lower() for w in _WORDS.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether a value stored under ``name`` should be hidden.

    The name is split into words (see :func:`name_parts`), so ``OPENAI_API_KEY``,
    ``openaiApiKey`` and ``openai-api-key`` all read as ``openai api key``. A
    name is secret when:

    - any word is one of ``password passwd passphrase secret(s) credential(s)
      apikey accesskey privatekey secretkey csrftoken sessionid``;
    - its last word is ``token auth authorization cookie(s) bearer jwt``, or
      ``pwd`` after another word (``MYSQL_PWD``; a bare ``PWD`` is the shell's
      current directory);
    - ``key`` follows a qualifier such as ``api access private signing
      encryption`` anywhere (``AWS_ACCESS_KEY_ID``);
    - its last word is ``key`` and the word before is not an ordinary
      qualifier such as ``public sort primary cache rng seed`` (``STRIPE_KEY`` is
      secret, ``sort_key`` and ``rng_key`` are not); a bare ``key`` is secret.

    Words are compared whole, so ``tokenizer``, ``max_tokens``, ``author`` and
    ``keyboard`` are not secret.
    """
    parts = name_parts(name)
    if not parts:
        return False
    if any(p in _ANYWHERE for p in parts):
        return True
    last = parts[-1]
    if last in _LAST and (last != "pwd" or len(parts) > 1):
        return True
    for before, word in itertools.pairwise(parts):
        if word == "key" and before in _KEY_QUALIFIERS:
            return True
    if last == "key":
        return len(parts) == 1 or parts[-2] not in _BENIGN_KEY_QUALIFIERS
    return False


def strip_url_credentials(text: str, replacement: str = "") -> str:
    """Replace the ``user:password@`` part of every URL in ``text``.

    With the default empty ``replacement`` the credentials are dropped
    (``https://host/x``); pass :data:`REDACTED` to leave a marker instead.
    """
    if "@" not in text:
        return text
    sub = rf"\g<1>{replacement}@" if replacement else r"\g<1>"
    return _URL_CREDENTIALS.sub(sub, text)


def _scrub_value(value: str) -> str:
    return _KNOWN_TOKENS.sub(REDACTED, strip_url_credentials(value, REDACTED))


def redact_mapping(d: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``d`` with the values of secret-looking keys replaced by :data:`REDACTED`.

    Nested mappings, lists and tuples are walked; a key whose own name is
    secret is hidden whole, whatever its value. Strings that are kept lose
    URL credentials and well-known token formats.
    """
    return {k: REDACTED if isinstance(k, str) and is_secret_name(k) else _redact_value(v)
            for k, v in d.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, str):
        return _scrub_value(value)
    return value


def secret_values(d: Mapping[str, str]) -> list[str]:
    """The values in ``d`` stored under secret-looking names, for :func:`redact_text`."""
    return [v for k, v in d.items() if v and is_secret_name(k)]


def redact_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A sorted copy of ``environ`` with secrets replaced by :data:`REDACTED`.

    Variables with secret-looking names are hidden; in the others, any
    occurrence of a hidden value, URL credentials and well-known token formats
    are replaced.
    """
    pattern = _secrets_pattern(secret_values(environ))
    out: dict[str, str] = {}
    for key in sorted(environ):
        value = environ[key]
        if is_secret_name(key):
            out[key] = REDACTED
        else:
            if pattern is not None:
                value = pattern.sub(REDACTED, value)
            out[key] = _scrub_value(value)
    return out


def _secrets_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
    if not values:
        return None
    return re.compile("|".join(re.escape(v) for v in values))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a secret value replaced by :data:`REDACTED`.

    Values shorter than :data:`MIN_SECRET_LEN` characters are ignored (they
    would match ordinary words). URL credentials and well-known token formats
    (GitHub, Hugging Face, OpenAI, Slack, GitLab, AWS access key ids) are
    replaced too.
    """
    pattern = _secrets_pattern(secrets)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _scrub_value(text)


def _flag_name(arg: str) -> str | None:
    """The option name of ``--name``/``-name``, or None when ``arg`` is no option."""
    if len(arg) < 2 or arg[0] != "-" or arg[1].isdigit() or arg[1] == ".":
        return None
    return arg.lstrip("-")


def redact_argv(argv: list[str], *, secrets: Iterable[str] = ()) -> list[str]:
    """A copy of ``argv`` with the values of secret-looking options replaced.

    Handles ``--token X`` and ``-password X`` (the next argument, unless it is
    itself a ``--`` option), ``--token=X``, and ``name=X`` / ``+db.password=X``
    overrides as used by Hydra-style scripts. The values found this way and the
    given ``secrets`` are then scrubbed from every argument with
    :func:`redact_text`, so a secret repeated inside a shell command string is
    hidden too.
    """
    out = list(argv)
    found: list[str] = list(secrets)
    hidden: set[int] = set()
    pending = False
    for i, arg in enumerate(argv):
        if pending:
            pending = False
            if not arg.startswith("--"):
                found.append(arg)
                out[i] = REDACTED
                hidden.add(i)
                continue
        name, eq, value = arg.partition("=")
        if eq:
            key = name.lstrip("-+~")
            if key and " " not in key and is_secret_name(key):
                found.append(value)
                out[i] = f"{name}={REDACTED}"
                hidden.add(i)
            continue
        flag = _flag_name(arg)
        if flag is not None and is_secret_name(flag):
            pending = True
    pattern = _secrets_pattern(found)
    for i, arg in enumerate(out):
        if i not in hidden:
            out[i] = _scrub_value(pattern.sub(REDACTED, arg) if pattern else arg)
    return out
