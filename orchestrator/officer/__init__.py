"""The sovereignty officer's wing: its key and trust, its decisions, its audits.

An officer signs statements (agreement signatures and terminations, approvals,
acknowledgements, consents) delivered to custodians; verifies the custody log
through its public read API against keys it pinned; traces models to data;
proves them offline (bundles, C2SP tlog-proof); renders reports; and runs the
web console.
"""
