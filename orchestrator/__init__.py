"""Sovereign Orchestrator."""
