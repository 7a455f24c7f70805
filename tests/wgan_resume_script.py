"""A WGAN fit with `keras.callbacks.BackupAndRestore`, optionally SIGKILLed after an epoch.

``python wgan_resume_script.py METHOD BACKUP_DIR OUT.npz INIT_SEED [KILL_AFTER_EPOCH]``: trains 4
epochs of 3 steps on fixed data (no shuffling), resuming from ``BACKUP_DIR`` if a backup is
there, and writes the final weights, optimizer variables and noise seed to ``OUT.npz``. With
``KILL_AFTER_EPOCH`` the process kills itself with SIGKILL after that epoch's backup.
"""

import os
import signal
import sys

import numpy as np
import keras

from keras_sngan import models
from keras_sngan.wgan import WGAN


class KillAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def main(method, backup_dir, out, init_seed, kill_after=None):
    keras.utils.set_random_seed(int(init_seed))
    gan = WGAN(models.toy_critic(width=16, depth=2, lipschitz=method), models.toy_generator(width=16, depth=2),
               latent_dim=2, lipschitz=method, n_critic=3)
    gan.compile()
    rng = np.random.default_rng(0)
    data = (rng.choice([-2.0, 2.0], size=(144, 1)) + 0.3 * rng.standard_normal((144, 2))).astype("float32")
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir)]
    if kill_after is not None:
        callbacks.append(KillAfter(int(kill_after)))
    gan.fit(data, batch_size=48, epochs=4, shuffle=False, verbose=0, callbacks=callbacks)
    arrays = [keras.ops.convert_to_numpy(v) for v in gan.weights]
    arrays += [keras.ops.convert_to_numpy(v) for o in (gan.critic_optimizer, gan.generator_optimizer) for v in o.variables]
    np.savez(out, *arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
