"""Pure decision rules shared by the parties (no I/O, no clock, no keys).

A nation's custodian decides with them; the orchestrator pre-checks with the
same code to route a request and explain a refusal, but cannot release anything.
"""
