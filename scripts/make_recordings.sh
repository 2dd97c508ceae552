#!/usr/bin/env bash
# Regenerate the bundled recordings in recordings/ from the shared real data.
#
# Usage (from anywhere): scripts/make_recordings.sh [SHARED_DATA_DIR]
# SHARED_DATA_DIR defaults to ../shared/data next to the repository, as in development and CI.
# Existing files in recordings/ are replaced. See recordings/README.md for sources and licences.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${1:-$repo/../shared/data}"
python="${PYTHON:-$repo/.venv/bin/python}"
out="$repo/recordings"

if [[ ! -d "$data" ]]; then
    echo "make_recordings.sh: shared data not found at $data" >&2
    exit 2
fi

cd "$repo"
# One Myo session: the eight gesture files 0.txt … 7.txt joined, labels as markers.
"$python" -m biosig convert "$data/myo-readings-dataset/12345-1" --out "$out" --prefix myo_ --overwrite --no-progress
# One GRABMyo trial (28 used channels in mV; U1–U4 dropped; gesture 11 as a marker at t = 0).
"$python" -m biosig convert "$data/grabmyo-subset/session1_participant1_gesture11_trial1.hea" --out "$out" --prefix grabmyo_ --overwrite --no-progress
# One CTU-UHB record (FHR + UC at 4 Hz; outcome fields of the header as metadata).
"$python" -m biosig convert "$data/ctu-uhb-ctgdb/1001.hea" --out "$out" --prefix ctu-uhb_ --overwrite --no-progress
# The Myo data's MIT licence must travel with the data derived from it.
install -m 0644 "$data/myo-readings-dataset/LICENSE" "$out/LICENSE-myo-readings-dataset"

ls -l "$out"
