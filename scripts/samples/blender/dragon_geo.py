"""Procedural low-poly dragon shared by the model and animation scripts.

The dragon faces +Y, stands on Z=0, and is about 6.5 units long.
Each builder returns a fresh bmesh in the part's local space plus the
location of its origin.
"""
import math

import bmesh
from mathutils import Vector

from common import add_cone, add_sphere, loft

# (x, y, z, radius across, radius up)
BODY_SPINE = [
    (0.0, -1.25, 1.00, 0.26, 0.26),
    (0.0, -0.80, 1.06, 0.46, 0.42),
    (0.0, -0.20, 1.12, 0.56, 0.50),
    (0.0, 0.40, 1.16, 0.50, 0.47),
    (0.0, 0.90, 1.32, 0.34, 0.33),
    (0.0, 1.20, 1.62, 0.22, 0.22),
    (0.0, 1.42, 1.92, 0.20, 0.20),
    (0.0, 1.66, 2.10, 0.25, 0.22),
    (0.0, 1.96, 2.12, 0.22, 0.17),
    (0.0, 2.26, 2.04, 0.15, 0.11),
    (0.0, 2.48, 1.98, 0.08, 0.06),
]

TAIL_SPINE = [
    (0.00, 0.00, 0.00, 0.25, 0.24),
    (0.05, -0.70, -0.15, 0.20, 0.19),
    (0.25, -1.40, -0.45, 0.14, 0.13),
    (0.55, -2.10, -0.65, 0.09, 0.08),
    (0.60, -2.80, -0.70, 0.05, 0.045),
    (0.45, -3.30, -0.62, 0.02, 0.02),
]
TAIL_ORIGIN = (0.0, -1.15, 1.0)

WING_ORIGIN = (0.32, 0.45, 1.45)  # left shoulder; right wing mirrors X


def build_body():
    """Torso, neck and head as one loft, plus legs, horns and eyes.

    Material index 0 = DragonSkin, 1 = DragonEyes.
    """
    bm = bmesh.new()
    uv = bm.loops.layers.uv.verify()
    loft(bm, BODY_SPINE, segments=16, samples_per_seg=4, uv_layer=uv, v_repeat=3.0)
    # legs: (hip x, hip y) front and back
    for sx in (-1, 1):
        for hy, fwd in ((0.55, 0.10), (-0.70, -0.05)):
            hip = (sx * 0.38, hy, 1.00)
            leg = [
                (hip[0], hip[1], hip[2], 0.20, 0.20),
                (sx * 0.52, hy + fwd + 0.10, 0.62, 0.14, 0.14),
                (sx * 0.50, hy + fwd - 0.05, 0.25, 0.10, 0.10),
                (sx * 0.50, hy + fwd + 0.12, 0.06, 0.12, 0.06),
                (sx * 0.50, hy + fwd + 0.30, 0.04, 0.08, 0.04),
            ]
            loft(bm, leg, segments=8, samples_per_seg=3, uv_layer=uv)
    # horns swept back from the head
    for sx in (-1, 1):
        add_cone(bm, (sx * 0.12, 1.62, 2.25), 0.06, 0.0, 0.45,
                 rotation=(math.radians(-60), math.radians(sx * 20), 0), segments=8)
    # dorsal spikes
    for i, y in enumerate((-0.9, -0.5, -0.1, 0.3, 0.7)):
        z = 1.10 + 0.48 - 0.04 * abs(i - 2)
        add_cone(bm, (0.0, y, z - 0.05), 0.08, 0.0, 0.22,
                 rotation=(math.radians(-25), 0, 0), segments=6)
    # eyes
    for sx in (-1, 1):
        add_sphere(bm, (sx * 0.17, 1.98, 2.17), 0.055, segments=12, rings=6, mat_index=1)
    bm.normal_update()
    return bm, (0.0, 0.0, 0.0)


def build_tail():
    bm = bmesh.new()
    uv = bm.loops.layers.uv.verify()
    loft(bm, TAIL_SPINE, segments=12, samples_per_seg=4, uv_layer=uv, v_repeat=4.0)
    # spade at the tip
    tip = Vector(TAIL_SPINE[-1][:3])
    verts = [bm.verts.new(tip + Vector(d)) for d in
             ((0.0, 0.10, 0.0), (0.22, -0.12, 0.0), (0.0, -0.42, 0.0), (-0.22, -0.12, 0.0))]
    bm.faces.new(verts)
    bmesh.ops.solidify(bm, geom=[f for f in bm.faces if len(f.verts) == 4 and
                                 all(v in verts for v in f.verts)], thickness=0.03)
    bm.normal_update()
    return bm, TAIL_ORIGIN


WING_OUTLINE = [  # x outward, y forward (local space, left wing)
    (0.00, 0.25), (0.90, 0.55), (1.80, 0.85), (3.00, 0.25), (2.45, -0.35),
    (2.60, -0.75), (1.90, -0.95), (1.85, -1.30), (1.05, -1.05), (0.50, -1.10),
    (0.00, -0.45),
]
WING_SPARS = [  # leading-edge "arm" and finger bones
    ((0.00, 0.10), (0.90, 0.55)), ((0.90, 0.55), (1.80, 0.85)),
    ((1.80, 0.85), (3.00, 0.25)), ((1.80, 0.85), (2.60, -0.75)),
    ((1.80, 0.85), (1.85, -1.30)), ((1.80, 0.85), (0.50, -1.10)),
]


def _wing_z(x, y):
    return 0.10 * x + 0.05 * math.sin(x * 1.3) - 0.06 * y


def build_wing(side=1):
    """Membrane (fan around an inner point) plus tube spars. side=+1 left, -1 right."""
    bm = bmesh.new()
    uv = bm.loops.layers.uv.verify()
    center = bm.verts.new((side * 1.2, -0.2, _wing_z(1.2, -0.2)))
    ring = [bm.verts.new((side * x, y, _wing_z(x, y))) for x, y in WING_OUTLINE]
    n = len(ring)
    for i in range(n):
        a, b = ring[i], ring[(i + 1) % n]
        f = bm.faces.new((center, a, b) if side > 0 else (center, b, a))
        for loop in f.loops:
            co = loop.vert.co
            loop[uv].uv = (abs(co.x) / 3.0, (co.y + 1.3) / 2.2)
    bmesh.ops.subdivide_edges(bm, edges=list(bm.edges), cuts=1, use_grid_fill=True)
    membrane_faces = list(bm.faces)
    bmesh.ops.solidify(bm, geom=membrane_faces, thickness=0.025)
    for (x0, y0), (x1, y1) in WING_SPARS:
        p0 = (side * x0, y0, _wing_z(x0, y0))
        p1 = (side * x1, y1, _wing_z(x1, y1))
        mid = tuple((a + b) / 2 for a, b in zip(p0, p1))
        loft(bm, [(*p0, 0.05, 0.05), (*mid, 0.04, 0.04), (*p1, 0.025, 0.025)],
             segments=6, samples_per_seg=2, uv_layer=uv)
    bm.normal_update()
    origin = (side * WING_ORIGIN[0], WING_ORIGIN[1], WING_ORIGIN[2])
    return bm, origin
