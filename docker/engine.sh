#!/usr/bin/env bash
# Starts a Docker engine for the tests if none answers, and stops only the one it started.
#   docker/engine.sh start   use a running engine, or install docker.io (as root) and start dockerd
#   docker/engine.sh stop    stop the dockerd this script started
# Without root and without an engine it says so loudly; the Docker tests then skip, except
# under CI (CI=true), where a missing engine fails the run instead of passing without them.
set -uo pipefail
cd "$(dirname "$0")/.."
PID_FILE=build/dockerd.pid
LOG_FILE=build/dockerd.log

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

# Says why there is no engine; fails under CI, where the Docker tests must run.
no_engine() {
    case "${CI:-}" in
        true | TRUE | 1) echo "!!! $1: CI=$CI needs a Docker engine to run the Docker tests !!!" >&2; return 1 ;;
    esac
    echo "!!! $1: Docker tests will be SKIPPED !!!"
}

start() {
    if engine_answers; then echo "docker engine: using the running engine"; return 0; fi
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
            no_engine "NO DOCKER ENGINE and no root to install one"; return
        fi
        echo "docker engine: installing docker.io and debootstrap"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q docker.io debootstrap >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q docker.io debootstrap >/dev/null; } \
            || { no_engine "could not install docker.io"; return; }
    fi
    if [ "$(id -u)" != 0 ]; then
        no_engine "dockerd needs root"; return
    fi
    mkdir -p build
    nohup dockerd >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 60); do
        if engine_answers; then echo "docker engine: started dockerd (pid $(cat "$PID_FILE"))"; return 0; fi
        sleep 0.5
    done
    no_engine "dockerd did not answer within 30 s (see $LOG_FILE)"
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
