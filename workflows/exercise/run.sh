#!/usr/bin/env bash
# Three-nation exercise (issue 6): AUS and GBR data trained at a US site.
#
#  1. AUS, GBR, USA (and CAN, a non-party) initialise; the US site registers.
#  2. AUS and GBR seal one joint dataset (the UCI sonar returns, n-of-n DEK shares).
#  3. Three agreements (AUS-USA, GBR-USA, AUS-GBR) take effect only once both
#     parties' officers have signed each exact version.
#  4. A job in a pre-approved area runs at once (trilateral interlock satisfied).
#  5. A job in a case-by-case area waits; both owners' officers approve (signed,
#     bound to the request digest, with an expiry); it resumes and runs.
#  6. A job over the notification threshold is notified to the oversight body and
#     held (AUS-USA holds until acknowledged); the USA officer acknowledges; it runs.
#  7. A transfer of the first model to CAN is refused (third party, no consent);
#     both owners consent to USA for research; the transfer runs and USA opens it.
#  8. GBR terminates GBR-USA: the next request is refused at once, naming it.
#  9. The custody log verifies; each officer's report shows every decision.
#
# Usage: workflows/exercise/run.sh [STATE_DIR]   (default: ./.sovereign-exercise)
set -euo pipefail
cd "$(dirname "$0")/../.."
export SOVEREIGN_STATE_DIR="${1:-${SOVEREIGN_STATE_DIR:-$PWD/.sovereign-exercise}}"
export PATH="$PWD/.venv/bin:$PATH"
EX=workflows/exercise
rm -rf "$SOVEREIGN_STATE_DIR"
mkdir -p "$SOVEREIGN_STATE_DIR"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
expect_exit() { # CODE CMD...: run CMD, require exit status CODE
    local want=$1; shift
    set +e; "$@"; local got=$?; set -e
    if [[ $got -ne $want ]]; then
        echo "exercise: expected exit $want from: $*, got $got" >&2; exit 1
    fi
}

step "1. Nations and the US site"
for nation in AUS GBR USA CAN; do sovereign nation init "$nation" >/dev/null; done
sovereign site register site_configs/local.toml
for nation in AUS GBR USA; do sovereign site accredit local --by "$nation"; done

step "2. AUS and GBR seal a joint dataset (SECRET, REL TO AUS, GBR, USA)"
sovereign dataset seal data/sonar/sonar.csv --name joint-sonar --owner AUS,GBR \
    --classification SECRET --rel-to AUS,GBR,USA --export-control EAR99

step "3. Agreements take effect only when every party's officer signs"
for a in aus-usa gbr-usa aus-gbr; do sovereign agreement add "$EX/$a.toml"; done
sovereign agreement sign EX-AUS-USA --as AUS
sovereign agreement sign EX-AUS-USA --as USA
sovereign agreement sign EX-GBR-USA --as GBR
sovereign agreement sign EX-GBR-USA --as USA
sovereign agreement sign EX-AUS-GBR --as AUS
sovereign agreement sign EX-AUS-GBR --as GBR
sovereign agreement list

step "4. Pre-approved area: runs at once"
sovereign submit "$EX/pre-approved.toml" --site local
model=$(sovereign model list --json | json 'd[-1]["id"]')

step "5. Case-by-case area: waits for both owners' officers"
expect_exit 5 sovereign submit "$EX/case-by-case.toml" --site local
sovereign approvals list --status pending
for owner in AUS GBR; do
    request=$(sovereign approvals list --as "$owner" --status pending --json | json 'd[-1]["request_id"]')
    sovereign approvals approve "$request" --as "$owner" --expires-in 1h
done
job=$(sovereign approvals list --as AUS --json | json 'd[-1]["job_id"]')
sovereign jobs resume "$job"

step "6. Over the notification threshold: notified, held until acknowledged"
expect_exit 5 sovereign submit "$EX/over-threshold.toml" --site local
sovereign notifications list
held=$(sovereign notifications list --json | json '[n for n in d if n["hold"] and not n["acknowledged_by"]][-1]["notification_id"]')
held_job=$(sovereign notifications list --json | json '[n for n in d if n["hold"]][-1]["job_id"]')
sovereign notifications ack "$held" --as USA
sovereign jobs resume "$held_job"

step "7. Transfers: CAN refused (third party, no consent); USA with both consents"
expect_exit 4 sovereign model transfer "$model" --to CAN --end-use research
for owner in AUS GBR; do
    sovereign model consent "$model" --to USA --end-use research --as "$owner" --expires-in 1h
done
sovereign model transfer "$model" --to USA --end-use research
sovereign model receive "$model" --as USA --out "$SOVEREIGN_STATE_DIR/usa-received-model.pt"
sovereign model transfers

step "8. GBR terminates GBR-USA: the next request is refused at once"
sovereign agreement terminate EX-GBR-USA --as GBR --reason "exercise concluded"
expect_exit 4 sovereign submit "$EX/pre-approved.toml" --site local
sovereign agreement list

step "9. Officers verify the custody log and read their reports"
sovereign custody verify --as AUS
for nation in AUS GBR USA; do
    sovereign custody report --nation "$nation" --out "$SOVEREIGN_STATE_DIR/report-$nation.html"
done
echo
echo "reports: $SOVEREIGN_STATE_DIR/report-{AUS,GBR,USA}.html"
