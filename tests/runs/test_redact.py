from __future__ import annotations

import pytest

from wbtool.runs.redact import (
    REDACTED,
    is_secret_name,
    name_parts,
    redact_argv,
    redact_env,
    redact_mapping,
    redact_text,
    secret_values,
    strip_url_credentials,
)

SECRET_NAMES = [
    "API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "HF_TOKEN",
    "password", "db_passwd", "OPENAI_API_KEY", "private_key", "credentials", "auth",
    "SESSION_COOKIE", "WANDB_API_KEY", "apikey", "apiKey", "APIKey", "access_key", "secret",
    "client-secret", "x-api-key", "db.password", "MYSQL_PWD", "STRIPE_KEY", "key",
    "HTTP_AUTHORIZATION", "refreshToken", "GOOGLE_APPLICATION_CREDENTIALS", "secret_key_base",
]
INNOCENT_NAMES = [
    "PATH", "HOME", "PWD", "OLDPWD", "learning_rate", "batch_size", "tokenizer",
    "tokenizer_name", "max_tokens", "maxTokens", "num_tokens", "author", "AUTHOR_EMAIL",
    "sort_key", "rng_key", "public_key", "keyboard", "keys", "SSH_AUTH_SOCK", "", "_",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", INNOCENT_NAMES)
def test_innocent_names(name: str) -> None:
    assert not is_secret_name(name)


def test_name_parts_split_separators_and_camel_case() -> None:
    assert name_parts("OPENAI_API_KEY") == ["openai", "api", "key"]
    assert name_parts("openaiApiKey") == ["openai", "api", "key"]
    assert name_parts("APIKey") == ["api", "key"]
    assert name_parts("model.s3-path/x") == ["model", "s3", "path", "x"]


def test_redact_mapping_is_recursive_and_copies() -> None:
    config = {
        "lr": 0.1,
        "db": {"host": "h", "password": "hunter22"},
        "api_key": {"nested": "whole value hidden"},
        "layers": [{"token": "abc"}, 3],
        "url": "https://user:pw@example.com/data",
        7: "non-string key",
    }
    out = redact_mapping(config)
    assert out == {
        "lr": 0.1,
        "db": {"host": "h", "password": REDACTED},
        "api_key": REDACTED,
        "layers": [{"token": REDACTED}, 3],
        "url": f"https://{REDACTED}@example.com/data",
        7: "non-string key",
    }
    assert config["db"] == {"host": "h", "password": "hunter22"}


def test_redact_env_hides_secret_values_everywhere() -> None:
    env = {
        "PATH": "/usr/bin",
        "HF_TOKEN": "hf-value-123456",
        "ECHO": "token is hf-value-123456",
        "DATABASE_URL": "postgres://app:pw123456@db/x",
    }
    out = redact_env(env)
    assert list(out) == sorted(env)
    assert out["PATH"] == "/usr/bin"
    assert out["HF_TOKEN"] == REDACTED
    assert out["ECHO"] == f"token is {REDACTED}"
    assert out["DATABASE_URL"] == f"postgres://{REDACTED}@db/x"
    assert secret_values(env) == ["hf-value-123456"]


def test_redact_text_replaces_long_values_only() -> None:
    text = "run --x abcd1234 --y abc --z abcd12345678"
    out = redact_text(text, ["abcd1234", "abc", "abcd12345678", ""])
    assert out == f"run --x {REDACTED} --y abc --z {REDACTED}"


def test_redact_text_knows_common_token_formats() -> None:
    token = "ghp_" + "A1b2" * 9
    assert redact_text(f"curl -H 'Authorization: {token}'", []) == (
        f"curl -H 'Authorization: {REDACTED}'")


def test_redact_argv_forms() -> None:
    argv = [
        "train.py", "--token", "tok-123456", "--api-key=key-abcdef", "password=hunter22",
        "+db.password=pw-zzzzzz", "--lr", "0.1", "--use-auth", "--epochs", "3",
        "sh -c 'echo tok-123456'", "https://u:p@example.com/x",
    ]
    original = list(argv)
    assert redact_argv(argv) == [
        "train.py", "--token", REDACTED, f"--api-key={REDACTED}", f"password={REDACTED}",
        f"+db.password={REDACTED}", "--lr", "0.1", "--use-auth", "--epochs", "3",
        f"sh -c 'echo {REDACTED}'", f"https://{REDACTED}@example.com/x",
    ]
    assert argv == original


def test_redact_argv_extra_secrets_and_trailing_flag() -> None:
    assert redact_argv(["--hf", "s3cr3t-value", "--password"], secrets=["s3cr3t-value"]) == [
        "--hf", REDACTED, "--password"]
    assert redact_argv(["--password", "-5"]) == ["--password", REDACTED]


def test_strip_url_credentials() -> None:
    assert strip_url_credentials("https://user:pw@example.com/x.git") == "https://example.com/x.git"
    assert strip_url_credentials("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert strip_url_credentials("ssh://git@host/r", REDACTED) == f"ssh://{REDACTED}@host/r"
