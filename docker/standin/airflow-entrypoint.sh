#!/usr/bin/env bash
# Stand-in for the official Airflow image's /entrypoint: waits for the database, migrates it
# and creates the admin user when asked (_AIRFLOW_DB_MIGRATE, _AIRFLOW_WWW_USER_CREATE), then
# runs `airflow <command>` (so `celery worker` is `airflow celery worker`), or bash/python.
set -euo pipefail

wait_for_database() {
    for _ in $(seq 60); do
        airflow db check >/dev/null 2>&1 && return 0
        sleep 2
    done
    echo "database not reachable: ${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN%%:*}://..." >&2
    exit 1
}

if [[ "${_AIRFLOW_DB_MIGRATE:-}" == "true" ]]; then
    wait_for_database
    airflow db migrate
fi
if [[ "${_AIRFLOW_WWW_USER_CREATE:-}" == "true" ]]; then
    admin="${_AIRFLOW_WWW_USER_USERNAME:-admin}"
    # A failed create is fine only when the user is there already (a restarted stack).
    airflow users create --role Admin --firstname Airflow --lastname Admin --email admin@example.org \
        --username="$admin" --password="${_AIRFLOW_WWW_USER_PASSWORD}" \
        || airflow users list --output plain | grep -w -- "$admin" >/dev/null \
        || { echo "could not create the admin user $admin" >&2; exit 1; }
fi

case "${1:-}" in
    "") exec airflow version ;;
    airflow | bash | sh | python | python3) exec "$@" ;;
    *) exec airflow "$@" ;;
esac
