#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ answer on 127.0.0.1 before the suite runs: start them when they are
# installed but stopped; otherwise stop with a message naming what to install.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 60); do
    if $check; then return 0; fi
    sleep 0.5
  done
  echo "services: $what did not come up on 127.0.0.1 within 30 s" >&2
  exit 1
}

if ! command -v pg_isready >/dev/null; then
  echo "services: PostgreSQL client tools are missing; install PostgreSQL (Debian: apt-get install postgresql)" >&2
  exit 1
fi
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  else
    echo "services: PostgreSQL is not running on 127.0.0.1:5432 and no cluster is installed; install PostgreSQL (Debian: apt-get install postgresql)" >&2
    exit 1
  fi
  wait_for PostgreSQL pg_up
fi

if ! command -v redis-cli >/dev/null; then
  echo "services: Redis is missing; install it (Debian: apt-get install redis-server)" >&2
  exit 1
fi
if ! redis_up; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up
fi
# RabbitMQ, the second broker the integration and fault suites run against (guest/guest on 5672).
# RabbitMQ opens its AMQP listener only once it has booted, so the port answering is enough.
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! command -v rabbitmq-server >/dev/null; then
  echo "services: RabbitMQ is missing; install it (Debian: apt-get install rabbitmq-server)" >&2
  exit 1
fi
if ! rabbit_up; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached
  for _ in $(seq 1 120); do
    if rabbit_up; then break; fi
    sleep 0.5
  done
  rabbit_up || { echo "services: RabbitMQ did not come up on 127.0.0.1:5672 within 60 s" >&2; exit 1; }
fi
echo "services: PostgreSQL, Redis and RabbitMQ are up on 127.0.0.1"
