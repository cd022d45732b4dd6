#!/usr/bin/env bash
# Builds two OS root trees a Debian 12 update apart, for bench/delta_bench: for each package below,
# OLD unpacks the second-newest version this machine's apt indexes list and NEW the newest
# (a package with a single version is the same in both). Both trees get the files `aspis
# image-package pack-os` requires (usr/sbin/aspisd, etc/aspis/trust-bundle.pem), setuid, setgid
# and sticky bits are cleared, and absolute symbolic links are made relative (or dropped when they
# leave the tree), as an OS tree for Aspis must be.
#   bench/make_os_pair.sh CACHE_DIR   -> CACHE_DIR/old, CACHE_DIR/new, CACHE_DIR/versions.txt
# Downloads (apt-get download) are kept in CACHE_DIR/debs and reused.
set -euo pipefail

cache=${1:?usage: make_os_pair.sh CACHE_DIR}
packages=(
  base-files bash coreutils util-linux libc6 libc-bin libgcc-s1 libstdc++6 zlib1g liblzma5 libzstd1
  libssl3 openssl ca-certificates libcurl4 curl libnghttp2-14 libssh2-1 libgnutls30 libtasn1-6
  libgcrypt20 libkrb5-3 libgssapi-krb5-2 libk5crypto3 libkrb5support0
  openssh-client openssh-server openssh-sftp-server
  systemd libsystemd0 libsystemd-shared libudev1 udev libcryptsetup12 libseccomp2 libcap2
  libpam0g libpam-modules libmount1 libblkid1 libuuid1
  libglib2.0-0 libxml2 libexpat1 libsqlite3-0 libarchive13 libnss3 sudo tzdata perl-base
  iputils-ping iproute2 busybox
)

newest_two() {  # prints the newest version, then the second newest (or the newest again)
  local newest="" second=""
  for v in $(apt-cache madison "$1" | awk '{print $3}' | sort -u); do
    if [[ -z $newest ]] || dpkg --compare-versions "$v" gt "$newest"; then
      second=$newest
      newest=$v
    elif [[ -z $second ]] || dpkg --compare-versions "$v" gt "$second"; then
      second=$v
    fi
  done
  echo "$newest ${second:-$newest}"
}

fetch() {  # package version -> path of the .deb
  local deb
  deb=$(find "$cache/debs" -name "${1}_$(printf '%s' "$2" | sed 's/:/%3a/')_*.deb" | head -n1)
  if [[ -z $deb ]]; then
    (cd "$cache/debs" && apt-get download -qq "$1=$2" >&2)
    deb=$(find "$cache/debs" -name "${1}_$(printf '%s' "$2" | sed 's/:/%3a/')_*.deb" | head -n1)
  fi
  echo "$deb"
}

# Makes the tree acceptable to PackDirectory: no special bits, links relative and inside.
sanitize() {
  local root=$1
  find "$root" -perm /7000 -exec chmod ug-s,-t {} +
  find "$root" -type l | while read -r link; do
    local target resolved
    target=$(readlink "$link")
    if [[ $target == /* ]]; then
      resolved=$root$target
    else
      resolved=$(dirname "$link")/$target
    fi
    resolved=$(realpath -m "$resolved")
    if [[ $resolved != "$root"/* ]]; then
      rm "$link"
    elif [[ $target == /* ]]; then
      ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$resolved")" "$link"
    fi
  done
  # What pack-os measures besides the tree; the same in both versions.
  mkdir -p "$root/usr/sbin" "$root/etc/aspis"
  printf '#!/bin/sh\n# aspisd placeholder for the delta benchmark\n' >"$root/usr/sbin/aspisd"
  chmod 0755 "$root/usr/sbin/aspisd"
  printf -- '-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n' \
    >"$root/etc/aspis/trust-bundle.pem"
}

mkdir -p "$cache/debs"
cache=$(realpath "$cache")
rm -rf "$cache/old" "$cache/new"
mkdir -p "$cache/old" "$cache/new"
: >"$cache/versions.txt"
for p in "${packages[@]}"; do
  read -r newest second < <(newest_two "$p")
  if [[ -z $newest ]]; then
    echo "make_os_pair: $p is not in this machine's apt indexes" >&2
    exit 1
  fi
  dpkg-deb -x "$(fetch "$p" "$second")" "$cache/old"
  dpkg-deb -x "$(fetch "$p" "$newest")" "$cache/new"
  if [[ $newest == "$second" ]]; then
    echo "$p $newest (same)" >>"$cache/versions.txt"
  else
    echo "$p $second -> $newest" >>"$cache/versions.txt"
  fi
done
sanitize "$cache/old"
sanitize "$cache/new"
echo "make_os_pair: $(grep -c -- '->' "$cache/versions.txt") of ${#packages[@]} packages differ;" \
  "old $(du -sh "$cache/old" | cut -f1), new $(du -sh "$cache/new" | cut -f1)"
