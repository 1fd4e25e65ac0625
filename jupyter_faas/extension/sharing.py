"""The sidebar's Shared section under ``{base_url}faas/api/shared``: publish, list,
invoke and copy functions other namespaces published (OpenWhisk published packages).

Routes are listed at the bottom; they share the handlers' base, error shape and
quick executor (``FaaSHandler``).
"""

from __future__ import annotations

from tornado import web

from ..bundle import check_name
from ..deployers import Accepted
from .handlers import FaaSHandler, _object, _text, activation_detail


def _optional_text(body: dict, key: str, example: str) -> str:
    return _text(body, key, example) if body.get(key) not in (None, "") else ""


class SharedHandler(FaaSHandler):
    """``GET``: what every namespace published; ``POST``: publish; ``DELETE``: unpublish."""

    _example = '{"name": "peaks", "package": "shared", "description": "Peaks above a threshold"}'

    @web.authenticated
    async def get(self) -> None:
        """The published functions, each with owner, description, contract and version."""
        found = await self.faas.call((await self.actor()).workspace.deployer.shared)
        self.send_json({"functions": [f.to_json() for f in found]})

    @web.authenticated
    async def post(self) -> None:
        """Publish one's deployed function: its shared entry."""
        body = self.json_body(("name", "package", "description"), self._example)
        name = check_name(_text(body, "name", self._example))
        package = _optional_text(body, "package", self._example)
        description = _optional_text(body, "description", self._example)
        deployer = (await self.actor()).workspace.deployer
        shared = await self.faas.call(deployer.publish, name, package, description)
        self.send_json(shared.to_json())

    @web.authenticated
    async def delete(self) -> None:
        """Unpublish ?name= (from ?package=, default the deployer's)."""
        name = self.name_argument(required=True)
        package = self.get_query_argument("package", "")
        await self.faas.call((await self.actor()).workspace.deployer.unpublish, name, package)
        self.send_json({"name": name, "published": False})


class SharedInvokeHandler(FaaSHandler):
    _example = '{"ref": "alice/shared/peaks", "input": {"threshold": 3}}'

    @web.authenticated
    async def post(self) -> None:
        """Invoke a shared function (``OWNER/PACKAGE/NAME``); the run is the caller's."""
        body = self.json_body(("ref", "input"), self._example)
        ref = _text(body, "ref", self._example)
        params = _object(body, "input") or {}
        workspace = (await self.actor()).workspace
        workspace.check_payload(params, f"The input of {ref}")
        record = await self.faas.call(workspace.deployer.invoke, ref, params, True)
        if isinstance(record, Accepted):
            self.send_json({"activationId": record.activation_id}, status=202)
        else:
            self.send_json(activation_detail(record, None))


class SharedPullHandler(FaaSHandler):
    _example = '{"ref": "alice/shared/peaks", "as": "my-peaks"}'

    @web.authenticated
    async def post(self) -> None:
        """Copy a shared function's bundle into this server's bundle folder as ``as`` (default
        its own name); returns the folder and the ``%%faas`` cell to put in a notebook."""
        body = self.json_body(("ref", "as"), self._example)
        ref = _text(body, "ref", self._example)
        name = check_name(_optional_text(body, "as", self._example) or ref.rpartition("/")[2])
        workspace = (await self.actor()).workspace
        pulled = await self.faas.call(workspace.deployer.pull, ref)
        bundle = await self.faas.call(pulled.write_bundle, workspace.bundle_path(name), name)
        self.send_json(
            {
                "name": name,
                "ref": pulled.ref,
                "version": pulled.version,
                "path": self.faas.relative(bundle.path.resolve()),
                "cell": pulled.cell_text(name),
            }
        )


sharing_handlers = [
    (r"/faas/api/shared", SharedHandler),
    (r"/faas/api/shared/invoke", SharedInvokeHandler),
    (r"/faas/api/shared/pull", SharedPullHandler),
]
