"""The action runtime: ``proxy.py`` and ``faas_protocol.py``, copied into every function image
(and every container-less environment) as ``/faas/runtime.py`` and ``/faas/faas_protocol.py``."""

import hashlib
from pathlib import Path

from . import faas_protocol as protocol

_HERE = Path(__file__).parent
#: Where the runtime's entry point lives.
PROXY_PATH = str(_HERE / "proxy.py")
#: The runtime's files: name inside an image or environment -> source path here.
RUNTIME_FILES = {"runtime.py": PROXY_PATH, "faas_protocol.py": str(_HERE / "faas_protocol.py")}
#: Short content hash of the runtime's files, so images built with an older runtime differ.
RUNTIME_VERSION = hashlib.sha256(
    b"".join(Path(path).read_bytes() for path in RUNTIME_FILES.values())
).hexdigest()[:12]


def runtime_file_bytes() -> dict[str, bytes]:
    """The runtime's files as ``{name: content}``, for build contexts and environments."""
    return {name: Path(path).read_bytes() for name, path in RUNTIME_FILES.items()}


__all__ = ["PROXY_PATH", "RUNTIME_FILES", "RUNTIME_VERSION", "protocol", "runtime_file_bytes"]
