"""Following rooms: the plan, one room's run, room upgrades, several rooms, and the loop."""
