#!/usr/bin/env bash
# Install a single-node SLURM toolchain (Debian's slurmctld, slurmd, slurm-client, munge)
# so tests/launch/test_slurm.py can start launch/slurm/local-cluster.sh.
#
# Idempotent and non-interactive. Exits 0 even where apt is missing, we are not root, or the
# install fails: it prints why, and the SLURM tests then skip and say so (with CI=true they fail).
set -u

PKGS=(slurmctld slurmd slurm-client munge)
note() { echo "install-slurm: $*" >&2; }

have_all() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 \
        && command -v mungekey >/dev/null 2>&1
}
# munged/mungekey live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

if have_all; then
    note "already installed ($(slurmctld -V 2>/dev/null))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    note "apt-get not found (not a Debian/Ubuntu machine); SLURM tests will skip (fail with CI=true)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        note "not root and no password-less sudo; cannot install ${PKGS[*]}; SLURM tests will skip (fail with CI=true)"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# Skip the (slow) index update when the packages are already known to apt.
if ! apt-cache show slurmctld >/dev/null 2>&1; then
    $SUDO apt-get update -qq || { note "apt-get update failed; SLURM tests will skip (fail with CI=true)"; exit 0; }
fi
# policy-rc.d stops the packages' postinst from starting system-wide daemons:
# local-cluster.sh runs its own, with its own config, under a temporary folder.
POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY" && made_policy=1
fi
if $SUDO apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PKGS[@]}" >/dev/null; then
    note "installed ${PKGS[*]} ($(slurmctld -V 2>/dev/null))"
else
    note "apt-get install ${PKGS[*]} failed; SLURM tests will skip (fail with CI=true)"
fi
[ "$made_policy" = 1 ] && $SUDO rm -f "$POLICY"
exit 0
