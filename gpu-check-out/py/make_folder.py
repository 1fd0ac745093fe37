"""N synthetic CelebA-sized JPEGs (178 x 218, smooth random blobs) for the image-folder paths."""
import os, sys
from concurrent.futures import ProcessPoolExecutor
import numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
def make(i):
    rng = np.random.RandomState(i)
    small = rng.randint(0, 255, (14, 11, 3), dtype=np.uint8)
    Image.fromarray(small).resize((178, 218), Image.BILINEAR).save(os.path.join(root, f"{i:06d}.jpg"), quality=90)
os.makedirs(root, exist_ok=True)
if len([f for f in os.listdir(root) if f.endswith(".jpg")]) < n:
    with ProcessPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(make, range(n), chunksize=256))
print(root, len(os.listdir(root)), "images")
