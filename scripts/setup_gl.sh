#!/usr/bin/env bash
# Install the Debian GL libraries MuJoCo's off-screen renderer needs (EGL / OSMesa, CPU
# llvmpipe) when any is missing. Sourced by setup.sh and setup_libero.sh.
gl_pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6)
missing=()
for p in "${gl_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing GL packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
