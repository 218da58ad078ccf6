"""azure-mgmt-containerinstance exec + a real websocket client, and container logs."""

import re
import ssl
import struct

import pytest
import websocket
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerinstance.models import ContainerExecRequest, ContainerExecRequestTerminalSize

from conftest import RG


def exec_session(aci, command, cols=120):
    req = ContainerExecRequest(command=command, terminal_size=ContainerExecRequestTerminalSize(rows=24, cols=cols))
    return aci.containers.execute_command(RG, "cg1", "app", req)


def connect(emu, uri):
    return websocket.create_connection(uri, sslopt={"ca_certs": emu.ca, "cert_reqs": ssl.CERT_REQUIRED}, timeout=10)


def read_until_close(ws):
    """All text until the server's close frame; returns (text, close code)."""
    out = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return "".join(out), struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            out.append(data.decode() if isinstance(data, bytes) else data)


def test_shell_session_echoes_and_closes_1000(aci, emu):
    resp = exec_session(aci, "/bin/sh", cols=132)
    # ACI serves exec on a host and port of its own, not ARM's (az container exec --debug shows
    # wss://<id>.<region>.atlas.cloudapp.azure.com:19390/execstream/...).
    assert resp.web_socket_uri.startswith(emu.ready["execEndpoint"] + "/execstream/")
    assert not resp.web_socket_uri.startswith(emu.base)
    ws = connect(emu, resp.web_socket_uri)
    ws.send(resp.password)
    ws.send("echo hi-$((40+2))\n")
    ws.send_binary(b"exit\n")
    text, code = read_until_close(ws)
    assert code == 1000
    assert "echo hi-$((40+2))\r\n" in text  # terminal echo of the input
    assert "hi-42\r\n" in text  # output with terminal line endings
    sessions = emu.get("/exec-sessions")
    assert any(s["cols"] == 132 and s["command"] == "/bin/sh" for s in sessions)


def test_an_empty_message_comes_first(aci, emu):
    # The service sends "" as soon as the socket is open (azure-cli PR #16000).
    resp = exec_session(aci, "/bin/sh")
    ws = connect(emu, resp.web_socket_uri)
    opcode, data = ws.recv_data()
    assert (opcode, data) == (websocket.ABNF.OPCODE_TEXT, b"")
    ws.send(resp.password)
    ws.send_binary(b"exit\n")
    _, code = read_until_close(ws)
    assert code == 1000


def test_wrong_password_is_closed_policy_violation(aci, emu):
    resp = exec_session(aci, "/bin/sh")
    ws = connect(emu, resp.web_socket_uri)
    ws.send("not-the-password")
    _, code = read_until_close(ws)
    assert code == 1008


def test_command_with_arguments_fails_like_aci(aci, emu):
    resp = exec_session(aci, "ls /")
    ws = connect(emu, resp.web_socket_uri)
    ws.send(resp.password)
    text, code = read_until_close(ws)
    assert code == 1000
    assert 'exec: \\"ls /\\": executable file not found in $PATH' in text


def test_unknown_container(aci):
    req = ContainerExecRequest(command="/bin/sh", terminal_size=ContainerExecRequestTerminalSize(rows=24, cols=80))
    with pytest.raises(HttpResponseError) as e:
        aci.containers.execute_command(RG, "cg1", "nope", req)
    assert e.value.status_code == 404
    with pytest.raises(ResourceNotFoundError):
        aci.containers.execute_command(RG, "cg-missing", "app", req)


def test_list_logs_tail_and_timestamps(aci):
    logs = aci.containers.list_logs(RG, "cg1", "app", tail=2)
    assert logs.content == "listening on :8080\nready\n"
    logs = aci.containers.list_logs(RG, "cg1", "app", timestamps=True)
    lines = logs.content.splitlines()
    assert len(lines) == 3
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ", line) for line in lines)
