"""The action runtime: the one process inside every function image.

Images run it as ``python3 /faas/runtime.py``, with ``faas_protocol.py`` (the protocol's
constants and rules) beside it. It uses only the standard library and runs on Python 3.9+,
so any Debian or ``python:3.x-slim`` base image can carry it. It speaks three platforms'
container contracts at once:

OpenWhisk (the action protocol that the invoker talks to container-IP:8080):
    * ``POST /init`` ``{"value": {"name", "main", "binary", "code", "env"}}`` loads the code once;
      a second init answers 403 unless ``FAAS_ALLOW_REINIT=1`` (the local tester sets it so a
      code-only edit reuses a warm container with its imported libraries). Plain text code is
      Python, unless it starts with a non-Python ``#!`` line (then it is a native executable).
      ``binary`` code is a base64 zip holding ``exec`` (native) or ``__main__.py``/``handler.py``.
      Without code the baked function is used, so blackbox images accept a code-less init.
    * ``POST /run`` ``{"value": {...}, "activation_id": ..., ...}`` calls ``main(value)`` or runs
      the executable with the JSON as argv[1] and on stdin (its last stdout line is the result).
      Every other key K becomes the env var ``__OW_<K>``. 200 + object/array is success, 200 +
      ``{"error"}`` an application error, 502 + ``{"error"}`` a failure. The line
      ``XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX`` then goes to stdout and stderr, which are the
      activation's logs. Headers ``X-Faas-Peak-Memory`` (bytes) and ``X-Faas-Duration-Ms``
      report the activation's peak resident memory and run time.
OpenFaaS:
    Creates the lock file ``/tmp/.lock``, serves ``GET /_/health`` and ``GET /_/ready`` (503
    while no code is loaded), and treats any other ``POST`` path as a JSON-in/JSON-out call.
Knative:
    Listens on ``$PORT``; with ``__OW_RUNTIME_PLATFORM=knative``, ``POST /`` also accepts the
    single-entrypoint shape ``{"init": {...}, "activation": {...}, "value": {...}}`` (so there a
    plain call whose JSON has one of those three keys is read as that shape).

Baked code, in order: ``$__OW_ACTION_CODE`` (with ``__OW_ACTION_MAIN``, ``__OW_ACTION_BINARY``),
``$FAAS_FUNCTION_DIR/handler.py`` (function ``$FAAS_HANDLER``, default ``main``), or the
executable ``$FAAS_ACTION_DIR/exec``. Other settings: ``PORT`` (8080), ``FAAS_BIND`` (0.0.0.0),
``FAAS_ACTION_DIR`` (/action), ``FAAS_FUNCTION_DIR`` (/faas/function), ``FAAS_LOCK_FILE``
(/tmp/.lock). Activations run one at a time (OpenWhisk concurrency 1).

Tenant isolation, under our own invokers only (both are off on the platforms above):
    * ``FAAS_RUNTIME_SECRET`` (or ``FAAS_RUNTIME_SECRET_FD``): every POST must carry it in
      ``X-Faas-Secret`` or gets 403, so a neighbouring sandbox cannot /init or /run this one.
      The runtime re-executes itself without the variable, so neither ``os.environ`` nor
      /proc/<pid>/environ shows it to the function.
    * ``faas_log_token`` in a /init or /run body is removed before the function sees the
      body and printed after the marker, so output imitating the marker cannot cut the logs.
    * A request is read in full (``FAAS_MAX_REQUEST_BYTES``, default 64 MB; 10 s once started)
      before the activation lock is taken, so a stalled client delays no one else.
"""

import base64
import hmac
import http.server
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import zipfile

try:
    from . import faas_protocol as protocol  # imported as jupyter_faas.runtime.proxy
except ImportError:
    import faas_protocol as protocol  # run as a script: faas_protocol.py lies beside it

SENTINEL = protocol.SENTINEL
MODULE_NAME = "__faas_action__"
ARGV_LIMIT = 131071  # larger arguments go to a native executable on stdin only
ACTION_DIR = os.environ.get("FAAS_ACTION_DIR", "/action")
FUNCTION_DIR = os.environ.get("FAAS_FUNCTION_DIR", "/faas/function")
KNATIVE = os.environ.get("__OW_RUNTIME_PLATFORM", "").lower() == "knative"
#: Seconds a started request may take to arrive in full (headers and body); idle kept-alive
#: connections wait without limit, as before.
READ_TIMEOUT_S = float(os.environ.get("FAAS_READ_TIMEOUT_S") or 10)
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
NO_CODE = "The action has no code: call /init with code first."


class ActionError(Exception):
    """A failure answered as ``{"error": message}`` with HTTP ``status``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def describe(err):
    """``ExcType: message`` (just the type when the message is empty)."""
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def env_string(value):
    """An env var value: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def print_sentinels(token=None):
    """Mark the end of an activation's logs on both streams, after the function's own output.

    With the invoker's ``token`` after the marker, output imitating it cannot end the logs.
    """
    line = protocol.marker(token) + "\n"
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
        stream.write(line)
        stream.flush()


def pop_token(message):
    """Remove the log token from a request body (the function never sees it); None if absent."""
    token = message.pop(protocol.LOG_TOKEN_KEY, None) if isinstance(message, dict) else None
    return token if isinstance(token, str) and TOKEN_RE.fullmatch(token) else None


def max_request_bytes():
    try:
        return int(os.environ.get(protocol.MAX_REQUEST_ENV) or protocol.MAX_REQUEST_BYTES)
    except ValueError:
        return protocol.MAX_REQUEST_BYTES


def read_secret():
    """The sandbox secret, kept out of the environment the function can read.

    From ``FAAS_RUNTIME_SECRET_FD`` (read and closed), or ``FAAS_RUNTIME_SECRET``: then the
    runtime re-executes itself without it and hands it over on a pipe, because the initial
    environment stays readable in /proc/<pid>/environ for the life of a process. None when
    neither is set (real OpenWhisk, OpenFaaS, Knative): requests are not checked.
    """
    fd = os.environ.pop(protocol.SECRET_FD_ENV, None)
    if fd is not None:
        try:
            with os.fdopen(int(fd), "rb") as f:
                secret = f.read(4096).strip()
        except (OSError, ValueError) as err:
            sys.exit(f"faas runtime: cannot read the secret from fd {fd}: {err}")
        if not secret:
            sys.exit("faas runtime: the secret passed on a file descriptor is empty")
        return secret
    secret = os.environ.pop(protocol.SECRET_ENV, None)
    if not secret:
        return None
    read_end, write_end = os.pipe()
    os.write(write_end, secret.encode())
    os.close(write_end)
    os.set_inheritable(read_end, True)
    env = {**os.environ, protocol.SECRET_FD_ENV: str(read_end)}
    argv = getattr(sys, "orig_argv", None) or [
        sys.executable,
        *subprocess._args_from_interpreter_flags(),
        *sys.argv,
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def reset_peak():
    """Reset this process's VmHWM (Linux >= 4.0) so the next reading covers one activation."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux or not writable: the reading then covers the process's lifetime


def read_peak():
    """This process's peak resident memory in bytes, or None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def action_dir():
    """``FAAS_ACTION_DIR``, or a folder under /tmp where the root filesystem is read-only."""
    for folder in (ACTION_DIR, os.path.join(tempfile.gettempdir(), "faas-action")):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise ActionError(502, f"No writable folder for the action code (tried {ACTION_DIR} and /tmp).")


class PythonAction:
    """A Python function called in this process, so imported libraries stay warm."""

    def __init__(self, func):
        self.func = func

    def call(self, value, init_env, run_env):
        os.environ.update(init_env)
        os.environ.update(run_env)  # OpenWhisk Python actions read their context from os.environ
        reset_peak()
        try:
            status, result = 200, self.func(value)
        except (Exception, SystemExit) as err:
            traceback.print_exc()
            status, result = 502, {"error": describe(err)}
        finally:
            for key in run_env:  # never leak one activation's api_key into the next
                os.environ.pop(key, None)
        return status, result, read_peak()


class NativeAction:
    """An executable run once per activation, as OpenWhisk's dockerskeleton does."""

    def __init__(self, path):
        self.path = path

    def call(self, value, init_env, run_env):
        args = json.dumps(value).encode()
        argv = [self.path, args.decode()] if len(args) < ARGV_LIMIT else [self.path]
        env = {**os.environ, **init_env, **run_env}
        sys.stderr.flush()
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(
                    argv, cwd=os.path.dirname(self.path), env=env, stdin=subprocess.PIPE, stdout=out
                )
            except OSError as err:
                raise ActionError(
                    502, f"The action executable could not be started: {err}"
                ) from err
            threading.Thread(target=feed, args=(proc.stdin, args), daemon=True).start()
            # wait4 rather than proc.wait(): it also gives the child's peak memory.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)  # exit status ignored, as upstream
            out.seek(0)
            lines = out.read().decode("utf-8", "replace").rstrip().splitlines()
        last = lines.pop() if lines else ""
        try:
            result = json.loads(last)
        except ValueError:
            result, lines = None, lines + [last]
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
        peak = usage.ru_maxrss * 1024
        if not isinstance(result, (dict, list)):
            return 502, {"error": "The action did not return a dictionary or array."}, peak
        return 200, result, peak


def feed(pipe, data):
    """Write ``data`` to a child's stdin; a child that does not read it is fine."""
    try:
        with pipe:
            pipe.write(data)
    except OSError:
        pass  # the child exited without reading its stdin


def forget_modules(folder):
    """Drop modules imported from ``folder`` so a re-init sees edited helper files."""
    prefix = os.path.join(folder, "")
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(prefix):
            del sys.modules[name]


def load_python(path, main, source=None):
    """Execute ``path`` as a fresh module ``__faas_action__`` and return its function ``main``."""
    if source is None:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    try:
        code = compile(source, path, "exec")
    except SyntaxError as err:
        raise ActionError(
            502, f"SyntaxError in the action code, line {err.lineno}: {err.msg}"
        ) from None
    except ValueError as err:
        raise ActionError(502, f"The action code cannot be compiled: {err}") from None
    folder = os.path.dirname(os.path.abspath(path))
    forget_modules(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = path
    sys.modules[MODULE_NAME] = module  # so pickle and dataclasses can find the module
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as err:
        traceback.print_exc()
        raise ActionError(502, f"{describe(err)} (raised while loading the action code)") from None
    func = module.__dict__.get(main)
    if not callable(func):
        raise ActionError(502, f"The action code defines no function {main!r}.")
    return PythonAction(func)


def write_file(path, text, mode):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


def load_code(code, main, binary):
    """Turn /init code (text or base64 zip) into an action."""
    folder = action_dir()
    if binary:
        try:
            archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(code)))
            names = set(archive.namelist())
            archive.extractall(folder)
        except (ValueError, zipfile.BadZipFile) as err:
            raise ActionError(
                502, f"The binary action code is not a base64-encoded zip ({err})."
            ) from None
        if "exec" in names:
            os.chmod(os.path.join(folder, "exec"), 0o755)
            return NativeAction(os.path.join(folder, "exec"))
        for name in ("__main__.py", "handler.py"):
            if name in names:
                return load_python(os.path.join(folder, name), main)
        raise ActionError(
            502, "The zip holds none of 'exec', '__main__.py' or 'handler.py' at its top level."
        )
    first_line = code.split("\n", 1)[0]
    if first_line.startswith("#!") and "python" not in first_line:
        write_file(os.path.join(folder, "exec"), code, 0o755)
        return NativeAction(os.path.join(folder, "exec"))
    path = os.path.join(folder, "__main__.py")
    write_file(path, code, 0o644)  # a real file, so tracebacks show the source lines
    return load_python(path, main, code)


def load_baked():
    """The code baked into the image, or None when there is none."""
    code = os.environ.get("__OW_ACTION_CODE")
    if code:
        binary = os.environ.get("__OW_ACTION_BINARY", "").lower() in ("1", "true")
        return load_code(code, os.environ.get("__OW_ACTION_MAIN") or "main", binary)
    handler = os.path.join(FUNCTION_DIR, "handler.py")
    if os.path.isfile(handler):
        return load_python(handler, os.environ.get("FAAS_HANDLER") or "main")
    exe = os.path.join(ACTION_DIR, "exec")
    if os.path.isfile(exe) and os.access(exe, os.X_OK):
        return NativeAction(exe)
    return None


def find_unserialisable(value, path, depth=0):
    """``(path, type name)`` of the first value JSON cannot encode, or None."""
    if value is None or isinstance(value, (str, int, float, bool)) or depth > 100:
        return None
    if not isinstance(value, (dict, list, tuple)):
        return path, type(value).__name__
    for key, item in value.items() if isinstance(value, dict) else enumerate(value):
        if not (key is None or isinstance(key, (str, int, float, bool))):
            return f"a key of {path}", type(key).__name__
        found = find_unserialisable(item, f"{path}[{key!r}]", depth + 1)
        if found:
            return found
    return None


def encode_result(result):
    """The JSON bytes of a function's result, or an ActionError saying what is wrong with it."""
    if not isinstance(result, (dict, list)):
        raise ActionError(
            502,
            "The action did not return a dictionary or array "
            f"(it returned {type(result).__name__}).",
        )
    try:
        return json.dumps(result, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as err:
        found = find_unserialisable(result, "result")
        why = f"value at {found[0]} has type {found[1]}" if found else str(err)
        raise ActionError(
            502,
            f"The action's result is not JSON-serialisable: {why}; "
            "convert it (e.g. .tolist(), str()) before returning.",
        ) from None


class Runtime:
    """The loaded action and the /init, /run and plain-invocation logic (no HTTP)."""

    def __init__(self):
        self.allow_reinit = os.environ.get(protocol.ALLOW_REINIT_ENV, "").lower() in ("1", "true")
        self.initialized = False
        self.last_init = None
        self.init_env = {}
        self.baked_error = None
        try:
            self.baked = load_baked()
        except ActionError as err:
            self.baked, self.baked_error = None, str(err)
            sys.stderr.write(f"faas runtime: the baked function failed to load: {err}\n")
        self.action = self.baked

    def init(self, message, repeat_ok=False):
        value = message.get("value") if isinstance(message, dict) else None
        if not isinstance(value, dict):
            raise ActionError(400, 'The /init body must be {"value": {"code": ..., "main": ...}}.')
        if repeat_ok and self.initialized and value == self.last_init:
            return
        if self.initialized and not self.allow_reinit:
            raise ActionError(403, "Cannot initialize the action more than once.")
        env = value.get("env") or {}
        if not isinstance(env, dict):
            raise ActionError(400, 'The /init "env" must be an object of names to values.')
        code = value.get("code") or ""
        if not isinstance(code, str):
            raise ActionError(400, 'The /init "code" must be a string (base64 when "binary").')
        if code:
            self.action = load_code(code, value.get("main") or "main", bool(value.get("binary")))
        elif self.baked_error:
            raise ActionError(502, self.baked_error)
        else:
            self.action = self.baked
        self.init_env = {str(k): env_string(v) for k, v in env.items()}
        self.initialized, self.last_init = True, value

    def activate(self, payload):
        """Run one activation; returns ``(status, body, headers)``."""
        if not isinstance(payload, dict):
            raise ActionError(400, 'The /run body must be a JSON object {"value": {...}, ...}.')
        value = payload.get("value", {})
        if not isinstance(value, (dict, list)):
            raise ActionError(
                400, "The action did not receive a dictionary or array as an argument."
            )
        if self.action is None:
            raise ActionError(502, NO_CODE)
        run_env = {f"__OW_{k.upper()}": env_string(v) for k, v in payload.items() if k != "value"}
        start = time.perf_counter()
        status, result, peak = self.action.call(value, self.init_env, run_env)
        headers = {protocol.DURATION_HEADER: f"{(time.perf_counter() - start) * 1000:.3f}"}
        if peak:
            headers[protocol.PEAK_MEMORY_HEADER] = str(peak)
        if status == 200:
            try:
                result = encode_result(result)
            except ActionError as err:
                status, result = err.status, {"error": str(err)}
        return status, result, headers

    def knative(self, message):
        """Knative single entrypoint: init and/or activation in one request (protocols B.7)."""
        if "init" in message:
            self.init({"value": message["init"]}, repeat_ok=True)
            if "activation" not in message and "value" not in message:
                return 200, {"ok": True}, {}
        activation = message.get("activation") or {}
        if not isinstance(activation, dict):
            raise ActionError(400, 'The "activation" field must be a JSON object.')
        return self.activate({**activation, "value": message.get("value", {})})

    def invoke(self, message):
        """OpenFaaS-style call: the request JSON is the function's argument."""
        if self.action is None:
            raise ActionError(503, self.baked_error or NO_CODE)
        status, result, headers = self.activate({"value": message})
        return (500 if status == 502 else status), result, headers


def parse_json(data, path, empty=None):
    if not data.strip() and empty is not None:
        return empty
    try:
        return json.loads(data)
    except ValueError as err:
        raise ActionError(
            400, f"The body of POST {path} is not valid JSON ({err}); send a JSON object."
        ) from None


class Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; each response leaves in one write with TCP_NODELAY (no Nagle stall)."""

    protocol_version = "HTTP/1.1"
    server_version = "faas-runtime"
    runtime = None
    lock = threading.Lock()
    #: The sandbox secret (bytes) every POST must carry; None: requests are not checked.
    secret = None
    max_request = protocol.MAX_REQUEST_BYTES

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):
        """Silent: stdout and stderr are the activations' logs."""

    def do_GET(self):
        if self.path in ("/_/health", "/_/ready"):
            if self.runtime.action is not None:
                return self.respond(200, "OK")
            return self.respond(503, self.runtime.baked_error or "No function code is loaded.")
        self.respond(
            404, {"error": f"No such endpoint: GET {self.path}. Use POST /init, /run or /."}
        )

    def handle_one_request(self):
        """Wait as long as it takes for a request, then give it READ_TIMEOUT_S to arrive."""
        self.connection.settimeout(None)
        try:
            waiting = self.rfile.peek(1)
        except OSError:
            waiting = b""
        if not waiting:
            self.close_connection = True
            return
        self.connection.settimeout(READ_TIMEOUT_S)
        super().handle_one_request()

    def do_POST(self):
        # The whole request is read and checked before the lock: a slow or silent client
        # holds only its own connection, never the activations of the others.
        path = self.path.split("?", 1)[0]
        try:
            self.authenticate()
            data = self.read_body()
        except ActionError as err:
            self.close_connection = True  # its body may be unread
            return self.respond(err.status, {"error": str(err)})
        with self.lock:
            try:
                status, body, headers = self.route(path, data)
            except ActionError as err:
                status, body, headers = err.status, {"error": str(err)}, {}
            except Exception as err:  # a runtime bug: say so, keep serving
                traceback.print_exc()
                status, body, headers = 500, {"error": f"The runtime failed: {describe(err)}"}, {}
        if path in ("/init", "/run"):
            headers = {**headers, protocol.LOG_TOKEN_HEADER: "1"}
        self.respond(status, body, headers)

    def authenticate(self):
        """Refuse a request without this sandbox's secret (when it has one)."""
        if self.secret is None:
            return
        given = (self.headers.get(protocol.SECRET_HEADER) or "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, self.secret):
            raise ActionError(403, "Forbidden: this runtime answers its own invoker only.")

    def route(self, path, data):
        if path == "/init":
            token = None
            try:
                message = parse_json(data, path)
                token = pop_token(message)
                self.runtime.init(message)
            except ActionError:
                print_sentinels(token)
                raise
            return 200, {"ok": True}, {}
        if path == "/run":
            token = None
            try:
                payload = parse_json(data, path)
                token = pop_token(payload)
                return self.runtime.activate(payload)
            finally:
                print_sentinels(token)
        message = parse_json(data, path, empty={})
        if KNATIVE and path == "/" and isinstance(message, dict):
            if message.keys() & {"init", "activation", "value"}:
                try:
                    return self.runtime.knative(message)
                finally:
                    print_sentinels()
        return self.runtime.invoke(message)

    def read_body(self):
        """The request body, at most ``max_request_bytes`` (413 beyond)."""
        limit = self.max_request
        too_large = ActionError(413, f"The request body exceeds {limit} bytes.")
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks, total = [], 0
                while True:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                    if size < 0:
                        raise ValueError(size)
                    if size == 0:
                        while self.rfile.readline(65537).strip():
                            pass
                        return b"".join(chunks)
                    total += size
                    if total > limit:
                        raise too_large
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline(1024)
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
            if length > limit:
                raise too_large
            data = self.rfile.read(length)
            if len(data) < length:
                self.close_connection = True
                raise ActionError(400, "The request body ended early.")
            return data
        except ValueError:
            raise ActionError(400, "Bad Content-Length or chunk size in the request.") from None

    def respond(self, status, body, headers=None):
        if isinstance(body, bytes):
            data, kind = body, "application/json"
        elif isinstance(body, str):
            data, kind = body.encode(), "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {kind}"]
        lines.append(f"Content-Length: {len(data)}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    Handler.secret = read_secret()  # first: before the function's code is loaded
    Handler.max_request = max_request_bytes()
    Handler.runtime = Runtime()
    lock_file = os.environ.get("FAAS_LOCK_FILE", "/tmp/.lock")
    try:
        open(lock_file, "a").close()  # OpenFaaS probes may check that this file exists
    except OSError as err:
        sys.stderr.write(f"faas runtime: cannot create the lock file {lock_file}: {err}\n")
    # As PID 1 in a container, SIGTERM is ignored unless handled: exit at once instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bind, port = os.environ.get("FAAS_BIND", "0.0.0.0"), int(os.environ.get("PORT") or 8080)
    server = Server((bind, port), Handler)
    sys.stderr.write(f"faas runtime: listening on {bind}:{port}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
