#!/usr/bin/env bash
# Idempotent install of what Cinder needs on a Debian machine with no GPU:
#   - libvulkan1 and mesa-vulkan-drivers (lavapipe, Mesa's software Vulkan driver); on Debian
#     bookworm they come from bookworm-backports (Mesa 25: 5-6x faster than bookworm's 22.3.6);
#   - dataset-fashion-mnist (Fashion-MNIST in /usr/share/datasets/fashion-mnist);
#   - fortunes (the text corpus of char_lm, in /usr/share/games/fortunes);
#   - with --mpi, for the `mpi` feature (data-parallel training, docs/distributed.md):
#     openmpi-bin and libopenmpi-dev (mpirun, mpicc and the library the `mpi` crate links)
#     and libclang-dev (the crate's bindgen reads mpi.h with it).
# When not root it prints the commands instead of running them.
set -euo pipefail

with_mpi=0
for arg in "$@"; do
  case "$arg" in
    --mpi) with_mpi=1 ;;
    -h | --help)
      echo "usage: scripts/setup.sh [--mpi]"
      exit 0
      ;;
    *)
      echo "scripts/setup.sh: unknown argument $arg (usage: scripts/setup.sh [--mpi])" >&2
      exit 2
      ;;
  esac
done

run() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    echo "+ sudo $*"
  fi
}

codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi

updated=0
apt_update() {
  if [ "$updated" -eq 0 ]; then
    run apt-get update -qq
    updated=1
  fi
}

# Add bookworm-backports when the machine is bookworm and the suite is not configured.
mesa_target=()
if [ "$codename" = "bookworm" ]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding the bookworm-backports suite"
    if [ "$(id -u)" -eq 0 ]; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" \
        >/etc/apt/sources.list.d/bookworm-backports.list
    else
      echo "+ echo 'deb http://deb.debian.org/debian bookworm-backports main' | sudo tee /etc/apt/sources.list.d/bookworm-backports.list"
    fi
    updated=0
  fi
  mesa_target=(-t bookworm-backports)
fi

installed_version() {
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '/install ok installed/ {print $4}'
}

need=()
[ -n "$(installed_version libvulkan1)" ] || need+=(libvulkan1)
[ -n "$(installed_version dataset-fashion-mnist)" ] || need+=(dataset-fashion-mnist)
[ -n "$(installed_version fortunes)" ] || need+=(fortunes)
if [ "$with_mpi" -eq 1 ]; then
  for p in openmpi-bin libopenmpi-dev libclang-dev; do
    [ -n "$(installed_version "$p")" ] || need+=("$p")
  done
fi
if [ ${#need[@]} -gt 0 ]; then
  apt_update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# Mesa: install when missing, or upgrade a bookworm Mesa 22 to the backports' Mesa 25.
mesa=$(installed_version mesa-vulkan-drivers)
if [ -z "$mesa" ] || { [ "$codename" = "bookworm" ] && [ "${mesa%%.*}" -lt 25 ] 2>/dev/null; }; then
  apt_update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${mesa_target[@]}" mesa-vulkan-drivers
fi

echo "setup: mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers || true)," \
  "dataset-fashion-mnist $(installed_version dataset-fashion-mnist || true)," \
  "fortunes $(installed_version fortunes || true)"
if [ "$with_mpi" -eq 1 ]; then
  echo "setup: openmpi-bin $(installed_version openmpi-bin || true)," \
    "libopenmpi-dev $(installed_version libopenmpi-dev || true)," \
    "libclang-dev $(installed_version libclang-dev || true)"
fi
