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

step "AUS and USA accredit the site's key (no TEE on this machine: evidence kind 'none')"
sovereign site accredit local --by AUS --tee none --days 30
sovereign site accredit local --by USA --tee none --days 30
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
# The officer pinned the log key and the nations' witness keys when the parties were
# introduced (its trust.json); it carries that file and the bundle to a clean machine.
offline=$(mktemp -d)
cp "$SOVEREIGN_STATE_DIR/officers/AUS/trust.json" "$SOVEREIGN_STATE_DIR/bundle.json" "$offline/"
echo "verifying in $offline with no state: keys only from the officer's trust.json"
(cd "$offline" && SOVEREIGN_STATE_DIR=/nonexistent sovereign custody verify-bundle \
    bundle.json --trust trust.json --require-cosigners AUS,GBR)

step "AUS officer's report"
sovereign custody report --nation AUS --out "$SOVEREIGN_STATE_DIR/report-AUS.html"
