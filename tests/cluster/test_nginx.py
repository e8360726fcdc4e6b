"""End to end through a real nginx in front of two nodes: ``hash $arg_roomID consistent``
sends each room's sockets (and REST calls naming a room) to one node, the WebSocket upgrade
(and Sec-WebSocket-Protocol, the auth token) passes through, and a socket that reaches the
other node directly is proxied to the owner."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.harness import NodeClients, ServerProcess, free_port
from server.harness import Endpoint, connect_params

from .nodes import Cluster, lease_row, rest

pytestmark = [pytest.mark.interop, pytest.mark.postgres]

REQUIRE_NGINX = os.environ.get("REFLECTD_REQUIRE_NGINX", "") == "1"

#: the configuration of docs/deployment.md, with a temporary prefix and loopback ports
NGINX_CONF = """
daemon off;
worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream reflectd {{
        hash $arg_roomID consistent;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://reflectd;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Reflectd-Proxied "";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, prefix: Path, backends: list[ServerProcess]) -> None:
        self.port = free_port()
        self.prefix = prefix
        prefix.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{b.port};" for b in backends)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, servers=servers, port=self.port))
        nginx = shutil.which("nginx")
        assert nginx is not None
        self.proc = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while rest_status(self.url) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"nginx did not start:\n{(prefix / 'error.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def rest_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/", timeout=1) as answer:
            return int(answer.status)
    except (urllib.error.URLError, OSError):
        return 0


@pytest.fixture
def nginx_available() -> None:
    if shutil.which("nginx") is None:
        message = "the nginx test needs nginx on PATH (Debian: apt-get install -y nginx)"
        if REQUIRE_NGINX:
            pytest.fail(message + " and REFLECTD_REQUIRE_NGINX=1", pytrace=False)
        pytest.skip(message)


@pytest.fixture
def nginx_cluster(
    nginx_available: None, cluster: Cluster, tmp_path: Path
) -> Iterator[tuple[Nginx, list[ServerProcess]]]:
    nodes = cluster.start(2)
    proxy = Nginx(tmp_path / "nginx", nodes)
    try:
        yield proxy, nodes
    finally:
        proxy.stop()


def test_clients_through_nginx_reach_each_rooms_owner_and_converge(
    nginx_cluster: tuple[Nginx, list[ServerProcess]],
    cluster: Cluster,
    clients: NodeClients,
    room: str,
) -> None:
    proxy, nodes = nginx_cluster
    rooms = [f"{room}-{i}" for i in range(4)]
    for r in rooms:
        for j in range(3):
            name = f"{r}/{j}"
            clients.open(name, server=proxy.url, room_id=r, user_id=f"u{j}", auth=f"u{j}")
    futures = [
        clients.mutate_async(f"{r}/{j}", "increment", {"key": "n", "delta": 1}, timeout=60)
        for _ in range(20)
        for r in rooms
        for j in range(3)
    ]
    NodeClients.gather(futures, timeout=90)
    owners = {}
    for r in rooms:
        for j in range(3):
            clients.wait_for(f"{r}/{j}", "n", 60, timeout=30)
        # REST through nginx hashes on roomID too
        assert rest_via(proxy.url, r) == {"n": 60}
        owner, _, live = lease_row(cluster.db, r) or ("", 0, False)
        assert live
        owners[r] = owner
    # nginx sent every socket of a room to its owner: nobody had to proxy
    for node in nodes:
        assert "proxying a socket" not in node.log_path.read_text()

    # a socket that reaches the other node directly is carried to the owner
    first = rooms[0]
    other = next(n for n in nodes if n.name != owners[first])
    clients.open("direct", server=other.url, room_id=first, user_id="d", auth="d")
    clients.mutate("direct", "increment", {"key": "n", "delta": 1})
    for j in range(3):
        clients.wait_for(f"{first}/{j}", "n", 61)
    assert "proxying a socket" in other.log_path.read_text()
    clients.assert_healthy()


def rest_via(url: str, room_id: str) -> object:
    node = ServerProcess("nginx", [], port=int(url.rsplit(":", 1)[1]), cwd=Path(), log_path=Path())
    status, body = rest(node, "GET", "/rooms/contents", roomID=room_id)
    assert status == 200, body
    assert isinstance(body, dict)
    return body["contents"]


def test_a_clients_proxied_header_is_stripped_by_nginx_and_ignored_by_the_nodes(
    nginx_available: None, cluster: Cluster, tmp_path: Path, room: str
) -> None:
    """A client's ``x-reflectd-proxied`` used to pass nginx and exempt its sockets from
    ``--max-connections-per-address`` (20 sockets where 3 were allowed). nginx now drops it,
    and a node ignores one that no node signed, through nginx or not."""
    cluster.extra_args = ["--max-connections-per-address", "3"]
    nodes = cluster.start(2)
    proxy = Nginx(tmp_path / "nginx", nodes)
    try:
        via_nginx = asyncio.run(_sockets_with_the_header(int(proxy.url.rsplit(":", 1)[1]), room))
        direct = asyncio.run(_sockets_with_the_header(nodes[0].port, room + "-direct"))
    finally:
        proxy.stop()
    assert via_nginx == ["connected"] * 3 + ["too many connections from 127.0.0.1 (the limit is 3)"]
    assert direct == via_nginx
    logs = [node.log_path.read_text() for node in nodes]
    assert sum("ignored a x-reflectd-proxied header" in log for log in logs) == 1  # direct only


async def _sockets_with_the_header(port: int, room_id: str) -> list[str]:
    """Open 4 sockets to one room, each with a forged header: what each was answered."""
    endpoint = Endpoint(port)
    forged = {"additional_headers": {"x-reflectd-proxied": "node0"}}
    answers = []
    for i in range(4):
        params = connect_params(
            client_id=f"c{i}", room_id=room_id, user_id="u1", client_group_id=f"g{i}"
        )
        client = await endpoint.open(params, protocol="u1", **forged)  # the test app's auth
        frame = await client.recv()
        answers.append("connected" if frame[0] == "connected" else frame[2])
    await endpoint.close_clients()
    return answers
