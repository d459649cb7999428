"""The dashboard is private by default: `streamlit run app.py` with the repository's config
answers on 127.0.0.1 and not on this machine's own non-loopback address (a server bound to
0.0.0.0 is started too, to show the check can see an exposed one); the core helper the first
page uses says which is which."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import tomllib
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from sim_core.base.serving import exposure_notice, is_loopback, reachable_from_others

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


@pytest.mark.parametrize("address, private", [
    ("localhost", True), ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True),
    ("[::1]", True), ("", False), (None, False), ("0.0.0.0", False), ("::", False),
    ("192.0.2.7", False), ("10.1.2.3", False), ("fd00::2", False),
])
def test_loopback_or_reachable(address, private):
    assert is_loopback(address) is private
    assert reachable_from_others(address) is not private
    notice = exposure_notice(address)
    assert (notice is None) is private
    if notice:
        assert "reachable from other machines" in notice and "sign" in notice


def test_notice_names_where_it_listens():
    assert "every network interface" in exposure_notice("0.0.0.0")
    assert "address 10.1.2.3" in exposure_notice("10.1.2.3")
    assert exposure_notice("10.1.2.3", signed_in=True).endswith("sign-in is required before "
                                                                 "any page.")


def test_repository_config_binds_to_localhost():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "localhost"
    assert is_loopback(config["server"]["address"])


def _own_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (`hostname -I`)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for word in out.stdout.split():
        try:
            ip = ipaddress.ip_address(word)
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_loopback:
            found.append(word)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def _answers(host: str, port: int, timeout: float = 2) -> bool:
    """Whether the Streamlit health endpoint answers at host:port."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/_stcore/health",
                                    timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def _streamlit(tmp_path: Path, *flags: str):
    """`streamlit run app.py` from the repository root (its .streamlit/config.toml) on a free
    port; yields the port once it answers on 127.0.0.1."""
    import time

    port = _free_port()
    env = dict(os.environ, SIM_WORKSPACE=str(tmp_path / "ws"), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                             "--server.port", str(port), *flags], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while not _answers("127.0.0.1", port):
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("streamlit did not start")
            time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.browser
def test_server_is_private_by_default(tmp_path):
    own = _own_addresses()
    if not own:
        pytest.skip("this machine has no non-loopback IPv4 address to try (hostname -I)")
    with _streamlit(tmp_path) as port:                      # the repository's config
        assert _answers("127.0.0.1", port)
        for address in own:
            assert not _answers(address, port), f"reachable on {address}:{port}"
            with pytest.raises(OSError):                  # refused, not merely slow
                socket.create_connection((address, port), timeout=2).close()
        if Path(CHROMIUM).exists():
            _browser_sees(port, own[0])
    # the check sees an exposed server: the same app bound to every interface answers there
    with _streamlit(tmp_path, "--server.address", "0.0.0.0") as port:
        assert _answers(own[0], port)


def _browser_sees(port: int, address: str) -> None:
    """Chromium opens the dashboard on 127.0.0.1 and gets no page on `address`."""
    from playwright.sync_api import Error, expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}")
            expect(page.get_by_role("heading", name="Survey data")).to_be_visible(timeout=60000)
            with pytest.raises(Error, match="ERR_CONNECTION_REFUSED"):
                page.goto(f"http://{address}:{port}", timeout=15000)
        finally:
            browser.close()
