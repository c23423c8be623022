#!/usr/bin/env bash
# Prepare a SoftHSM2 token for the PKCS#11 KEK backend and print the path of its
# config file (SOFTHSM2_CONF) as the last line of stdout (progress goes to stderr).
#
#   SOFTHSM2_CONF          config file to use; its directory holds tokens/. When
#                          unset, a fresh temp directory is created and printed.
#   SOFTHSM_TOKEN_LABEL    token label (default sovereign-test)
#   SOFTHSM_SO_PIN         security officer PIN (required)
#   SOFTHSM_USER_PIN       user PIN (required; what the keystore logs in with)
#
# Installs the Debian "softhsm2" package when softhsm2-util is missing (apt-get
# update first; needs root or sudo). Idempotent: an existing config and an existing
# token with that label are kept as they are.
set -euo pipefail

log() { printf 'softhsm-init: %s\n' "$*" >&2; }

LABEL="${SOFTHSM_TOKEN_LABEL:-sovereign-test}"
SO_PIN="${SOFTHSM_SO_PIN:?set SOFTHSM_SO_PIN (security officer PIN)}"
USER_PIN="${SOFTHSM_USER_PIN:?set SOFTHSM_USER_PIN (user PIN)}"
if (( ${#SO_PIN} < 4 || ${#USER_PIN} < 4 )); then
    log "SOFTHSM_SO_PIN and SOFTHSM_USER_PIN must be 4 to 255 characters"
    exit 2
fi

if ! command -v softhsm2-util >/dev/null 2>&1; then
    log "softhsm2-util not found: installing the softhsm2 package"
    SUDO=()
    if [[ "$(id -u)" != 0 ]]; then SUDO=(sudo -n); fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q softhsm2 >&2
fi

if [[ -z "${SOFTHSM2_CONF:-}" ]]; then
    DIR="$(mktemp -d -t sovereign-softhsm.XXXXXX)"
    log "SOFTHSM2_CONF is unset: created $DIR"
    echo "$DIR"
    export SOFTHSM2_CONF="$DIR/softhsm2.conf"
fi
CONF_DIR="$(dirname "$SOFTHSM2_CONF")"
TOKEN_DIR="$CONF_DIR/tokens"
mkdir -p "$TOKEN_DIR"
chmod 700 "$CONF_DIR" "$TOKEN_DIR"

if [[ ! -f "$SOFTHSM2_CONF" ]]; then
    cat >"$SOFTHSM2_CONF" <<EOF
# SoftHSM v2 configuration written by scripts/softhsm-init.sh
directories.tokendir = $TOKEN_DIR
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
    chmod 600 "$SOFTHSM2_CONF"
    log "wrote $SOFTHSM2_CONF"
fi

# Token labels are space-padded to 32 characters in --show-slots output.
if softhsm2-util --show-slots 2>/dev/null \
    | grep -Eq "^[[:space:]]*Label:[[:space:]]+${LABEL}[[:space:]]*$"; then
    log "token '$LABEL' already initialised"
else
    softhsm2-util --init-token --free --label "$LABEL" \
        --so-pin "$SO_PIN" --pin "$USER_PIN" </dev/null >&2
    log "initialised token '$LABEL'"
fi

echo "$SOFTHSM2_CONF"
