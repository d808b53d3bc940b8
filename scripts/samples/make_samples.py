#!/usr/bin/env python3
"""Regenerate the bundled sample library under samples/ from scratch.

Run with the project venv (Pillow, numpy, OpenEXR, usd-core):

    .venv/bin/python scripts/samples/make_samples.py

It drives Blender (headless, `blender -b --factory-startup --python ...`) and
ffmpeg as subprocesses; the Blender-side code lives in scripts/samples/blender/.
Everything under samples/dragon, samples/forest and samples/MANIFEST.md is
deleted and rebuilt. See scripts/samples/README.md.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BLENDER_SCRIPTS = HERE / "blender"
sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, str(HERE))

import textures  # noqa: E402

# ----------------------------------------------------------------------------- paths
D = "dragon"
F = "forest"
P = {
    # dragon project
    "dragon_model": f"{D}/assets/chr/dragon/model/dragon_model_v003.blend",
    "scales_albedo": f"{D}/assets/chr/dragon/tex/dragon_scales_albedo.png",
    "scales_rough": f"{D}/assets/chr/dragon/tex/dragon_scales_roughness.png",
    "castle": f"{D}/assets/env/castle/castle_env_v002.blend",
    "brick_albedo": f"{D}/assets/env/castle/tex/brick_albedo.png",
    "brick_normal": f"{D}/assets/env/castle/tex/brick_normal.png",
    "props": f"{D}/assets/props/props_library_v001.blend",
    "hdri": f"{D}/assets/hdri/sky_sunset_v001.exr",
    "anim": f"{D}/seq/sq010/sh010/anim/dragon_flight_sh010_v001.blend",
    "playblast": f"{D}/seq/sq010/sh010/playblast/dragon_flight_sh010_playblast_v001.mp4",
    "lighting": f"{D}/seq/sq010/sh020/lighting/sh020_lighting_v002.blend",
    "beauty_exr": f"{D}/seq/sq010/sh020/render/sh020_beauty_v002.exr",
    "beauty_png": f"{D}/seq/sq010/sh020/render/sh020_beauty_v002.png",
    "dragon_tt": f"{D}/review/turntables/dragon_turntable_v003.mp4",
    "castle_tt": f"{D}/review/turntables/castle_turntable_v001.mov",
    "shot_list": f"{D}/docs/shot_list.csv",
    "lighting_notes": f"{D}/docs/lighting_notes.md",
    "ref_wing": f"{D}/ref/référence dragon ailes.jpg",
    # forest project
    "oak": f"{F}/assets/env/oak/tree_oak_v001.blend",
    "bark": f"{F}/assets/env/oak/tex/bark_albedo.jpg",
    "oak_glb": f"{F}/assets/env/oak/tree_oak_v001.glb",
    "rock_obj": f"{F}/assets/env/rocks/rock_granite_v002.obj",
    "rock_mtl": f"{F}/assets/env/rocks/rock_granite_v002.mtl",
    "crate_fbx": f"{F}/assets/props/crate_v001.fbx",
    "layout": f"{F}/assets/layout/forest_layout_v001.usda",
    "layout_props": f"{F}/assets/layout/forest_props_v001.usda",
    "dusk_jpg": f"{F}/renders/forest_dusk_v002.jpg",
    "dusk_png16": f"{F}/renders/forest_dusk_v002_16bit.png",
    "dusk_cmyk": f"{F}/renders/forest_dusk_v002_cmyk.jpg",
    "leaf": f"{F}/textures/leaf_alpha.png",
    "todo": f"{F}/notes/todo.txt",
}

DESCRIPTIONS = {
    "dragon_model": "Blender 3.4 hero dragon model: Cycles, 1920x1080 100%, frames 1-120 @ 24 fps; "
                    "objects Dragon_Body, Dragon_Wing_L, Dragon_Wing_R, Dragon_Tail, Camera, Key_Light; "
                    "materials DragonSkin (image textures //../tex/dragon_scales_albedo.png + "
                    "//../tex/dragon_scales_roughness.png) and DragonEyes; uncompressed; file thumbnail "
                    "+ object/material/world previews.",
    "scales_albedo": "256x256 RGB PNG, green overlapping dragon-scale albedo texture.",
    "scales_rough": "256x256 greyscale (mode L) PNG, dragon-scale roughness map.",
    "castle": "Blender 3.4 castle environment: EEVEE, 3840x2160 at 50%, frames 1001-1100 @ 25 fps; "
              "objects Castle_Wall, Castle_Tower, Castle_Gate, Ground, Sun, Props_Set (instance of the "
              "linked collection \"Props\" from //../../props/props_library_v001.blend); materials "
              "Brick (//tex/brick_albedo.png, //tex/brick_normal.png), Stone; zstd-compressed; file "
              "thumbnail.",
    "brick_albedo": "256x256 RGB PNG, red brick wall albedo texture.",
    "brick_normal": "256x256 RGB PNG, tangent-space normal map of the brick wall (bluish).",
    "props": "Blender 3.4 props library: Workbench, 1280x720; collection \"Props\" with asset-marked "
             "meshes Barrel, Crate, Lantern; materials Wood, Iron, LanternGlass; uncompressed; file "
             "thumbnail + object/material previews.",
    "hdri": "256x128 equirectangular OpenEXR sunset sky, RGB half float, ZIP compression.",
    "anim": "Blender 3.4 animation file for sq010/sh010: Cycles, 1920x1080, frames 1001-1120 @ 24 fps; "
            "objects Dragon_Rig (armature with flight + wing-flap action), Dragon_Body (skinned mesh), "
            "Shot_Camera; material DragonWingMembrane references the MISSING file "
            "//../tex/missing_wing_membrane.png; DragonSkin uses "
            "//../../../../assets/chr/dragon/tex/dragon_scales_albedo.png; uncompressed; file thumbnail.",
    "playblast": "H.264 MP4 playblast of sh010, 640x360, 24 fps, 3 s (72 frames, frames 1001-1072), "
                 "Workbench render with burn-in (frame, camera, lens, note).",
    "lighting": "Blender 3.4 lighting file for sq010/sh020: Cycles, frames 1001-1096 @ 24 fps; links "
                "collection Castle_Env from //../../../../assets/env/castle/castle_env_v002.blend and "
                "Dragon from //../../../../assets/chr/dragon/model/dragon_model_v003.blend; world uses "
                "HDRI //../../../../assets/hdri/sky_sunset_v001.exr; view layer \"beauty\" with passes "
                "+ Cryptomatte; uncompressed; file thumbnail.",
    "beauty_exr": "320x180 multi-layer OpenEXR Cycles render of sh020 (frame 1048), half float, ZIP: "
                  "layer beauty with Combined, Depth, Mist, Normal, DiffCol, DiffDir, GlossDir, Emit, "
                  "AO and CryptoObject00 channels; Blender stamp metadata.",
    "beauty_png": "The same sh020 render as an 8-bit RGBA PNG (320x180).",
    "dragon_tt": "H.264 MP4 turntable of the dragon model, 640x360, 24 fps, 4 s (96 frames, one "
                 "full turn, Cycles CPU 8 samples).",
    "castle_tt": "QuickTime MOV (Motion JPEG) orbit around the castle set, 480x270, 25 fps, 3 s, "
                 "Cycles render.",
    "shot_list": "CSV shot list (shot,sequence,frame_start,frame_end,description,status) for sq010/sq020.",
    "lighting_notes": "Markdown notes by the lighting TD about sh020 (sunset key light, volumetric fog).",
    "ref_wing": "320x240 JPEG reference: Cycles close-up of the dragon wing; file name has spaces "
                "and non-ASCII characters; EXIF ImageDescription.",
    "oak": "Blender 3.4 oak tree: EEVEE, 1920x1080, frames 1-48 @ 24 fps; objects Oak_Trunk, "
           "Oak_Leaves, Ground; materials Bark (//tex/bark_albedo.jpg), Leaves, Forest_Floor; "
           "uncompressed; file thumbnail + material previews.",
    "bark": "256x256 JPEG brown bark texture.",
    "oak_glb": "glTF 2.0 binary exported from tree_oak_v001.blend (meshes Oak_Trunk, Oak_Leaves, "
               "Ground; bark JPEG embedded).",
    "rock_obj": "Wavefront OBJ exported by Blender 3.4 (wm.obj_export): displaced icosphere "
                "Rock_Granite, with normals and UVs.",
    "rock_mtl": "Wavefront MTL for rock_granite_v002.obj (material Granite).",
    "crate_fbx": "Binary FBX 7.4 exported by Blender 3.4: mesh Crate, material Wood, baked hop/spin "
                 "animation frames 1-48 @ 24 fps.",
    "layout": "USD ASCII layout (usd-core): /World with oak, rock and crate instances referencing "
              "forest_props_v001.usda, animated crate and camera, time codes 1-48 @ 24 fps, Z up.",
    "layout_props": "USD ASCII props layer: /Props with Rock_Granite mesh, Crate, Oak_Proxy and "
                    "UsdPreviewSurface materials (bark texture @../env/oak/tex/bark_albedo.jpg@).",
    "dusk_jpg": "480x270 JPEG Cycles render: oak forest at dusk with an orange Nishita sky.",
    "dusk_png16": "The same render as a 16-bit greyscale PNG (PIL mode I;16).",
    "dusk_cmyk": "The same render as a CMYK JPEG.",
    "leaf": "128x128 RGBA PNG oak leaf with real (antialiased) transparency.",
    "todo": "Plain-text to-do note for the forest project.",
}


# ----------------------------------------------------------------------------- helpers

class Ctx:
    def __init__(self, out: Path, tmp: Path, blender: str, ffmpeg: str):
        self.out, self.tmp, self.blender, self.ffmpeg = out, tmp, blender, ffmpeg

    def p(self, key: str) -> Path:
        path = self.out / P[key]
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def blender_run(self, script: str, **kwargs: object) -> None:
        args = [self.blender, "-b", "--factory-startup", "--python-exit-code", "1",
                "--python", str(BLENDER_SCRIPTS / script), "--"]
        for k, v in kwargs.items():
            args += ["--" + k, str(v)]
        env = dict(os.environ)
        import numpy
        env["SAMPLES_EXTRA_SITE"] = str(Path(numpy.__file__).resolve().parents[1])
        log_path = self.tmp / (script.replace(".py", "") + ".log")
        with open(log_path, "w") as log:
            res = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 cwd=self.tmp)
        text = log_path.read_text(errors="replace")
        if res.returncode != 0 or "Traceback" in text:
            print(text[-4000:])
            raise SystemExit(f"blender step {script} failed (log: {log_path})")

    def ffmpeg_run(self, *args: str) -> None:
        cmd = [self.ffmpeg, "-y", "-hide_banner", "-loglevel", "error", *args]
        subprocess.run(cmd, check=True)


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


# ----------------------------------------------------------------------------- steps

def step_textures(c: Ctx) -> None:
    albedo, rough = textures.dragon_scales()
    albedo.save(c.p("scales_albedo"), optimize=True)
    rough.save(c.p("scales_rough"), optimize=True)
    brick, normal = textures.bricks()
    brick.save(c.p("brick_albedo"), optimize=True)
    normal.save(c.p("brick_normal"), optimize=True)
    textures.bark().save(c.p("bark"), quality=88)
    textures.leaf_alpha().save(c.p("leaf"), optimize=True)
    textures.write_exr_rgb_half(c.p("hdri"), textures.sunset_sky())


def step_docs(c: Ctx) -> None:
    rows = [
        ("sh010", "sq010", 1001, 1120, "The dragon takes flight over the castle", "approved"),
        ("sh020", "sq010", 1001, 1096,
         "Sunset close-up: the dragon circles the keep, volumetric fog in the valley", "lighting"),
        ("sh030", "sq010", 1001, 1064, "Wide: villagers flee through the castle gate", "layout"),
        ("sh040", "sq020", 1001, 1150, "The dragon lands in the oak forest at dusk", "animation"),
        ("sh050", "sq020", 1001, 1048, "Close-up on the dragon's eye, reflected fire", "omit"),
    ]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["shot", "sequence", "frame_start", "frame_end", "description", "status"])
    w.writerows(rows)
    write_text(c.p("shot_list"), buf.getvalue())

    write_text(c.p("lighting_notes"), """\
# sh020 lighting notes

*Author: Inès Moreau, lighting TD - dragon / sq010 / sh020 - lighting v002*

## Look
- Golden-hour sunset. **Key light** is the sun (`Sunset_Key`, strength 3.5, warm orange
  `#FF8C47`) coming in low from camera left, about 8 degrees above the horizon, so the
  castle wall rakes and the dragon wings glow at the edges.
- Cool **rim light** (`Rim_Light`, area, 900 W, blue-ish) from behind the keep to separate
  the dragon from the sky.
- Environment: `assets/hdri/sky_sunset_v001.exr` on the world, strength 1.0.
  Do not rotate it: the sun disc in the HDRI lines up with the key.

## Volumetric fog
- The valley below the castle gets a low **volumetric fog** layer (Principled Volume,
  density ~0.02, anisotropy 0.3) so the key light shafts read through it.
- Fog is **off in v002** renders to keep review turnaround fast; switch it on for
  the final (v003) and bump samples to 256 with denoising.

## Render
- Cycles, view layer `beauty`: Combined, Z, Mist, Normal, DiffCol, DiffDir, GlossDir,
  Emit, AO, Cryptomatte object (depth 2). Multi-layer EXR, half float, ZIP.
- Review renders are 320x180 proxies: `render/sh020_beauty_v002.exr` / `.png`.

## Open issues
- [ ] Dragon eyes clip above 1.0 when the key hits them - lower emission on `DragonEyes`.
- [ ] Rim light also lights the ground behind the gate; add a light-linking blocker.
- [ ] Comp wants a separate fog AOV for v003.
""")

    write_text(c.p("todo"), """\
FOREST - TODO (updated by layout + modelling)
================================================

[ ] retopo the oak leaves - the canopy blobs are way too dense for the GLB export
[ ] fix granite rock UVs (rock_granite_v002.obj has stretched seams on the top)
[ ] bark_albedo.jpg needs a 2K version for close-ups in sh040
[x] export crate_v001.fbx with the hop animation for the game team
[ ] forest_layout_v001.usda: swap Oak_Proxy references for the real oak asset
[ ] render forest_dusk_v003 with the new leaf_alpha.png cards
[ ] ask lighting for the dusk HDRI (currently Nishita sky in the render scene)
""")


def step_dragon_model(c: Ctx) -> None:
    c.blender_run("dragon_model.py", out=c.p("dragon_model"),
                  tex=c.p("scales_albedo").parent, tmp=c.tmp)
    from PIL import Image
    img = Image.open(c.tmp / "ref_wing.png").convert("RGB")
    exif = Image.Exif()
    exif[0x010E] = "Dragon wing reference - membrane and finger bones, lit by the key light"
    exif[0x013B] = "dragon art dept"
    exif[0x0131] = "Blender 3.4 Cycles"
    img.save(c.p("ref_wing"), quality=90, exif=exif)


def step_props(c: Ctx) -> None:
    c.blender_run("props_library.py", out=c.p("props"), tmp=c.tmp)


def step_castle(c: Ctx) -> None:
    c.blender_run("castle_env.py", out=c.p("castle"), props=c.p("props"), tmp=c.tmp)


def step_anim(c: Ctx) -> None:
    frames = c.tmp / "playblast"
    c.blender_run("dragon_anim.py", out=c.p("anim"), skin_tex=c.p("scales_albedo"),
                  castle=c.p("castle"), frames=frames, tmp=c.tmp)
    c.ffmpeg_run("-framerate", "24", "-i", str(frames / "frame_%04d.png"),
                 "-c:v", "libx264", "-preset", "medium", "-crf", "24", "-pix_fmt", "yuv420p",
                 "-movflags", "+faststart", "-metadata", "title=dragon sq010 sh010 anim v001 playblast",
                 "-metadata", "comment=frames 1001-1072", str(c.p("playblast")))


def step_lighting(c: Ctx) -> None:
    c.blender_run("sh020_lighting.py", out=c.p("lighting"), castle=c.p("castle"),
                  dragon=c.p("dragon_model"), hdri=c.p("hdri"), exr=c.p("beauty_exr"),
                  png=c.p("beauty_png"), tmp=c.tmp)


def step_turntables(c: Ctx) -> None:
    frames = c.tmp / "tt_dragon"
    c.blender_run("turntable.py", blend=c.p("dragon_model"), outdir=frames, frames=96,
                  size="640x360", samples=8, rotate="Dragon_Body", ground=1)
    c.ffmpeg_run("-framerate", "24", "-i", str(frames / "frame_%04d.png"),
                 "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p",
                 "-movflags", "+faststart", "-metadata", "title=dragon turntable v003",
                 str(c.p("dragon_tt")))
    frames = c.tmp / "tt_castle"
    c.blender_run("turntable.py", blend=c.p("castle"), outdir=frames, frames=75,
                  size="480x270", samples=8, orbit="-1,0,3", view="0.55,-1.0,0.32")
    c.ffmpeg_run("-framerate", "25", "-i", str(frames / "frame_%04d.png"),
                 "-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p",
                 "-metadata", "title=castle turntable v001", str(c.p("castle_tt")))


def step_oak(c: Ctx) -> None:
    c.blender_run("oak_tree.py", out=c.p("oak"), glb=c.p("oak_glb"), png16=c.p("dusk_png16"),
                  jpg=c.p("dusk_jpg"), tmp=c.tmp)
    from PIL import Image
    Image.open(c.p("dusk_jpg")).convert("CMYK").save(c.p("dusk_cmyk"), quality=90)


def step_forest_assets(c: Ctx) -> None:
    c.blender_run("forest_assets.py", obj=c.p("rock_obj"), fbx=c.p("crate_fbx"))
    assert c.p("rock_mtl").exists()


def step_usd(c: Ctx) -> None:
    import usd_layout
    usd_layout.write(c.p("layout_props"), c.p("layout"), c.p("rock_obj"))


def write_manifest(c: Ctx) -> None:
    files = sorted(p.relative_to(c.out).as_posix() for p in c.out.rglob("*")
                   if p.is_file() and p.name != "MANIFEST.md" and
                   p.relative_to(c.out).parts[0] in (D, F))
    by_path = {v: DESCRIPTIONS[k] for k, v in P.items()}
    missing = [f for f in P.values() if f not in files]
    unknown = [f for f in files if f not in by_path]
    if missing or unknown:
        raise SystemExit(f"manifest mismatch: missing={missing} undocumented={unknown}")
    lines = [
        "# Sample library manifest",
        "",
        "Real files made by real tools (Blender 3.4, ffmpeg, usd-core, Pillow, OpenEXR),",
        "laid out like a studio tree: `project/assets|seq/.../dept/name_v###.ext`.",
        "Regenerate with `.venv/bin/python scripts/samples/make_samples.py`",
        "(see `scripts/samples/README.md`). Paths are relative to `samples/`.",
        "",
        "| Path | Description |",
        "| --- | --- |",
    ]
    for f in files:
        lines.append(f"| `{f}` | {by_path[f]} |")
    write_text(c.out / "MANIFEST.md", "\n".join(lines) + "\n")


STEPS = [
    ("textures", step_textures), ("docs", step_docs), ("props", step_props),
    ("dragon_model", step_dragon_model), ("castle", step_castle), ("anim", step_anim),
    ("lighting", step_lighting), ("turntables", step_turntables), ("oak", step_oak),
    ("forest_assets", step_forest_assets), ("usd", step_usd),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "samples"), help="output dir (default: samples/)")
    ap.add_argument("--blender", default=os.environ.get("BLENDER", "blender"))
    ap.add_argument("--ffmpeg", default=os.environ.get("FFMPEG", "ffmpeg"))
    ap.add_argument("--keep-tmp", action="store_true", help="keep the scratch dir (logs, frames)")
    args = ap.parse_args()
    for tool in (args.blender, args.ffmpeg):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool!r} not found on PATH")

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for sub in (D, F):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "MANIFEST.md").unlink(missing_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="cgchat-samples-"))
    c = Ctx(out, tmp, args.blender, args.ffmpeg)
    t_all = time.time()
    try:
        for name, fn in STEPS:
            t0 = time.time()
            fn(c)
            print(f"[make_samples] {name:<14} {time.time() - t0:6.1f}s", flush=True)
        write_manifest(c)
    finally:
        if args.keep_tmp:
            print(f"[make_samples] scratch kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"[make_samples] done in {time.time() - t_all:.0f}s, {total / 1e6:.1f} MB in {out}")


if __name__ == "__main__":
    main()
