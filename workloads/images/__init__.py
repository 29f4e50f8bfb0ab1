"""The twinlab images: one Debian userland with the app, packaged as a container and a VM.

    from workloads.images import build_images, find_images
    images = find_images()          # never builds; ImagesNotBuiltError if missing
    images.container_image          # twinlab/webapp:<version>-<hash12>
    images.vm_disk_qcow2, images.vm_kernel, images.vm_initrd, images.vm_cmdline

The deployment appends the SSH key to vm_cmdline with cmdline_with_ssh_key().
"""

from __future__ import annotations

from .build import ImagesNotBuiltError, build_images, find_images
from .cmdline import BadSshKeyError, cmdline_with_ssh_key
from .manifest import ImageSet, ImageSizes
from .steps import BuildError

__all__ = [
    "BadSshKeyError",
    "BuildError",
    "ImageSet",
    "ImageSizes",
    "ImagesNotBuiltError",
    "build_images",
    "cmdline_with_ssh_key",
    "find_images",
]
