#!/usr/bin/env bash
# A real artifact round trip on the embedded store: log a data set, change
# it, log again, verify, check a version out and compare.
set -euo pipefail

# The 'wbtool' script lands in the Python's bin folder, which may not be on
# PATH; 'python -m wbtool' always works.
if ! command -v wbtool >/dev/null 2>&1; then
    wbtool() { "${PYTHON:-python}" -m wbtool "$@"; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/wbtool-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export WBTOOL_DIR="$work/.wbtool"

echo "== making a small data set in $work/data"
"${PYTHON:-python}" - <<'PY'
import os, random
random.seed(0)
for split in ("train", "test"):
    os.makedirs(f"data/{split}", exist_ok=True)
    for i in range(200 if split == "train" else 50):
        with open(f"data/{split}/{i:04d}.csv", "w") as f:
            f.write("\n".join(f"{random.random():.6f},{random.randint(0, 9)}" for _ in range(50)))
PY

echo "== wbtool artifact log mnist data --type dataset"
wbtool artifact log mnist data --type dataset --alias baseline
echo "== logging the same content again is a no-op"
wbtool artifact log mnist data --type dataset
echo "== changing one file and adding another, then logging v1"
echo "0.5,1" >> data/train/0000.csv
echo "0.1,2" > data/test/extra.csv
wbtool artifact log mnist data --type dataset
wbtool artifact ls mnist
echo "== what changed between v0 and v1"
wbtool artifact diff mnist:v0 mnist:v1
echo "== verifying the stored objects of every version"
wbtool artifact verify mnist:v0
wbtool artifact verify mnist:latest
echo "== checking v0 out and verifying the copy"
wbtool artifact checkout mnist:baseline restored
wbtool artifact verify mnist:v0 --root restored
echo "done: the store is at $WBTOOL_DIR (removed on exit)"
