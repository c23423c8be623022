#!/usr/bin/env bash
# The main job on the embedded default: an Australian data steward seals the UCI sonar
# returns, a US site admin registers this machine, AUS and the US sign a bilateral
# agreement, a researcher runs the 13-fold sonar workflow, an officer verifies the
# custody log and traces the model back to its dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOVEREIGN_STATE_DIR="${SOVEREIGN_STATE_DIR:-$PWD/.sovereign-demo}"
export PATH="$PWD/.venv/bin:$PATH"
rm -rf "$SOVEREIGN_STATE_DIR"          # the demo always starts from an empty state dir

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Nations: KEKs, custodian and officer keys"
for nation in AUS GBR USA; do sovereign nation init "$nation"; done

step "US site admin registers the local facility"
sovereign site register site_configs/local.toml
sovereign site list

step "AUS data steward seals the UCI sonar returns: SECRET, REL TO AUS, GBR, USA"
sovereign dataset seal data/sonar/sonar.csv --name uci-sonar --owner AUS \
    --classification SECRET --rel-to AUS,GBR,USA --export-control EAR99 \
    --caveat DEFENCE-RESEARCH-ONLY
sovereign dataset list

step "Bilateral agreement AUS-USA"
sovereign agreement add agreements/aus-usa.toml
sovereign agreement sign AUS-USA-SONAR-2026 --as AUS
sovereign agreement sign AUS-USA-SONAR-2026 --as USA
sovereign agreement list

step "Researcher submits the sonar workflow to site 'local'"
sovereign submit workflows/sonar_classification.toml --site local

step "Sealed model"
sovereign model list
model_id=$(sovereign model list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')

step "AUS and GBR custodians witness (cosign) the latest checkpoint"
sovereign custody witness --nation AUS
sovereign custody witness --nation GBR

step "AUS officer verifies the custody log from its trusted checkpoint and traces the model"
sovereign custody verify --as AUS --require-cosigners AUS,GBR
sovereign custody trace "$model_id"

step "AUS officer proves the model offline: bundle with inclusion proofs, cosigned checkpoint, provenance"
sovereign custody prove "$model_id" --out "$SOVEREIGN_STATE_DIR/bundle.json"
log_vkey=$(sovereign custody log-key)   # officers pin the log key out of band
echo "verifying in an empty directory with no state: log key pinned to $log_vkey"
(cd "$(mktemp -d)" && SOVEREIGN_STATE_DIR=/nonexistent sovereign custody verify-bundle \
    "$SOVEREIGN_STATE_DIR/bundle.json" --require-cosigners AUS,GBR --log-key "$log_vkey")

step "AUS officer's report"
sovereign custody report --nation AUS --out "$SOVEREIGN_STATE_DIR/report-AUS.html"
