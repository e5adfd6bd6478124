# Writes the numpy-made fixtures TestNumpyFixtures reads. Run with numpy
# installed (Debian: python3-numpy) from this folder; the outputs are
# committed so the tests need no numpy. Values follow simple formulas the
# Go test recomputes.
import numpy as np

# Keras layout, compressed: images i*7+j mod 256, labels i % 3 (test: 0..4).
x = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 7 % 256).astype(np.uint8)
np.savez_compressed("numpy_keras.npz",
                    x_train=x, y_train=np.arange(3) % 3,
                    x_test=x[:2], y_test=np.array([4, 0], dtype=np.uint8))

# Channels-last RGB 5x4, stored: value 100*n + 10*c + 4*h + w. (With a
# height of 3 the layout would be ambiguous and read as NCHW.)
n, h, w, c = np.meshgrid(np.arange(2), np.arange(5), np.arange(4), np.arange(3), indexing="ij")
np.savez("numpy_nhwc.npz", x=(100 * n + 10 * c + 4 * h + w).astype(np.uint8),
         y=np.array([1, 0], dtype=np.int32))

# Features: Fortran-ordered float64 10*i+j, float32 labels, plus
# big-endian float32 and float16 arrays the test reads directly.
i, j = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
f = np.asfortranarray((10 * i + j).astype(np.float64))
np.savez("numpy_features.npz", features=f, labels=np.array([0, 1, 1, 0], dtype=np.float32),
         be=np.array([1.5, -2.25], dtype=">f4"), half=np.array([0.5, -3, 65504], dtype=np.float16))

# Object arrays are pickled: must be refused, never loaded.
np.savez("numpy_object.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
