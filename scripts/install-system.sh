#!/usr/bin/env bash
# Debian packages facemotion needs: TTS engines (data engine), OSMesa/EGL (offscreen
# rendering), sox and ffmpeg, and chromium (the studio's browser test, driven headless by
# Playwright; no browser download). Safe to run again; does nothing when all are present.
set -euo pipefail
pkgs=(espeak-ng festival festvox-kallpc16k festvox-us-slt-hts flite sox ffmpeg
      libosmesa6 libegl1 libgl1-mesa-dri chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the Khronos glTF validator in the tests; keep an existing installation.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
  -o DPkg::Lock::Timeout=600 "${missing[@]}"
