"""A small .blend for tests/fixtures/blend, saved by whichever Blender runs it (bpy 4.2 / 5.0 from PyPI).

Usage: python -c "import runpy, sys; sys.argv = [\"x\", OUT, \"1\"]; runpy.run_path(\"version_fixture.py\")"
(argv: output path, 1 to zstd-compress). Written for tests of the .blend extractor across versions.
"""
import bpy, sys
argv = sys.argv[1:]
out, compress = argv[0], argv[1] == "1"
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.name = "MainScene"
sc.render.engine = "CYCLES"
sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 1920, 1080, 100
sc.frame_start, sc.frame_end = 1, 120
sc.render.fps, sc.render.fps_base = 24, 1.0
me = bpy.data.meshes.new("BodyMesh"); me.from_pydata([(0,0,0),(1,0,0),(0,1,0)],[],[(0,1,2)])
ob = bpy.data.objects.new("Dragon_Body", me); sc.collection.objects.link(ob)
mat = bpy.data.materials.new("DragonSkin"); mat.use_nodes = True
img = bpy.data.images.new("albedo", 4, 4); img.source = "FILE"; img.filepath = "//../tex/albedo.png"
tn = mat.node_tree.nodes.new("ShaderNodeTexImage"); tn.image = img
img2 = bpy.data.images.new("missing", 4, 4); img2.source = "FILE"; img2.filepath = "//../tex/missing_tex.png"
tn2 = mat.node_tree.nodes.new("ShaderNodeTexImage"); tn2.image = img2
me.materials.append(mat)
cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera")); sc.collection.objects.link(cam); sc.camera = cam
li = bpy.data.objects.new("Key_Light", bpy.data.lights.new("Key_Light", "POINT")); sc.collection.objects.link(li)
col = bpy.data.collections.new("Extras"); sc.collection.children.link(col)
em = bpy.data.objects.new("Null", None); col.objects.link(em)
arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig")); col.objects.link(arm)
cu = bpy.data.objects.new("Path", bpy.data.curves.new("Path","CURVE")); col.objects.link(cu)
s2 = bpy.data.scenes.new("Second"); s2.render.engine = "BLENDER_WORKBENCH"
bpy.ops.wm.save_as_mainfile(filepath=out, compress=compress, relative_remap=False)
