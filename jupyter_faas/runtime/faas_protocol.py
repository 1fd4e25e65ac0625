"""The OpenWhisk action protocol as jupyter-faas speaks it: the one home of its pieces.

The runtime inside every function image (which carries this file beside it as
``faas_protocol.py``), the builders' local test runs and the function server's
invokers all take the end-of-activation marker, the ``/init`` and ``/run``
bodies, the result rules and our extra headers from here. Standard library
only, Python 3.9+, like the runtime.
"""

import json
import secrets

#: Printed on stdout and on stderr after every activation; the logs of one activation
#: are what came before it (protocols.md B.4).
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
#: Response header of /run: the activation's peak resident memory in bytes.
PEAK_MEMORY_HEADER = "X-Faas-Peak-Memory"
#: Response header of /run: the function's own run time in milliseconds.
DURATION_HEADER = "X-Faas-Duration-Ms"
#: Environment variable that lets a runtime accept a second /init (local tests only).
ALLOW_REINIT_ENV = "FAAS_ALLOW_REINIT"
#: Environment variable giving a runtime its per-sandbox secret (hex). Set only by our invokers
#: and local builders; the runtime hides it from the function and then requires it on every
#: POST, so a neighbouring sandbox cannot /init or /run it. Unset (real OpenWhisk, OpenFaaS,
#: Knative), the runtime answers anyone, as those platforms expect.
SECRET_ENV = "FAAS_RUNTIME_SECRET"
#: Alternative to SECRET_ENV: an inherited file descriptor to read the secret from (no trace in
#: the environment at all; RuntimeProcess uses it, and so does the runtime's own re-exec).
SECRET_FD_ENV = "FAAS_RUNTIME_SECRET_FD"
#: Request header carrying the secret.
SECRET_HEADER = "X-Faas-Secret"
#: Key of the /init and /run bodies carrying the activation's log token: the runtime removes it
#: before the function sees the body (it never becomes an ``__OW_`` variable) and prints it after
#: the end-of-activation marker, so output that imitates the marker cannot cut the logs.
LOG_TOKEN_KEY = "faas_log_token"
#: Response header of /init and /run: this runtime prints the log token after its markers.
LOG_TOKEN_HEADER = "X-Faas-Log-Token"
#: Environment variable: the largest request body the runtime reads, in bytes.
MAX_REQUEST_ENV = "FAAS_MAX_REQUEST_BYTES"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: Our runtime with no extra packages: the function server's default Python kind.
RUNTIME_IMAGE = "jupyter-faas-runtime:latest"
#: Results larger than this are an application error, as in OpenWhisk (its default, 1 MB).
#: The default of c.FaaSWorkspace.max_result_bytes (the local test) and of
#: c.FunctionServer.max_payload_bytes (the server's limit on inputs and results).
MAX_RESULT_BYTES = 1024 * 1024
#: Invocation inputs larger than this are refused (413), as in OpenWhisk (1 MB): the default of
#: c.FaaSWorkspace.max_payload_bytes and of c.FunctionServer.max_payload_bytes.
MAX_PAYLOAD_BYTES = 1024 * 1024
#: Annotation key jupyter-faas puts on the actions it deploys (source hash, provenance).
FAAS_ANNOTATION = "jupyter-faas"

#: Outcome names of a /run answer, in OpenWhisk's terms (statusCode 0, 1 and 2).
SUCCESS = "success"
APPLICATION_ERROR = "application error"
DEVELOPER_ERROR = "developer error"


def new_secret():
    """A fresh sandbox secret (32 random bytes, hex)."""
    return secrets.token_hex(32)


def new_log_token():
    """A fresh log token for one activation (16 random bytes, hex)."""
    return secrets.token_hex(16)


def marker(token=None):
    """The end-of-activation line: OpenWhisk's plain marker, or the marker and ``token``."""
    return f"{SENTINEL} {token}" if token else SENTINEL


def init_value(name, main, code, binary, env=None):
    """The ``value`` of a ``POST /init`` body (``{"value": …}``): the code and how to call it.

    ``env`` values that are not strings are sent as JSON, as OpenWhisk does.
    """
    value = {
        "name": name,
        "main": main or "main",
        "binary": bool(binary),
        "env": {k: v if isinstance(v, str) else json.dumps(v) for k, v in (env or {}).items()},
    }
    if code:
        value["code"] = code
    return value


def run_body(
    value, *, namespace, action_name, action_version, activation_id, deadline_ms, api_key=None
):
    """The JSON body of ``POST /run``: the input plus the activation's context.

    Every key but ``value`` reaches the function as an ``__OW_<KEY>`` variable.
    """
    body = {
        "value": value,
        "namespace": namespace,
        "action_name": action_name,
        "action_version": action_version,
        "activation_id": activation_id,
        "transaction_id": activation_id,
        "deadline": str(int(deadline_ms)),
    }
    if api_key:
        body["api_key"] = api_key
    return body


def classify(status, body, size, limit=MAX_RESULT_BYTES):
    """``(outcome, result)`` of a ``/run`` answer by OpenWhisk's rules.

    200 with an object or array is success, 200 with ``{"error"}`` an application
    error; a result over ``limit`` bytes is an application error; any other
    status is a developer error carrying the body's ``error``; anything that is
    not a JSON object or array is a developer error.

    Args:
        status: The HTTP status of the answer.
        body: The parsed JSON body, or None when it was not JSON.
        size: The body's length in bytes.
        limit: The largest result in bytes (the server's setting; OpenWhisk's default 1 MB).
    """
    if status == 200 and limit and size > limit:
        return APPLICATION_ERROR, {
            "error": "The action produced a response that exceeded the allowed length: "
            f"{size} > {limit} bytes."
        }
    if isinstance(body, dict):
        if status == 200:
            if "error" in body:
                return APPLICATION_ERROR, {"error": body["error"]}
            return SUCCESS, body
        if "error" in body:
            return DEVELOPER_ERROR, {"error": body["error"]}
    elif isinstance(body, list) and status == 200:
        return SUCCESS, body
    return DEVELOPER_ERROR, None


def header(headers, name):
    """The value of header ``name`` in a dict of headers, whatever its case, or None."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def peak_memory(headers):
    """The activation's peak memory in bytes, as our runtime reports it (None otherwise)."""
    value = header(headers, PEAK_MEMORY_HEADER)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def annotation(entity, key, default=None):
    """The value of annotation ``key`` of an OpenWhisk entity or activation record."""
    for item in entity.get("annotations") or []:
        if isinstance(item, dict) and item.get("key") == key:
            return item.get("value")
    return default
