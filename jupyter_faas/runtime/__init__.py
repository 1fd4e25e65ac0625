"""The action runtime (``proxy.py``) copied into every function image as ``/faas/runtime.py``."""

import hashlib
from pathlib import Path

#: Where the runtime's source lives; images copy or mount this file.
PROXY_PATH = str(Path(__file__).with_name("proxy.py"))
#: Short content hash of proxy.py, so images built with an older runtime can be told apart.
RUNTIME_VERSION = hashlib.sha256(Path(PROXY_PATH).read_bytes()).hexdigest()[:12]
