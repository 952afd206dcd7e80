"""The CLI run in-process, as a user sees it: exit code, standard output, standard error."""
from __future__ import annotations

import pytest

from errauto_daemon.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
