"""Pure trading logic with no I/O, so live, paper, validation and replay share it."""
