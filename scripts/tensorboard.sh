#!/bin/sh
# Open TensorBoard on every run and sweep under outputs/ (or the folder given): http://localhost:6006
exec tensorboard --logdir "${1:-outputs}" --port "${PORT:-6006}" --bind_all
