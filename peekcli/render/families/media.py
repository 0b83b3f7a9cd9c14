"""Attachments (image, file, audio, voice, video, sticker) and locations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rich.text import Text

from peekcli.render.context import BODY_LIMIT, DIM, META, TAG, Room, as_map, as_num, as_str
from peekcli.render.matrix_html import html_to_text
from peekcli.render.sanitize import clean, one_line

KINDS = {
    "m.image": "image",
    "m.file": "file",
    "m.audio": "audio",
    "m.video": "video",
    "m.sticker": "sticker",
}
_MXC = re.compile(
    r"mxc://([A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?)/([A-Za-z0-9_\-]+)"
)
_GEO = re.compile(r"geo:(-?\d{1,3}(?:\.\d{1,12})?),(-?\d{1,3}(?:\.\d{1,12})?)")
_VOICE_KEYS = ("org.matrix.msc3245.voice", "m.voice")
_LOCATION_KEYS = ("m.location", "org.matrix.msc3488.location")


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def duration(ms: float) -> str:
    seconds = int(ms // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def kind_of(content: Mapping[str, Any], kind: str) -> str:
    """ "voice message" for an audio clip recorded as one (MSC3245), else the media kind."""
    if kind == "audio" and any(key in content for key in _VOICE_KEYS):
        return "voice message"
    return kind


def _caption(content: Mapping[str, Any], room: Room, name: str | None) -> Text | None:
    """MSC2530: with `filename` set, `body` is a caption; its `formatted_body` is the rich one."""
    body = content.get("body")
    filename = as_str(content.get("filename"))
    if not filename or not isinstance(body, str) or not body or body == filename:
        return None
    source = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(source, str):
        text = html_to_text(source, limit=BODY_LIMIT, spoilers=room.spoilers)
        if text.plain.strip():
            return text
    return Text(clean(body, BODY_LIMIT))


def attachment(content: Mapping[str, Any], room: Room, kind: str) -> Text:
    body = content.get("body")
    filename = as_str(content.get("filename"))
    name = filename or body
    kind = kind_of(content, kind)
    info = as_map(content.get("info"))
    out = Text()
    out.append(f"[{kind}]", TAG)
    if kind != "voice message" or filename:
        out.append(" ")
        out.append(one_line(name, 200) if name else "(unnamed)")
    details: list[str] = []
    size = as_num(info.get("size"))
    if size is not None and size >= 0:
        details.append(human_size(size))
    width, height = as_num(info.get("w")), as_num(info.get("h"))
    if width is not None and height is not None:
        details.append(f"{width:.0f}×{height:.0f}")
    length = as_num(info.get("duration"))
    if length is None:
        length = as_num(as_map(content.get("org.matrix.msc1767.audio")).get("duration"))
    if length is not None and length >= 0:
        details.append(duration(length))
    if details:
        out.append(f" ({', '.join(details)})", DIM)
    caption = _caption(content, room, name if isinstance(name, str) else None)
    if caption is not None:
        out.append("\n")
        out.append_text(caption)
    url = content.get("url")
    if not isinstance(url, str) and isinstance(as_map(content.get("file")).get("url"), str):
        # An encrypted attachment: the file is ciphertext; only the room's keys can open it.
        out.append("\n")
        out.append("🔒 encrypted attachment (cannot be opened without the room's keys)", META)
        return out
    if isinstance(url, str) and url:
        match = _MXC.fullmatch(url)
        out.append("\n")
        if match is None:
            out.append(one_line(url, 300), DIM)
        else:
            server, media_id = match.groups()
            out.append(url, DIM)
            out.append("\n")
            download = f"/_matrix/client/v1/media/download/{server}/{media_id}"
            out.append(room.homeserver + download, DIM)
    return out


def _location_block(content: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in _LOCATION_KEYS:
        block = as_map(content.get(key))
        if block:
            return block
    return as_map(None)


def location_name(content: Mapping[str, Any]) -> str | None:
    """The place's description, or the body when it is not just the coordinates again."""
    description = as_str(_location_block(content).get("description"))
    if description and description.strip():
        return description
    body = as_str(content.get("body"))
    if body and body.strip() and "geo:" not in body:
        return body
    return None


def location(content: Mapping[str, Any]) -> Text:
    """ "[location] Office · 52.52, 13.405" and a map link (OpenStreetMap) under it."""
    out = Text()
    out.append("[location]", TAG)
    name = location_name(content)
    asset = as_map(content.get("org.matrix.msc3488.asset") or content.get("m.asset"))
    if name:
        out.append(" ")
        out.append(one_line(name, 300))
    elif asset.get("type") == "m.self":
        out.append(" their own location")
    geo = as_str(content.get("geo_uri")) or as_str(_location_block(content).get("uri")) or ""
    match = _GEO.match(geo)
    if match is None:
        if geo:
            out.append(f" ({one_line(geo, 200)})", DIM)
        return out
    lat, lon = match.groups()
    out.append(f" · {lat}, {lon}", DIM)
    out.append("\n")
    out.append(f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}", DIM)
    return out
