#!/usr/bin/python3
"""make_default_data.py: the photographs the default model v2 is trained on
and evaluated with, from Debian packages of real photographs only
(doc/model-card.md, "v2 data"; data/README.md).

    /usr/bin/python3 scripts/make_default_data.py [--check] OUT_DIR

Needs python3-pil, plasma-workspace-wallpapers, lomiri-wallpapers-16.04 and
lomiri-wallpapers-20.04 (apt-get install). Writes

  OUT_DIR/train/<name>.png    the training photographs, each resized (Lanczos)
                              so that its short side is 720 pixels, whole
                              (1152 x 720 for a 16:10 photograph)
  OUT_DIR/heldout/<name>.png  the held-out photographs, 1280 x 720 each:
                              resized so that 1280 x 720 just fits, then the
                              centre cut out; never used for training or tuning
  OUT_DIR/MANIFEST.tsv        one line per image: split, Debian package and
                              version, source file, its SHA-256, output file,
                              its SHA-256, output size

What it does not do: blur (scripts/make_eval_set.py makes the held-out
blurred/sharp pairs with dsdeblur-blur), nor choose photographs at run time:
the lists below are fixed, sorted, and every source's SHA-256 is pinned, so a
changed package is an error rather than a silently different set. Only
downscaling (no heavier than to a short side of 720; the sources' short
sides are 1074 to 3391 pixels) and cropping; mate-backgrounds is reserved for the
project's own evaluation and never used, nor are artwork and renderings
(gnome-backgrounds, sway-backgrounds, ukui-wallpapers' own files, most of
Plasma's, which were all looked at; data/README.md lists them). The small
python3-skimage photographs of v1 are gone: their short sides are below 720.
--check verifies the sources only.
"""
import hashlib
import os
import subprocess
import sys

from PIL import Image

PLASMA = "/usr/share/wallpapers"
LOMIRI = "/usr/share/backgrounds"


def plasma(name, file="2560x1600.jpg"):
    return os.path.join(PLASMA, name, "contents", "images", file)


# (source, SHA-256 of the source file); sorted by output name within a split.
TRAIN = [
    (plasma("BytheWater"),
     "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f"),
    (plasma("ColdRipple"),
     "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f"),
    (plasma("ColorfulCups"),
     "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d"),
    (plasma("DarkestHour"),
     "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce"),
    (os.path.join(LOMIRI, "Dragonfly_by_Bolly.jpg"),
     "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3"),
    (plasma("FallenLeaf"),
     "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de"),
    (plasma("Kite"),
     "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8"),
    (plasma("OneStandsOut"),
     "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd"),
    (os.path.join(LOMIRI, "Picture_1A_by_freespace.jpg"),
     "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b"),
    (os.path.join(LOMIRI, "Wine_by_Jakkub_Mede.jpg"),
     "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74"),
    (os.path.join(LOMIRI, "analogpattern_by_Peter_Nerlich.jpg"),
     "15372488a192b2be2eafc67bd3ed31cbfca19abe3929e925607fcbc9cb4d4202"),
    (os.path.join(LOMIRI, "aitzgorri_by_Aitzol_Berasategi.jpg"),
     "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36"),
    (os.path.join(LOMIRI, "free_by_Peter_Nerlich.jpg"),
     "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373"),
    (os.path.join(LOMIRI, "greentock_by_Peter_Nerlich.jpg"),
     "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889"),
    (os.path.join(LOMIRI, "picosdeeuropa_by_Aitzol_Berasategi.jpg"),
     "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a"),
    (plasma("summer_1am"),
     "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8"),
    (os.path.join(LOMIRI, "sunset_by_Aitzol_Berasategi.jpg"),
     "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18"),
]
HELDOUT = [
    (os.path.join(LOMIRI, "Bridge_by_Sander_Klootwijk.jpg"),
     "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050"),
    (plasma("EveningGlow"),
     "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a"),
    (plasma("Grey"),
     "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed"),
    (os.path.join(LOMIRI, "Kleiber_by_Lukas_Baubkus.jpg"),
     "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7"),
    (plasma("Path"),
     "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8"),
    (os.path.join(LOMIRI, "Picture_0B_by_freespace.jpg"),
     "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad"),
    (os.path.join(LOMIRI, "friends_by_Aitzol_Berasategi.jpg"),
     "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d"),
    (os.path.join(LOMIRI, "life_by_Aitzol_Berasategi.jpg"),
     "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05"),
    (os.path.join(LOMIRI, "seeding_by_Clements_Engelhardt.jpg"),
     "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f"),
]
SHORT_SIDE = 720
EVAL_SIZE = (1280, 720)
RESERVED = "mate-backgrounds"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_of(path):
    """The installed Debian package that owns path, with its version."""
    real = os.path.realpath(path)
    for p in (path, real):
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            pkg = r.stdout.split(":")[0].strip()
            v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                               capture_output=True, text=True).stdout.strip()
            return pkg, v
    sys.exit(f"make_default_data.py: {path}: no installed package owns it; install "
             "plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04")


def out_name(src):
    """Plasma's files are named by size; their folder names the photograph."""
    if src.startswith(PLASMA + "/"):
        return src.split("/")[4]
    return os.path.splitext(os.path.basename(src))[0]


def check_source(src, want):
    if not os.path.isfile(src):
        sys.exit(f"make_default_data.py: {src} is missing; apt-get install "
                 "plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04")
    pkg, version = package_of(src)
    if pkg == RESERVED:
        sys.exit(f"make_default_data.py: {src} is from {RESERVED}, which is reserved")
    got = sha256(src)
    if want and got != want:
        sys.exit(f"make_default_data.py: {src} ({pkg} {version}) has SHA-256 {got}, not the "
                 f"pinned {want}: the package changed, so the set would too")
    return pkg, version, got


def train_image(im):
    """Short side to 720, whole."""
    w, h = im.size
    s = SHORT_SIDE / min(w, h)
    assert s <= 1, "sources are larger than the outputs"
    return im.resize((round(w * s), round(h * s)), Image.LANCZOS)


def heldout_image(im):
    """1280 x 720 from the centre, after the smallest resize that fits it."""
    w, h = im.size
    tw, th = EVAL_SIZE
    s = max(tw / w, th / h)
    assert s <= 1, "sources are larger than the outputs"
    rw, rh = max(tw, round(w * s)), max(th, round(h * s))
    im = im.resize((rw, rh), Image.LANCZOS)
    x0, y0 = (rw - tw) // 2, (rh - th) // 2
    return im.crop((x0, y0, x0 + tw, y0 + th))


def main():
    args = sys.argv[1:]
    check = bool(args) and args[0] == "--check"
    if check:
        args = args[1:]
    if len(args) != 1 and not check:
        sys.exit(__doc__)
    names = [out_name(s) for s, _ in TRAIN + HELDOUT]
    assert len(set(names)) == len(names), "two sources give one output name"
    assert not {out_name(s) for s, _ in TRAIN} & {out_name(s) for s, _ in HELDOUT}
    rows = []
    for split, items, make in (("train", TRAIN, train_image),
                               ("heldout", HELDOUT, heldout_image)):
        if not check:
            os.makedirs(os.path.join(args[0], split), exist_ok=True)
        for src, want in items:
            pkg, version, src_sum = check_source(src, want)
            if check:
                print(f"{split}\t{pkg}\t{src}\t{src_sum}")
                continue
            im = make(Image.open(src).convert("RGB"))
            rel = os.path.join(split, out_name(src) + ".png")
            path = os.path.join(args[0], rel)
            tmp = path + ".tmp"
            im.save(tmp, format="PNG")
            os.replace(tmp, path)
            rows.append((split, pkg, version, src, src_sum, rel, sha256(path),
                         f"{im.size[0]}x{im.size[1]}"))
            print(path, im.size)
    if check:
        return
    manifest = os.path.join(args[0], "MANIFEST.tsv")
    with open(manifest + ".tmp", "w") as f:
        f.write("split\tpackage\tversion\tsource\tsource_sha256\toutput\toutput_sha256\tsize\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    os.replace(manifest + ".tmp", manifest)
    print(manifest, f"{sum(r[0] == 'train' for r in rows)} train, "
          f"{sum(r[0] == 'heldout' for r in rows)} held-out")


if __name__ == "__main__":
    main()
