"""Redaction: the one registry of secret names, and the one log filter on real loggers."""
from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest

from errauto_daemon import notify, redact
from errauto_daemon.redact import RedactFilter, Secrets, redact_loggers

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

TOKEN = "ghp_s3cr3tT0k3nValue"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A real logger of its own, not propagating, removed from its filters and handlers afterwards."""
    log = logging.getLogger(f"errauto-test.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    for f in list(log.filters):
        log.removeFilter(f)


def capture(log: logging.Logger, *filters: logging.Filter) -> io.StringIO:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    for f in filters:
        handler.addFilter(f)
    log.addHandler(handler)
    return out


def test_the_filter_redacts_the_message_its_arguments_and_the_traceback(
        logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    out = capture(logger, RedactFilter())
    logger.info("pushing with %s to %s", TOKEN, "origin")
    try:
        raise ValueError(f"the server refused {TOKEN}")
    except ValueError:
        logger.exception("push failed")
    text = out.getvalue()
    assert TOKEN not in text
    assert "INFO pushing with *** to origin" in text
    assert "ERROR push failed\nTraceback (most recent call last):" in text
    assert "ValueError: the server refused ***" in text


def test_the_filter_escapes_what_would_drive_a_terminal_reading_the_log(logger: logging.Logger) -> None:
    out = capture(logger, RedactFilter())
    logger.info("took %s", "fix-\x1b]0;owned\x07\u202e.patch\tfrom inbox")
    assert out.getvalue() == "INFO took fix-\\x1b]0;owned\\x07\\u202e.patch\tfrom inbox\n"


def test_every_handler_after_the_filter_sees_the_record_redacted(
        logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    first = capture(logger, RedactFilter())
    second = capture(logger)  # no filter of its own
    logger.warning("token %s", TOKEN)
    assert first.getvalue() == second.getvalue() == "WARNING token ***\n"


def test_a_library_logger_is_redacted_for_whatever_handlers_the_process_has(
        logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    library = logging.getLogger(f"{logger.name}.requests")
    out = capture(logger)  # a handler on the parent, knowing nothing of secrets
    redact_loggers([library.name])
    redact_loggers([library.name])
    try:
        library.debug("GET /user Authorization: token %s", TOKEN)
        assert out.getvalue() == "DEBUG GET /user Authorization: token ***\n"
        assert sum(isinstance(f, RedactFilter) for f in library.filters) == 1
    finally:
        for f in list(library.filters):
            library.removeFilter(f)


def test_the_slack_sender_redacts_urllib3_request_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://hooks.slack.com/services/T0AAAA/B0BBBB/cCcCcCcCcCcC"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    urllib3 = logging.getLogger("urllib3")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    urllib3.addHandler(handler)
    level = urllib3.level
    urllib3.setLevel(logging.DEBUG)
    try:
        notify._redact_http_logs()
        logging.getLogger("urllib3.connectionpool").debug(
            '%s://%s:%s "%s %s %s" %s', "https", "hooks.slack.com", 443, "POST",
            "/services/T0AAAA/B0BBBB/cCcCcCcCcCcC", "HTTP/1.1", 200)
    finally:
        urllib3.removeHandler(handler)
        urllib3.setLevel(level)
    assert out.getvalue() == 'https://hooks.slack.com:443 "POST *** HTTP/1.1" 200\n'


def test_a_registry_reads_its_own_names_from_its_own_environment() -> None:
    env = {"DEPLOY_KEY": "deploy-key-value", "OTHER": "not-a-secret-here"}
    secrets = Secrets(["DEPLOY_KEY"], env=env)
    assert secrets.redact("key deploy-key-value, other not-a-secret-here") == \
        "key ***, other not-a-secret-here"
    secrets.add(["OTHER"])
    assert secrets.names == {"DEPLOY_KEY", "OTHER"}
    assert secrets.redact("other not-a-secret-here") == "other ***"
    # The process's registry knows nothing of these.
    assert "OTHER" not in redact.SECRETS.names
    assert redact.redact("deploy-key-value") == "deploy-key-value"


def test_a_value_set_after_its_name_was_registered_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = Secrets(["LATE_SECRET"])
    assert secrets.redact("late-value-1234") == "late-value-1234"
    monkeypatch.setenv("LATE_SECRET", "late-value-1234")
    assert secrets.redact("late-value-1234") == "***"


def test_short_values_and_url_parts() -> None:
    secrets = Secrets(["HOOK", "PIN"], env={"HOOK": "https://example.com/hook/abcdefgh?k=1", "PIN": "123"})
    assert secrets.values() == ["https://example.com/hook/abcdefgh?k=1", "/hook/abcdefgh?k=1", "/hook/abcdefgh"]
    assert secrets.redact("pin 123") == "pin 123"  # too short to redact without mangling text
