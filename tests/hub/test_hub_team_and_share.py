"""Working together on a real hub: the team folder, a server shared with JupyterHub's
sharing, and real-time collaboration in it.

Alice and Bob get servers; Carol has an account and no share. Each call goes through the
hub's proxy with that user's own token, as their browsers' calls do.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from hubtools import Kernel
from support import loopback

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def team(hub):
    """aliceRUN and bobRUN with servers, carolRUN without; each with a token that inherits
    the owner's permissions (shares granted later included), as a browser login's does."""
    rid = uuid.uuid4().hex[:6]
    names = {short: f"{short}{rid}" for short in ("alice", "bob", "carol")}
    for name in names.values():
        hub.add_user(name)
    for short in ("alice", "bob"):
        hub.start_server(names[short])
    found = {}
    for short, name in names.items():
        if short != "carol":
            hub.wait_ready(name)
        found[short] = {"name": name, "token": _token(hub, name)}
    return found


def _token(hub, name: str) -> str:
    resp = hub.api(
        "POST",
        f"users/{name}/tokens",
        json={"scopes": ["inherit"], "expires_in": 7200, "note": "team tests"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


def lab(hub, owner: dict, caller: dict, method: str, path: str, **kwargs) -> requests.Response:
    """``caller`` calls ``owner``'s Jupyter server API through the hub's proxy."""
    return loopback().request(
        method,
        f"{hub.url}/user/{owner['name']}/api/{path}",
        headers={"Authorization": f"token {caller['token']}"},
        timeout=60,
        **kwargs,
    )


def write_text(hub, owner, caller, path: str, text: str) -> requests.Response:
    return lab(
        hub,
        owner,
        caller,
        "PUT",
        f"contents/{path}",
        json={"type": "file", "format": "text", "content": text},
    )


def test_the_team_folder_is_one_writable_folder_in_every_server(hub, team):
    alice, bob = team["alice"], team["bob"]
    for person in (alice, bob):
        folder = lab(hub, person, person, "GET", "contents/team?content=0")
        assert folder.status_code == 200, folder.text
        assert folder.json()["type"] == "directory" and folder.json()["writable"] is True
    note = f"from alice {uuid.uuid4().hex}"
    name = f"team/note-{uuid.uuid4().hex[:8]}.txt"
    assert write_text(hub, alice, alice, name, note).status_code in (200, 201)
    read = lab(hub, bob, bob, "GET", f"contents/{name}?type=file&format=text")
    assert read.status_code == 200 and read.json()["content"] == note, read.text
    # And back: Bob's edit is what Alice reads next.
    assert write_text(hub, bob, bob, name, note + "\nand bob").status_code == 200
    read = lab(hub, alice, alice, "GET", f"contents/{name}?type=file&format=text")
    assert read.json()["content"] == note + "\nand bob"


def test_a_shared_server_admits_the_guest_and_nobody_else(hub, team):
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    # Before the share, with another token of Bob's: Alice's server caches the hub's
    # answer about a token for minutes, so the token used after the share is fresh there.
    before = {**bob, "token": _token(hub, bob["name"])}
    assert lab(hub, alice, before, "GET", "contents").status_code == 403
    # Only the owner may share a server (the hub answers as if there were none).
    resp = hub.api("POST", f"shares/{alice['name']}/", bob["token"], json={"user": carol["name"]})
    assert resp.status_code == 404, resp.text
    resp = hub.api("POST", f"shares/{alice['name']}/", alice["token"], json={"user": bob["name"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["scopes"] == [f"access:servers!server={alice['name']}/"]
    shared = hub.api("GET", f"users/{bob['name']}/shared", bob["token"]).json()["items"]
    assert [s["server"]["user"]["name"] for s in shared] == [alice["name"]]
    # Bob works in Alice's server with his own token; Carol still cannot get in.
    mine = f"work/by-bob-{uuid.uuid4().hex[:8]}.txt"
    assert write_text(hub, alice, bob, mine, "bob was here").status_code == 201
    read = lab(hub, alice, alice, "GET", f"contents/{mine}?type=file&format=text")
    assert read.json()["content"] == "bob was here"
    assert lab(hub, alice, carol, "GET", "contents").status_code == 403
    assert lab(hub, bob, carol, "GET", "contents").status_code == 403
    assert lab(hub, bob, alice, "GET", "contents").status_code == 403  # not mutual


def test_a_kernel_in_a_shared_server_acts_as_its_owner(hub, team):
    """What a guest's deploy can do today: a kernel (and the %%faas magics in it) has the
    owner's token and namespace key, whoever runs the cell; the guest's own token, which
    the guest's browser holds, names the guest to the faas service."""
    alice, bob = team["alice"], team["bob"]
    kernel = Kernel(hub, alice["name"], bob["token"])  # Bob's session on Alice's server
    try:
        out = kernel.run(
            "import os, requests\n"
            "r = requests.get(os.environ['FAAS_HUB_SERVICE_URL'] + 'api/namespace',\n"
            "    headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})\n"
            "print(r.json()['namespace'], os.environ['__OW_API_KEY'] == r.json()['api_key'])"
        )
    finally:
        kernel.close()
    assert out.error is None, out.error
    assert out.text.split() == [alice["name"], "True"]
    mine = hub.service("GET", "api/namespace", bob["token"])
    assert mine.status_code == 200 and mine.json()["namespace"] == bob["name"]


#: Two Y clients of one text file in the owner's server, run in the owner's kernel (the
#: container has pycrdt, which jupyter-collaboration brings; the test host has not). The
#: first writes a line, the second must see it; both sync as y-websocket clients do.
COLLABORATE = """
import asyncio, json, urllib.request
from pycrdt import Doc, Text, YMessageType, create_sync_message, create_update_message
from pycrdt import handle_sync_message
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

BASE = "http://127.0.0.1:8888" + os.environ["JUPYTERHUB_SERVICE_PREFIX"] + "api/collaboration"

def session(token):
    request = urllib.request.Request(
        BASE + "/session/" + {path!r}, method="PUT",
        data=json.dumps({{"format": "text", "type": "file"}}).encode(),
        headers={{"Authorization": "token " + token, "Content-Type": "application/json"}})
    return json.load(urllib.request.urlopen(request))

async def connect(token):
    found = session(token)
    doc = Doc()
    text = doc.get("source", type=Text)
    url = (BASE.replace("http", "ws") + "/room/text:file:" + found["fileId"]
           + "?sessionId=" + found["sessionId"])
    ws = await websocket_connect(HTTPRequest(url, headers={{"Authorization": "token " + token}}))
    await ws.write_message(create_sync_message(doc), binary=True)
    return found["fileId"], doc, text, ws

async def pump(ws, doc, done):
    while not done():
        message = await asyncio.wait_for(ws.read_message(), 120)
        assert message is not None, "the room closed the connection"
        if message[0] == YMessageType.SYNC:
            reply = handle_sync_message(message[1:], doc)
            if reply is not None:
                await ws.write_message(reply, binary=True)

async def collaborate():
    file_a, doc_a, text_a, ws_a = await connect({owner!r})
    file_b, doc_b, text_b, ws_b = await connect({guest!r})
    await pump(ws_a, doc_a, lambda: str(text_a) == {start!r})
    await pump(ws_b, doc_b, lambda: str(text_b) == {start!r})
    before = doc_a.get_state()
    text_a += {line!r}
    await ws_a.write_message(create_update_message(doc_a.get_update(before)), binary=True)
    await pump(ws_b, doc_b, lambda: {line!r} in str(text_b))
    seen = str(text_b)
    ws_a.close(); ws_b.close()
    return file_a == file_b, seen

same_file, seen = await collaborate()
print(json.dumps({{"same_file": same_file, "seen": seen}}))
"""


def test_two_users_edit_one_document_in_real_time(hub, team):
    """jupyter-collaboration in the single-user image: Alice's and Bob's clients (each with
    its user's token) join the same room of Alice's server; what Alice types reaches Bob's
    copy and, saved by the server, the file."""
    alice, bob = team["alice"], team["bob"]
    resp = hub.api("POST", f"shares/{alice['name']}/", alice["token"], json={"user": bob["name"]})
    assert resp.status_code == 200, resp.text  # granting again is allowed
    path = f"work/together-{uuid.uuid4().hex[:8]}.txt"
    start = "first line\n"
    assert write_text(hub, alice, alice, path, start).status_code == 201
    line = f"typed by alice {uuid.uuid4().hex}\n"
    code = "import os\n" + COLLABORATE.format(
        path=path, owner=alice["token"], guest=bob["token"], start=start, line=line
    )
    kernel = Kernel(hub, alice["name"], alice["token"])
    try:
        out = kernel.run(code)
    finally:
        kernel.close()
    assert out.error is None, f"{out.error}\n{out.text}"
    found = json.loads(out.text.strip().splitlines()[-1])
    assert found == {"same_file": True, "seen": start + line}
    # The room saves the document (after its save delay): the file has Alice's line.
    saved = None
    for _ in range(60):
        saved = lab(hub, alice, alice, "GET", f"contents/{path}?type=file&format=text").json()
        if saved["content"] == start + line:
            break
        time.sleep(1)
    assert saved["content"] == start + line, saved
