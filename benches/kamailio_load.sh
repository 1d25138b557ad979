#!/usr/bin/env bash
# Kamailio alone through the same stepping: see sipp_load.sh --help.
exec "$(dirname "$0")/sipp_load.sh" --kamailio "$@"
