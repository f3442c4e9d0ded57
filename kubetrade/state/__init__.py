"""The Redis schema in one place: keys, publisher, reader."""
