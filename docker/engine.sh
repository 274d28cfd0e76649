#!/usr/bin/env bash
# Starts a Docker engine for the tests if none answers, and stops only the one it started.
#   docker/engine.sh start   use a running engine, or install docker.io (as root) and start dockerd
#   docker/engine.sh stop    stop the dockerd this script started
# Without root and without an engine it says so loudly; the Docker tests then skip.
set -uo pipefail
cd "$(dirname "$0")/.."
PID_FILE=build/dockerd.pid
LOG_FILE=build/dockerd.log

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

start() {
    if engine_answers; then echo "docker engine: using the running engine"; return 0; fi
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
            echo "!!! NO DOCKER ENGINE and no root to install one: Docker tests will be SKIPPED !!!"
            return 0
        fi
        echo "docker engine: installing docker.io and debootstrap"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q docker.io debootstrap >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q docker.io debootstrap >/dev/null; } \
            || { echo "!!! could not install docker.io: Docker tests will be SKIPPED !!!"; return 0; }
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "!!! dockerd needs root: Docker tests will be SKIPPED !!!"
        return 0
    fi
    mkdir -p build
    nohup dockerd >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 60); do
        if engine_answers; then echo "docker engine: started dockerd (pid $(cat "$PID_FILE"))"; return 0; fi
        sleep 0.5
    done
    echo "!!! dockerd did not answer within 30 s (see $LOG_FILE): Docker tests will be SKIPPED !!!"
}

stop() {
    [ -f "$PID_FILE" ] || return 0
    pid=$(cat "$PID_FILE")
    kill "$pid" 2>/dev/null && for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$PID_FILE"
    echo "docker engine: stopped dockerd (pid $pid)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
