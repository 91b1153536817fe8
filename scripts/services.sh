#!/usr/bin/env bash
# Start PostgreSQL and Redis on 127.0.0.1 when they are installed but stopped.
# Under CI a service that cannot be reached is a failure, never a silent skip.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
fi
if ! redis_up && command -v redis-server >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
fi

status=0
if pg_up; then echo "services: PostgreSQL ok on 127.0.0.1:5432"; else
  echo "services: PostgreSQL is not reachable on 127.0.0.1:5432"; status=1; fi
if redis_up; then echo "services: Redis ok on 127.0.0.1:6379"; else
  echo "services: Redis is not reachable on 127.0.0.1:6379"; status=1; fi
if [ "$status" -ne 0 ] && [ -n "${CI:-}" ]; then
  echo "services: CI needs PostgreSQL and Redis; failing." >&2
  exit 1
fi
exit 0
