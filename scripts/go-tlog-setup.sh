#!/usr/bin/env bash
# Go's reference transparency-log packages for the interop test: Debian's
# golang-go and golang-golang-x-mod-dev (golang.org/x/mod/sumdb/note and
# .../sumdb/tlog under /usr/share/gocode, built in GOPATH mode: no module
# download). Installs them when missing (apt-get update first; needs root or
# sudo), then prints the go binary and the GOPATH to use, one per line.
# Override with GO=/path/to/go and GOPATH=/path/to/gocode.
set -euo pipefail
GO="${GO:-go}"
GOPATH="${GOPATH:-/usr/share/gocode}"
need=0
command -v "$GO" >/dev/null 2>&1 || need=1
[ -d "$GOPATH/src/golang.org/x/mod/sumdb/tlog" ] || need=1
if [ "$need" = 1 ]; then
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >&2
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        golang-go golang-golang-x-mod-dev >&2
    GO=go
    GOPATH=/usr/share/gocode
fi
command -v "$GO"
echo "$GOPATH"
