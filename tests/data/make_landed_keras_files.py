"""Write the .keras files and reference outputs that tests/test_house.py loads (run once, on the landed main).

Saved by the code of commit 482f3c1 (issue 33's landing), before the package was split into the library
and ``keras_sngan.poster``: the registered names these files hold must keep loading.

    KERAS_BACKEND=tensorflow python tests/data/make_landed_keras_files.py tests/data/landed_main
"""

import os
import sys

import keras
import numpy as np

from keras_sngan import WGAN, models


def main(out):
    os.makedirs(out, exist_ok=True)
    keras.utils.set_random_seed(0)
    nets = {
        "toy_critic_sn": models.toy_critic(width=16, depth=2, lipschitz="sn"),
        "toy_critic_sn_operator": models.toy_critic(width=16, depth=2, lipschitz="sn", sn_method="operator"),
        "toy_critic_clip": models.toy_critic(width=16, depth=2, lipschitz="clip"),
        "standard_critic_sn": models.standard_critic(image_size=8, channels=1, base_channels=4, lipschitz="sn"),
    }
    rng = np.random.default_rng(0)
    inputs = {"toy": rng.standard_normal((5, 2)).astype("float32"),
              "image": rng.standard_normal((5, 8, 8, 1)).astype("float32")}
    outputs = {}
    for name, net in nets.items():
        x = inputs["image" if name.startswith("standard") else "toy"]
        net(x, training=True)  # one power iteration: the saved u vectors are not the initial ones
        outputs[name] = keras.ops.convert_to_numpy(net(x))
        net.save(os.path.join(out, f"{name}.keras"))
    gan = WGAN(models.toy_critic(width=16, depth=2, lipschitz="sn"), models.toy_generator(width=16, depth=2),
               latent_dim=2, lipschitz="sn", n_critic=2, seed=0)
    gan.compile(critic_optimizer=keras.optimizers.Adam(1e-4, 0.5, 0.9), generator_optimizer=keras.optimizers.Adam(1e-4, 0.5, 0.9))
    gan.fit(rng.standard_normal((16, 2)).astype("float32"), batch_size=4, epochs=1, verbose=0)
    gan.save(os.path.join(out, "wgan_sn.keras"))
    outputs["wgan_sn_critic"] = keras.ops.convert_to_numpy(gan.critic(inputs["toy"]))
    outputs["wgan_sn_generator"] = keras.ops.convert_to_numpy(gan.generator(inputs["toy"]))
    np.savez(os.path.join(out, "reference.npz"), **{f"input_{k}": v for k, v in inputs.items()},
             **{f"output_{k}": v for k, v in outputs.items()})


if __name__ == "__main__":
    main(sys.argv[1])
