"""`peek export --media DIR` against the real Synapse: authenticated media as a guest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.e2e.peekproc import json_lines, run_peek
from tests.homeserver import Homeserver, User

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def upload(hs: Homeserver, user: User, data: bytes, content_type: str, name: str) -> str:
    resp = requests.post(
        f"{hs.base_url}/_matrix/media/v3/upload",
        params={"filename": name},
        data=data,
        headers={"Authorization": f"Bearer {user.access_token}", "Content-Type": content_type},
        timeout=30,
    )
    resp.raise_for_status()
    uri: str = resp.json()["content_uri"]
    return uri


def media_room(hs: Homeserver, alice: User) -> tuple[str, dict[str, bytes]]:
    room = hs.create_room(alice, world_readable=True, name="Pictures")
    image = upload(hs, alice, PNG, "image/png", "dot.png")
    thumb = upload(hs, alice, PNG[:-1] + b"\x83", "image/png", "dot-thumb.png")
    doc = upload(hs, alice, b"%PDF-1.4 not really", "application/pdf", "notes.pdf")
    hs.send_event(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "dot.png",
            "url": image,
            "info": {
                "mimetype": "image/png",
                "size": len(PNG),
                "w": 1,
                "h": 1,
                "thumbnail_url": thumb,
            },
        },
    )
    hs.send_event(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.file",
            "body": "notes.pdf",
            "url": doc,
            "info": {"mimetype": "application/pdf", "size": 19},
        },
    )
    files = {
        image.rsplit("/", 1)[1]: PNG,
        thumb.rsplit("/", 1)[1]: PNG[:-1] + b"\x83",
        doc.rsplit("/", 1)[1]: b"%PDF-1.4 not really",
    }
    return room, files


def test_export_saves_every_file_as_a_guest_and_skips_them_next_time(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    room, files = media_room(synapse, alice)
    page = tmp_path / "room.html"
    args: list[Any] = [
        "export",
        room,
        "--homeserver",
        synapse.base_url,
        "--format",
        "html",
        "-o",
        str(page),
        "--media",
        str(tmp_path / "media"),
    ]
    first = run_peek(*args, state_file=tmp_path / "state.json")
    assert first.returncode == 0, first.stderr
    assert "3 downloaded" in first.stderr, first.stderr
    on_disk = {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in (tmp_path / "media").rglob("*")
        if p.is_file()
    }
    assert sorted(on_disk.values()) == sorted(files.values())
    by_id = {path.rsplit("/", 1)[1]: path for path in on_disk}
    image, _thumb, doc_id = list(files)
    page_text = page.read_text()
    assert f'<img src="{by_id[image]}" alt="dot.png"' in page_text
    assert f'<a href="{by_id[doc_id]}" download="notes.pdf">notes.pdf</a>' in page_text
    again = run_peek(*args, state_file=tmp_path / "state.json")
    assert again.returncode == 0 and "0 downloaded" in again.stderr
    assert "3 already there" in again.stderr


def test_snapshot_keeps_a_live_archive_of_the_media(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    room, files = media_room(synapse, alice)
    args = ["snapshot", room, "--homeserver", synapse.base_url, "--json"]
    first = run_peek(*args, "--media", str(tmp_path / "live"), state_file=tmp_path / "state.json")
    assert first.returncode == 0, first.stderr
    on_disk = {p.name: p.read_bytes() for p in (tmp_path / "live").rglob("*") if p.is_file()}
    assert on_disk == files
    # The JSON lines are the server's events, untouched by --media.
    assert any(
        e.get("content", {}).get("url", "").startswith("mxc://") for e in json_lines(first.stdout)
    )
    later = upload(synapse, alice, b"later", "text/plain", "later.txt")
    synapse.send_event(
        alice, room, "m.room.message", {"msgtype": "m.file", "body": "later.txt", "url": later}
    )
    second = run_peek(*args, "--media", str(tmp_path / "live"), state_file=tmp_path / "state.json")
    assert second.returncode == 0, second.stderr
    assert [e["content"]["body"] for e in json_lines(second.stdout)] == ["later.txt"]
    assert (tmp_path / "live" / later[6:]).read_bytes() == b"later"
    bad = run_peek(
        *args,
        "--media",
        str(tmp_path / "x"),
        "--media-max-size",
        "huge",
        state_file=tmp_path / "s2",
    )
    assert bad.returncode == 2 and "--media-max-size" in bad.stderr
