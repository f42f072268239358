#!/usr/bin/env bash
# The nightly refresh without the Dagster daemon: cron (or a systemd timer) runs this script.
#
#   crontab -e  (as the cs360 user):
#     MAILTO=cs360-ops@example.org
#     0 2 * * *  /opt/cs360/deploy/cs360-nightly.sh
#
# Everything goes to $CS360_DATA_DIR/logs/refresh-<date>.log. The script prints (and so cron
# mails) only when something needs a person: the refresh failed (the previous release stays
# published), the published tables failed their expectations, or a partner's data is overdue.
# Use this or the daemon's schedule (deploy/cs360-dagster.service), not both.
set -uo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1091
[ -r /etc/cs360.env ] && . /etc/cs360.env
set +a
logs="${CS360_DATA_DIR:-data}/logs"
mkdir -p "$logs"
log="$logs/refresh-$(date +%F).log"
status=0
{
    echo "== $(date -Is) cs360 refresh"
    # A refresh the daemon or an operator started first is waited for (up to two hours).
    .venv/bin/cs360 refresh --log-level WARNING --wait 7200
} >>"$log" 2>&1 || { status=$?; echo "cs360 refresh failed (exit $status); see $log"; }
{
    echo "== $(date -Is) cs360 status"
    .venv/bin/cs360 status
} >>"$log" 2>&1 || { status=1; echo "a partner's data is overdue or was never delivered; see $log"; }
if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
fi
# Keep two months of logs.
find "$logs" -name 'refresh-*.log' -mtime +60 -delete
exit "$status"
