"""``python -m fpga_gan.bench``: the ``fpga-gan bench`` command on its own."""

from .cli import bench

if __name__ == "__main__":
    bench(prog_name="python -m fpga_gan.bench")
