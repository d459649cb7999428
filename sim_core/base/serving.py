"""Whether the dashboard's server can be reached from other machines.

Streamlit listens on every network interface unless `server.address` names one; the
project's .streamlit/config.toml binds it to localhost, so only this machine can open the
dashboard (which has no sign-in of its own: anyone who reaches it can open, download and
delete saved surveys and start training jobs). Serving it to others is an explicit choice
(`--server.address 0.0.0.0` or another address) with sign-in in front (README, "Serving to
others"). The first page passes `st.get_option("server.address")` to exposure_notice and
shows the notice when there is one.
"""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                            "ip6-loopback"})
ALL_INTERFACES = frozenset({"", "0.0.0.0", "::", "*"})


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to `address` is reachable from this machine only.

    Args:
        address: Streamlit's server.address ("" or None = every interface), an IP address
            or a host name (resolved: loopback only when every address it names is).
    """
    text = (address or "").strip().strip("[]")
    if text.lower() in LOOPBACK_NAMES:
        return True
    if text in ALL_INTERFACES:
        return False
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        pass
    try:
        found = {info[4][0] for info in socket.getaddrinfo(text, None)}
    except OSError:
        return False            # cannot tell: say it may be reachable
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback
                               for a in found)


def reachable_from_others(address: str | None) -> bool:
    """Whether other machines may reach a server bound to `address` (not loopback only)."""
    return not is_loopback(address)


def exposure_notice(address: str | None, signed_in: bool = False) -> str | None:
    """The first page's notice when the server is reachable from other machines, else None.

    Args:
        address: Streamlit's server.address.
        signed_in: True when the app asks for sign-in (st.login) before any page.
    """
    if is_loopback(address):
        return None
    where = "every network interface" if (address or "").strip() in ALL_INTERFACES \
        else f"address {address.strip()}"
    if signed_in:
        return (f"This dashboard is reachable from other machines (it listens on {where}); "
                "sign-in is required before any page.")
    return (f"This dashboard is reachable from other machines (it listens on {where}) and "
            "asks no one to sign in: anyone on the network can open, download and delete saved "
            "surveys and start training jobs. To keep it private, serve it on localhost "
            "(server.address = \"localhost\" in .streamlit/config.toml, the default); to serve "
            "it to others, put sign-in in front of it (README: Serving to others).")
