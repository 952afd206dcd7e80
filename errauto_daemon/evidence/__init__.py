"""Evidence about a patch beyond "the checks exited 0": per-test results
against the base's, whether the tests were weakened, whether the changed
lines ran. Pure readers and comparisons; the validation gathers the inputs."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path


@functools.lru_cache(maxsize=1)
def rules_version() -> str:
    """Identifies the code that turns reports into evidence (this package's sources).

    A cached validation keeps its evidence, findings included: after an upgrade
    that changes a rule, an identical patch on an identical base must be judged
    again, not by the findings of the code that came before."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
