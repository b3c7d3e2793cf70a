#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real: PostgreSQL (database tests),
# Chromium (browser tests), plastimatch (the peer the benchmark compares against) and a font
# for the preview pictures, Orthanc with its DICOMweb plugin (the real archive of the archive
# tests and the peer of the DICOMweb benchmarks) and npm (fetches the pinned OHIF viewer).
# Runs only what is missing; needs root (or sudo) for apt-get.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v plastimatch >/dev/null 2>&1 || need+=(plastimatch)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -x /usr/sbin/Orthanc ] || need+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
command -v npm >/dev/null 2>&1 || need+=(npm)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "need root to install: ${need[*]} (apt-get install -y ${need[*]})" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
