from keras_sngan.version import __version__
