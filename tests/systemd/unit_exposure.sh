#!/usr/bin/env bash
# Scores the installed unit's hardening with systemd-analyze, as the trust issue asks, and fails above
# the project's limit. Usage: unit_exposure.sh UNITFILE
set -euo pipefail
limit=2.5
unit=$1
report=$(systemd-analyze security --offline=true "$unit" 2>&1)
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "exposure of $(basename "$unit"): ${score:-unknown} (limit $limit)"
[[ -n $score ]] || { printf '%s\n' "$report" | tail -5; exit 1; }
awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }'
