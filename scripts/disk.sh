#!/usr/bin/env bash
# Free-disk checks sourced by the other scripts: a build that fills the disk dies with a message that names
# nothing (the linker gets SIGBUS), so each build first says how much it needs and how much is free.

# require_space WHAT PATH NEED_MIB [USED_PATH...]: fails unless the filesystem holding PATH (or its nearest existing
# parent) has NEED_MIB free, less what the USED_PATHs (an earlier build's caches) already hold, but at least 1 GiB.
# BROKKR_SKIP_DISK_CHECK=1 skips it (a filesystem that reports free space wrongly, or an estimate that is off).
require_space() {
  local what=$1 probe=$2 need_mib=$3 used_kib=0 avail_kib path kib
  shift 3
  [[ "${BROKKR_SKIP_DISK_CHECK:-}" == 1 ]] && return 0
  for path in "$@"; do
    kib="$(du -sk "$path" 2>/dev/null | cut -f1 || true)"
    used_kib=$((used_kib + ${kib:-0}))
  done
  need_mib=$((need_mib - used_kib / 1024))
  ((need_mib >= 1024)) || need_mib=1024
  while [[ ! -e "$probe" ]]; do probe="$(dirname "$probe")"; done
  avail_kib="$(df -Pk "$probe" | awk 'NR == 2 { print $4 }')"
  if ((avail_kib / 1024 < need_mib)); then
    printf '%s needs about %d MiB more disk on the filesystem of %s, but %d MiB are free: free some space (or set BROKKR_SKIP_DISK_CHECK=1)\n' \
      "$what" "$need_mib" "$probe" "$((avail_kib / 1024))" >&2
    return 1
  fi
}
