"""Drives the real Azure CLI (`az`) against the emulator registered as a custom cloud.

Nothing may leave the machine: telemetry, the survey and extension installs are turned off by
configuration, MSAL's instance discovery by core.instance_discovery=false, and the once-a-day
check for a newer az by a fresh versionCheck.json in each config dir.

Every `az` runs with its own AZURE_CONFIG_DIR and HOME, trusts the emulator's CA (REQUESTS_CA_BUNDLE
for requests/MSAL/azure-core, WEBSOCKET_CLIENT_CA_BUNDLE for `az container exec`, SSL_CERT_FILE for
anything else), and sends everything that is not for 127.0.0.1/localhost to a guard proxy on
loopback that records the attempt and refuses it at once: az can neither reach the internet nor
hang on a DNS lookup, and a test can assert what it tried.

The az executable comes from $KUBEINVOKE_AZ (run.sh installs the pinned azure-cli in its own
virtualenv and sets it). A missing az is an error, never a skip.
"""

import datetime
import functools
import json
import os
import socketserver
import subprocess
import threading

import pytest

CLOUD = "KubeinvokeEmulator"


class GuardProxy:
    """A loopback HTTP proxy that answers every request and CONNECT with 403, remembering it."""

    def __init__(self):
        self.attempts = []
        lock = threading.Lock()
        attempts = self.attempts

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(8192).decode("latin-1").strip()
                if line:
                    with lock:
                        attempts.append(line)
                try:
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hosts(self):
        """The hosts az tried to reach (`CONNECT host:port …` or `GET http://host/… …`)."""
        out = []
        for line in list(self.attempts):
            parts = line.split()
            target = parts[1] if len(parts) > 1 else line
            out.append(target.split("//")[-1].split("/")[0])
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def az_binary():
    binary = os.environ.get("KUBEINVOKE_AZ", "")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(
            f"Azure CLI not found: KUBEINVOKE_AZ={binary!r}; run the conformance through "
            "emulator/conformance/run.sh, which installs the pinned azure-cli (requirements-az.txt) "
            "into its own virtualenv",
            pytrace=False,
        )
    return binary


@functools.cache
def installed_versions(binary):
    """{"azure-cli": v, "core": v, "telemetry": v} of the az installation (its own virtualenv)."""
    python = os.path.join(os.path.dirname(binary), "python")
    code = (
        "import json, importlib.metadata as m;"
        "print(json.dumps({k: m.version(p) for k, p in "
        "[('azure-cli', 'azure-cli'), ('core', 'azure-cli-core'), ('telemetry', 'azure-cli-telemetry')]}))"
    )
    return json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)


def seed_version_check(config_dir, binary):
    """Writes az's versionCheck.json as if it had just looked for a newer az.

    Every az run in a config dir whose version check is missing or a day old asks
    azcliprod.blob.core.windows.net for the latest version first (azure.cli.core.util
    handle_version_update); az has no setting that turns this off.
    """
    versions = {k: {"local": v, "pypi": v} for k, v in installed_versions(binary).items()}
    with open(os.path.join(config_dir, "versionCheck.json"), "w") as f:
        json.dump({"versions": versions, "update_time": str(datetime.datetime.now())}, f)


class AzCli:
    """One az profile (config dir) pointed at the emulator."""

    def __init__(self, emu, proxy, home):
        self.emu = emu
        self.proxy = proxy
        self.binary = az_binary()
        self.home = str(home)
        self.config_dir = os.path.join(self.home, ".azure")
        os.makedirs(self.config_dir)
        seed_version_check(self.config_dir, self.binary)

    def env(self, **extra):
        keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
        env = {
            **keep,
            "HOME": self.home,
            "AZURE_CONFIG_DIR": self.config_dir,
            # Trust the emulator's CA (never disable verification).
            "REQUESTS_CA_BUNDLE": self.emu.ca,
            "SSL_CERT_FILE": self.emu.ca,
            "WEBSOCKET_CLIENT_CA_BUNDLE": self.emu.ca,
            # Nothing leaves the machine: no telemetry, no survey, no extension index look-ups.
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
            "AZURE_CORE_ERROR_RECOMMENDATION": "off",
            "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
            "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
            "AZURE_CORE_NO_COLOR": "true",
            "AZURE_CORE_DISABLE_PROGRESS_BAR": "true",
            # MSAL validates an authority it does not know at login.microsoftonline.com (a fixed
            # host: az has no setting to point it elsewhere); az's switch for private clouds.
            "AZURE_CORE_INSTANCE_DISCOVERY": "false",
            "HTTPS_PROXY": self.proxy.url,
            "HTTP_PROXY": self.proxy.url,
            "https_proxy": self.proxy.url,
            "http_proxy": self.proxy.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(extra)
        return env

    def run(self, *args, check=True, timeout=120, cwd=None, **env):
        proc = subprocess.run(
            [self.binary, *args],
            env=self.env(**env),
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"az {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args, **kw):
        out = self.run(*args, "--output", "json", **kw).stdout
        return json.loads(out) if out.strip() else None

    def register_cloud(self, *extra):
        self.run("cloud", "register", "--name", CLOUD, "--endpoint-resource-manager", self.emu.base, *extra)
        self.run("cloud", "set", "--name", CLOUD)

    def login(self, tenant, client, secret, **env):
        return self.run(
            "login", "--service-principal", "--username", client, "--password", secret, "--tenant", tenant, **env
        )

