"""A live session from Python (``brainrecon realtime run`` without the page): follows the
scanner's export folder volume by volume, decodes each volume's pattern into z and c, and draws
the newest decoded volume on a thread of its own (reading and decoding never wait for it).

    from brainrecon.realtime import Session
    with Session("export", "prepared/subj01", "decoders", tr=1.0, out="session") as session:
        for event in session:
            if event.kind == "frame":
                event.image.save(f"volume-{event.volume}.png")
    print(session.summary)

Waiting for the scanner releases the GIL: ``session.stop()`` from another thread ends the
session after the volume in hand, as Ctrl-C does the CLI's. Leaving the ``with`` block writes
the session's record (OUT/volumes.tsv, session.json, ...).
"""

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _native


def _image(array):
    if array is None:
        return None
    from PIL import Image
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB")


@dataclass
class Volume:
    """A volume handled: its number (0-based, from the scanner's header: a refused volume
    leaves a gap), file, motion (3 translations in mm, then 3 rotations in degrees, against the
    first volume), and its decoded ``z`` and ``c`` (flat float32, None while the running
    statistics warm up or the window fills)."""
    volume: int
    file: str
    motion: np.ndarray
    framewise_displacement_mm: float
    latency_ms: float
    z: Optional[np.ndarray]
    c: Optional[np.ndarray]
    warming_up: bool = False
    kind: str = "volume"


@dataclass
class Frame:
    """A picture finished drawing: of volume ``volume`` (``image``, ``decoded_z_image``: PIL
    images), ``latency_ms`` from its file's last write."""
    volume: int
    image: object
    decoded_z_image: object
    latency_ms: float
    kind: str = "frame"


@dataclass
class Refused:
    """A file that does not read or a volume that cannot be realigned; the session goes on."""
    file: str
    error: str
    kind: str = "refused"


@dataclass
class Waiting:
    """No new file for ``seconds``; ``pause_seconds`` when that is a pause worth telling."""
    seconds: float
    pause_seconds: Optional[float] = None
    kind: str = "waiting"


def _event(raw):
    kind = raw["type"]
    if kind == "refused":
        return Refused(raw["file"], raw["error"])
    if kind == "waiting":
        return Waiting(raw["seconds"], raw["pause_seconds"])
    if kind == "frame":
        return Frame(raw["volume"], _image(raw["image"]), _image(raw["decoded_z"]),
                     raw["latency_ms"])
    return Volume(
        volume=raw["volume"], file=raw["file"], motion=np.asarray(raw["motion"]),
        framewise_displacement_mm=raw["framewise_displacement_mm"],
        latency_ms=raw["latency_ms"], z=raw["z"], c=raw["c"],
        warming_up=raw["warming_up"])


class Session:
    """A live session; iterating yields :class:`Volume`, :class:`Frame`, :class:`Refused` and
    :class:`Waiting` events until the session ends (``volumes`` received, ``idle_seconds`` without a file, or
    :meth:`stop`). Arguments are ``brainrecon realtime run``'s flags, with its defaults."""

    def __init__(self, folder, subject, decoders, tr, out="realtime-session",
                 subject_reference=None, window_s=4.0, delay_s=4.0, draw_all=False,
                 events=None, model="shapes-ldm", steps=10, strength=0.8, guidance=5.0,
                 seed=42, dtype="f32", volumes=None, idle_seconds=60.0, settle_ms=200,
                 poll_ms=20, smoothing_mm=5.0, slices=None):
        def path(p):
            return None if p is None else str(getattr(p, "path", p))

        self._native = _native.LiveSession(
            path(folder), path(subject), path(decoders), float(tr), out=path(out),
            subject_reference=path(subject_reference), window_s=float(window_s),
            delay_s=float(delay_s), draw_all=bool(draw_all), events=path(events),
            model=path(model), steps=int(steps), strength=float(strength),
            guidance=float(guidance), seed=int(seed), dtype=dtype, volumes=volumes,
            idle_seconds=float(idle_seconds), settle_ms=int(settle_ms), poll_ms=int(poll_ms),
            smoothing_mm=float(smoothing_mm), slices=slices)
        self.summary = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.summary is not None:
            raise StopIteration
        return _event(self._native.next_event())

    def stop(self):
        """Ends the session after the volume in hand (from any thread)."""
        self._native.stop()

    def finish(self):
        """Writes the session's record and returns its summary (a dict); the session ends."""
        if self.summary is None:
            self.stop()
            self.summary = json.loads(self._native.finish())
        return self.summary

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()
        return False


__all__ = ["Session", "Volume", "Frame", "Refused", "Waiting"]
