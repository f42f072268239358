#!/usr/bin/env bash
# The nightly refresh without the Dagster daemon: cron (or a systemd timer) runs this script.
#
#   crontab -e  (as the cs360 user):
#     MAILTO=cs360-ops@example.org
#     0 2 * * *  /opt/cs360/deploy/cs360-nightly.sh
#
# Everything goes to $CS360_DATA_DIR/logs/refresh-<date>.log. The script prints (and so cron
# mails) only when something needs a person, and then what `cs360` said:
#   - the refresh failed (the previous release stays published) or its published tables failed
#     their expectations: `cs360 refresh` exited non-zero;
#   - `cs360 status` found errors (exit 3: a partner's data overdue, never delivered, far behind
#     or with months missing, a dataset or metric without owner) or warnings (exit 1: a late or
#     shrunken delivery, a quarantined file still waiting for the partner's corrected one, ...).
# Its own exit code is then that of the command that needs a person.
# Settings come from /etc/cs360.env (deploy/cs360.env), or the file $CS360_ENV_FILE names.
# Use this or the daemon's schedule (deploy/cs360-dagster.service), not both.
set -uo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
[ -r "${CS360_ENV_FILE:-/etc/cs360.env}" ] && . "${CS360_ENV_FILE:-/etc/cs360.env}"
set +a
logs="${CS360_DATA_DIR:-data}/logs"
mkdir -p "$logs"
log="$logs/refresh-$(date +%F).log"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# Runs one cs360 command; its output goes to the log, and is kept in $out for the mail.
run() {
    echo "== $(date -Is) cs360 $*" >>"$log"
    .venv/bin/cs360 "$@" >"$out" 2>&1
    local code=$?
    cat "$out" >>"$log"
    return "$code"
}

# A refresh the daemon or an operator started first is waited for (up to two hours).
run refresh --wait 7200
refresh=$?
if [ "$refresh" -ne 0 ]; then
    echo "cs360 refresh failed (exit $refresh); the log: $log"
    tail -n 30 "$out"
    echo
fi
run status
status=$?
case "$status" in
    0) ;;
    1) echo "cs360 status: warnings (exit 1); the log: $log" ;;
    3) echo "cs360 status: errors (exit 3); the log: $log" ;;
    *) echo "cs360 status could not say (exit $status); the log: $log" ;;
esac
[ "$status" -ne 0 ] && cat "$out"
# Keep two months of logs.
find "$logs" -name 'refresh-*.log' -mtime +60 -delete
[ "$refresh" -ne 0 ] && exit "$refresh"
exit "$status"
