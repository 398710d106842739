#!/usr/bin/env bash
# The time of this checkout's commit in Unix seconds (now, outside git): what builds stamp
# into what they make as SOURCE_DATE_EPOCH. The C that build scripts compile depends on it
# too, so the tests' build and the package's, given the same, share those crates.
git -C "$(dirname "${BASH_SOURCE[0]}")/.." log -1 --format=%ct 2>/dev/null || date +%s
