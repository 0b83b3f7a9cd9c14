"""What a homeserver and a room really support, found out before (or instead of) watching.

- `info`: `peek info ROOM`, the room's facts and a verdict (watchable as guest, with your
  account, or not, and why);
- `doctor`: `peek doctor`, each step a watch depends on, and the stream peek would use;
- `account`: the user's own identity, which both ask as when there is one.
"""
