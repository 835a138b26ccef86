#!/usr/bin/python3
"""make_default_data.py: the photographs the default model is trained and
evaluated on, from Debian packages only (doc/model-card.md).

    /usr/bin/python3 scripts/make_default_data.py OUT_DIR

Needs python3-skimage, python3-pil, ukui-wallpapers (apt-get install). Writes
OUT_DIR/train/*.png (the training photographs, longest side 1024) and
OUT_DIR/heldout/*.png (held-out photographs, longest side 512, never used for
training or tuning). mate-backgrounds is reserved for the project's own
held-out evaluation and is not used here. Resizing uses PIL's Lanczos filter;
the images are only downscaled (which also removes JPEG artefacts).
"""
import os
import sys

from PIL import Image

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
UKUI = "/usr/share/backgrounds"

TRAIN = [
    (SKIMAGE, "astronaut.png"), (SKIMAGE, "chelsea.png"), (SKIMAGE, "coffee.png"),
    (SKIMAGE, "rocket.jpg"), (SKIMAGE, "motorcycle_left.png"), (SKIMAGE, "brick.png"),
    (SKIMAGE, "grass.png"), (SKIMAGE, "gravel.png"), (SKIMAGE, "camera.png"),
    (UKUI, "Dragonfly_by_Bolly.jpg"), (UKUI, "Kleiber_by_Lukas_Baubkus.jpg"),
    (UKUI, "Painting-Colors_by__herobrine7gamer.jpg"), (UKUI, "Picture_1A_by_freespace.jpg"),
    (UKUI, "Wine_by_Jakkub_Mede.jpg"), (UKUI, "aitzgorri_by_Aitzol_Berasategi.jpg"),
    (UKUI, "free_by_Peter_Nerlich.jpg"), (UKUI, "greentock_by_Peter_Nerlich.jpg"),
    (UKUI, "picosdeeuropa_by_Aitzol_Berasategi.jpg"), (UKUI, "sunset_by_Aitzol_Berasategi.jpg"),
]
HELDOUT = [
    (UKUI, "Bridge_by_Sander_Klootwijk.jpg"), (UKUI, "Picture_0B_by_freespace.jpg"),
    (UKUI, "friends_by_Aitzol_Berasategi.jpg"), (UKUI, "life_by_Aitzol_Berasategi.jpg"),
    (UKUI, "seeding_by_Clements_Engelhardt.jpg"),
]


def export(items, out, longest):
    os.makedirs(out, exist_ok=True)
    for folder, name in items:
        im = Image.open(os.path.join(folder, name)).convert("RGB")
        scale = longest / max(im.size)
        if scale < 1:
            im = im.resize((round(im.size[0] * scale), round(im.size[1] * scale)),
                           Image.LANCZOS)
        stem = os.path.splitext(name)[0]
        im.save(os.path.join(out, stem + ".png"))
        print(os.path.join(out, stem + ".png"), im.size)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    export(TRAIN, os.path.join(sys.argv[1], "train"), 1024)
    export(HELDOUT, os.path.join(sys.argv[1], "heldout"), 512)


if __name__ == "__main__":
    main()
