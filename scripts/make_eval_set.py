#!/usr/bin/python3
"""make_eval_set.py: the held-out blurred/sharp pairs of the default model v2
(doc/model-card.md, "v2 data"), made with dsdeblur-blur from the 1280 x 720
held-out photographs of scripts/make_default_data.py.

    /usr/bin/python3 scripts/make_eval_set.py [--blur TOOL] DATA_DIR OUT_DIR

runs, with the held-out photographs in sorted order,

    dsdeblur-blur --seed 1000 --length 40 --exposure 0.5:1 --anxiety 0:0.005 \\
        --noise 1/255:2/255 -o OUT_DIR DATA_DIR/heldout/*.png

so OUT_DIR/blur/<name>.png and OUT_DIR/sharp/<name>.png are the pairs
`dsdeblur-eval --blur OUT_DIR/blur --sharp OUT_DIR/sharp` reads, at full
1280 x 720 resolution: camera paths 40 pixels long (43 x 43 kernel canvas),
of which 50% to 100% is exposed, with a shake (anxiety) from 0 (a straight
path) to 0.005, so the blur's extent is about 7 to 30 pixels; Gaussian
sensor noise of 1 to 2 gray levels (8-bit); each drawn per image. Seed 1000 is not
a training seed. TOOL defaults to tools/dsdeblur-blur of the build tree
(the current directory). Existing outputs are refused (dsdeblur-blur's
rules); pass a new OUT_DIR.
"""
import glob
import os
import subprocess
import sys

SEED = "1000"
LENGTH = "40"
EXPOSURE = "0.5:1"
ANXIETY = "0:0.005"
NOISE = "1/255:2/255"


def main():
    args = sys.argv[1:]
    tool = "tools/dsdeblur-blur"
    if len(args) >= 2 and args[0] == "--blur":
        tool, args = args[1], args[2:]
    if len(args) != 2:
        sys.exit(__doc__)
    data, out = args
    images = sorted(glob.glob(os.path.join(data, "heldout", "*.png")))
    if len(images) < 8:
        sys.exit(f"make_eval_set.py: {data}/heldout has {len(images)} images, not the 9 of "
                 "scripts/make_default_data.py; run that first")
    cmd = [tool, "--seed", SEED, "--length", LENGTH, "--exposure", EXPOSURE,
           "--anxiety", ANXIETY, "--noise", NOISE, "-o", out] + images
    print(" ".join(cmd), flush=True)
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
