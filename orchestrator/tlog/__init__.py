"""Transparency-log formats and math shared by every party (no I/O, no keys).

Entries, Merkle trees, signed notes, checkpoints, tiles, proofs and the pure
witness and verification logic: what the log operator serves, what witnesses
check and what officers verify, in the formats of RFC 9162 and C2SP.
"""
