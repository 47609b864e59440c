#!/bin/sh
# Runs once, when the PostgreSQL volume is new: one database per Tix node, owned by POSTGRES_USER.
set -eu
for db in ${TIX_DATABASES:-}; do
  echo "creating database $db"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
