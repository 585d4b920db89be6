"""What a link does to the traffic on it, and how a user spells it on the command line.

`Shaping` is the one description of a link's conditions, shared by the CLI (which parses
flags into it), the spec file (which carries it as JSON) and the relay (which plays it).
Units follow the tools a Geo developer already knows: latency is the round trip `ping`
would show, not netem's one-way delay, because that is what one compares a link against;
rates are spelt as `tc` spells them (`mbit` bits, `mbps` bytes, SI prefixes, `kibit` and
friends binary), so a value copied from a `tc` line means the same here.

A bad value raises `GdkGeoError` naming the flag and a valid example: the text comes from a
user, and the fix is to type it again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from gdk_geo.errors import GdkGeoError, clipped


@dataclass(frozen=True)
class Shaping:
    """A link's conditions; the defaults are a perfect link.

    `latency_ms` is the round trip added (half each way), `jitter_ms` its spread (each
    way ± half of it, uniform), `loss_percent` the chance a chunk or a new connection is
    lost (see `gdk_geo.link.relay` for what loss means to a relay), `rate_bits` the link's
    bandwidth in bits a second in each direction (0: unlimited), `down` a partition.
    """

    latency_ms: float = 0
    jitter_ms: float = 0
    loss_percent: float = 0
    rate_bits: int = 0
    down: bool = False

    def __post_init__(self) -> None:
        for name, top in (("latency_ms", math.inf), ("jitter_ms", math.inf), ("loss_percent", 100)):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and 0 <= value <= top):
                limits = "from 0 to 100" if top == 100 else "of 0 or more"
                raise GdkGeoError(
                    f"shaping {name} must be a number {limits}, not {clipped(repr(value))}",
                    fix=f"give {name} a number {limits}",
                )
        rate = self.rate_bits
        if isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= MAX_RATE_BITS:
            raise GdkGeoError(
                f"shaping rate_bits must be a whole number of bits a second, not "
                f"{clipped(repr(rate))}",
                fix=f"give rate_bits from 0 (unlimited) to {MAX_RATE_BITS}",
            )
        if not isinstance(self.down, bool):
            raise GdkGeoError(
                f"shaping down must be true or false, not {clipped(repr(self.down))}",
                fix="give down true or false",
            )

    def describe(self) -> str:
        """One phrase for a status line: "80 ms ±10 ms, 1% loss, 50 Mbit/s", "none", "down"."""
        if self.down:
            return "down"
        parts = []
        if self.latency_ms or self.jitter_ms:
            jitter = f" ±{_number(self.jitter_ms)} ms" if self.jitter_ms else ""
            parts.append(f"{_number(self.latency_ms)} ms{jitter}")
        if self.loss_percent:
            parts.append(f"{_number(self.loss_percent)}% loss")
        if self.rate_bits:
            parts.append(describe_rate(self.rate_bits))
        return ", ".join(parts) or "none"

    def to_json(self) -> dict[str, Any]:
        """The shaping as the spec file holds it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Shaping:
        """The shaping a spec file holds; a missing key takes its default, an unknown key
        or a value of the wrong type is an error (a typo must not shape nothing quietly)."""
        if not isinstance(data, Mapping):
            raise GdkGeoError(f"shaping must be an object, not {clipped(repr(data))}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise GdkGeoError(
                f"unknown shaping keys: {', '.join(unknown)}", fix=f"use {', '.join(known)}"
            )
        values = dict(data)
        if isinstance(values.get("rate_bits"), float) and values["rate_bits"].is_integer():
            values["rate_bits"] = int(values["rate_bits"])
        return cls(**values)


def _number(value: float) -> str:
    """A number as a person writes it: 80, 0.5, 1.25 (no trailing zeros, four digits)."""
    return f"{value:.4g}"


RATE_UNITS = (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3))


def describe_rate(bits: int) -> str:
    """A rate in the largest unit it reaches: 50 Mbit/s, 1.5 Gbit/s, 100 kbit/s."""
    for unit, scale in RATE_UNITS:
        if bits >= scale:
            return f"{_number(bits / scale)} {unit}"
    return f"{bits} bit/s"


_NUMBER = r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*"
_DURATION = re.compile(_NUMBER + r"(ms|s|us|µs|msec|sec|usec)?\s*", re.IGNORECASE)
_PERCENT = re.compile(_NUMBER + r"(%?)\s*")
_RATE = re.compile(_NUMBER + r"([a-z]*)\s*", re.IGNORECASE)

DURATION_SCALE_MS = {"": 1.0, "ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0}
DURATION_SCALE_MS |= {"us": 0.001, "µs": 0.001, "usec": 0.001}

# tc(8)'s rate suffixes, matched without case as tc does: bits with SI or binary prefixes,
# and bytes ("bps") times 8. A bare number is bits a second, as in tc.
RATE_SCALE_BITS: dict[str, float] = {"": 1, "bit": 1, "bps": 8}
for _prefix, _si, _binary in (("k", 1e3, 2**10), ("m", 1e6, 2**20), ("g", 1e9, 2**30)):
    RATE_SCALE_BITS |= {f"{_prefix}bit": _si, f"{_prefix}ibit": _binary}
    RATE_SCALE_BITS |= {f"{_prefix}bps": 8 * _si, f"{_prefix}ibps": 8 * _binary}
RATE_SCALE_BITS |= {"tbit": 1e12, "tbps": 8e12}
MAX_RATE_BITS = 10**12  # 1 Tbit/s: beyond it, a value is a typo, not a link


def _refuse(flag: str, text: str, what: str, example: str) -> GdkGeoError:
    return GdkGeoError(
        f"{flag} {clipped(text, repr)} is not {what}",
        fix=f"give it as in `{flag} {example}`",
    )


def parse_duration_ms(text: str, flag: str = "--latency") -> float:
    """Milliseconds from "80ms", "0.2s", "500us" or a bare "80" (milliseconds, as ping
    speaks); `flag` names the option in the error."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise _refuse(flag, text, "a duration", "80ms (or 0.2s)")
    value = float(match[1]) * DURATION_SCALE_MS[(match[2] or "").lower()]
    if not math.isfinite(value):
        raise _refuse(flag, text, "a duration", "80ms (or 0.2s)")
    return value


def parse_percent(text: str, flag: str = "--loss") -> float:
    """A percentage from "1%" or "0.5" (a bare number is a percentage too: "0.5" is 0.5%,
    as netem reads it), from 0 to 100."""
    match = _PERCENT.fullmatch(text)
    value = float(match[1]) if match else math.nan
    if not 0 <= value <= 100:
        raise _refuse(flag, text, "a percentage from 0 to 100", "1%")
    return value


def parse_rate(text: str, flag: str = "--rate") -> int:
    """Bits a second from tc's spelling: "50mbit", "100kbit", "1gbit" (bits), "20mbps"
    (megabytes: 160 Mbit/s), "8mibit" (binary prefixes); a bare number is bits. "0" means
    unlimited."""
    match = _RATE.fullmatch(text)
    scale = RATE_SCALE_BITS.get(match[2].lower()) if match else None
    if match is None or scale is None:
        raise _refuse(flag, text, "a rate", "50mbit (bits; 20mbps is megabytes)")
    bits = float(match[1]) * scale
    if bits > MAX_RATE_BITS or (0 < bits < 1):
        raise _refuse(flag, text, "a rate from 1 bit/s to 1 Tbit/s (or 0: unlimited)", "50mbit")
    return round(bits)
