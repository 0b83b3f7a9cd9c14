"""`peek export`: a room's history, oldest first, as JSON lines, text or an HTML page.

- `plan`: what is asked (`--since`/`--until`/`--limit`/`--follow-predecessors`, dates read) and
  how far the walk got (the state `--resume` goes on from);
- `walk`: the `/messages` walk backwards page by page, and the `timestamp_to_event` jump;
- `files`: the spill, `FILE.part` and its sidecar, the finished file renamed into place;
- `job`: one export end to end (walk, media, then the format's writer from `peekcli.sinks`).
"""
