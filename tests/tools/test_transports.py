"""The MCP server as clients meet it: `sage mcp` over stdio and over streamable HTTP on loopback."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")
import httpx2  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

SAGE = str(Path(sys.executable).with_name("sage"))


def env(tmp_path, **extra):
    return {**os.environ, "SAGE_HOME": str(tmp_path), **extra}


async def solve(client):
    tools = {t.name for t in (await client.list_tools()).tools}
    result = await client.call_tool("solve_sudoku", {"puzzle": "4300000000212030"})
    return tools, result


def test_sage_mcp_over_stdio_with_a_real_subprocess(tmp_path):
    params = StdioServerParameters(command=SAGE, args=["mcp"], env=env(tmp_path))

    async def go():
        async with Client(params) as client:
            return await solve(client)
    tools, result = anyio.run(go)
    assert {"solve_sudoku", "solve_maze", "run_pipeline", "list_plugins"} <= tools
    assert not result.is_error and result.structured_content["verified"]
    assert result.structured_content["answer"][0] == [4, 3, 1, 2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen([SAGE, "mcp", "--http", "--port", str(port)], env=env(tmp_path, SAGE_API_TOKEN="s3cret"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sage mcp --http exited: {proc.stdout.read().decode()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sage_mcp_over_streamable_http_needs_the_bearer_token(http_server):
    denied = httpx2.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert denied.status_code == 401 and "SAGE_API_TOKEN" in denied.json()["error"]
    wrong = httpx2.post(http_server, json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    async def go():
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=60) as http:
            async with Client(streamable_http_client(http_server, http_client=http)) as client:
                return await solve(client)
    tools, result = anyio.run(go)
    assert "solve_sudoku" in tools
    assert not result.is_error and result.structured_content["verified"]


def test_sage_mcp_without_the_extra_says_which_to_install(monkeypatch):
    from click.testing import CliRunner

    from orchestrator.tools.cli import mcp_command

    monkeypatch.setitem(sys.modules, "orchestrator.tools._mcp", None)  # as if the mcp SDK were missing
    result = CliRunner().invoke(mcp_command, [])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: sage mcp needs the MCP SDK: pip install 'sage-irp[mcp]'"
