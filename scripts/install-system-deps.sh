#!/usr/bin/env bash
# Installs the system packages the product needs, where this user can; says what is missing otherwise.
# usage: install-system-deps.sh [test]   (the tests need nothing more now: Chromium runs in every sandbox's desktop)
# passt (pasta) and nftables give each sandbox a network of its own (sandboxes/backends/local_network.py).
# libkrb5-dev, g++ and make build code-server's native modules; ripgrep is its search (see install_sandbox_tools).
set -euo pipefail

packages=(bubblewrap passt nftables git util-linux util-linux procps npm ripgrep libkrb5-dev g++ make xvfb x11vnc websockify chromium nginx)
commands=(bwrap pasta nft git unshare nsenter ps npm rg krb5-config g++ make Xvfb x11vnc websockify chromium nginx)
# The front proxy's Lua (ide/nginx/) needs nginx's Lua module: a file, not a command.
module_packages=(libnginx-mod-http-lua)
module_files=(/usr/lib/nginx/modules/ngx_http_lua_module.so)

missing=()
for i in "${!commands[@]}"; do
  # nginx lives in /usr/sbin, outside many users' PATH.
  command -v "${commands[$i]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${commands[$i]}" ] || missing+=("${packages[$i]}")
done
for i in "${!module_files[@]}"; do
  [ -e "${module_files[$i]}" ] || missing+=("${module_packages[$i]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them with your package manager (e.g. 'sudo apt-get install ${missing[*]}'), then run this again." >&2
  exit 1
fi
