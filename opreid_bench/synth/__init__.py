"""SynthOcc: a procedurally generated occluded ReID benchmark with exact keypoints and occluder masks.

Identities (body shape, clothing, bags, hair) are drawn with Pillow, seen by cameras with their own background,
illumination, colour cast, viewpoint, scale and blur, and occluded by the kinds of objects the paper names (carts,
signs, storage racks, elevators/walls, cars, bushes, other people). Keypoint visibility follows from the occluder
mask, so the occluded/holistic ground truth is exact. Everything is deterministic given a seed.
"""
