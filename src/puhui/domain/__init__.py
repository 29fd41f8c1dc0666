"""The rules of the mechanism, in the standard library only: no I/O, no clock, no framework."""
