"""Stack output names, shared by the program, the checks and the tests.

Every deployed variant has one object under `variants`, keyed by its name, with the same keys,
so everything downstream treats them alike and reads name and kind from the stack, never from
a URL scheme.
"""

VARIANTS = "variants"  # {variant name: {NAME, KIND, URL, TARGET, ...}}
SKIPPED_VARIANTS = "skippedVariants"  # {variant name: why this host cannot run it}

# Keys inside each variant's output object.
NAME = "name"  # the registered variant name, e.g. "container", "vm"
KIND = "kind"  # "container" | "sandbox" | "vm": what the checks compare by
URL = "url"  # http://127.0.0.1:PORT of the app
TARGET = "target"  # check address: docker://NAME or ssh://USER@127.0.0.1:PORT
INSTANCE_NAME = "instanceName"  # container name or libvirt domain name
INSTANCE_ID = "instanceId"  # container ID or domain UUID
IMAGE = "image"  # container image tag or base disk volume
READY_S = "readySeconds"  # seconds from instance creation to first HTTP 200, measured by up
HOST = "host"  # name of the host it runs on: a key of the `hosts` output

# Top-level keys.
SSH_PRIVATE_KEYS = "sshPrivateKeys"  # secret: {variant name: private key} of variants over SSH
VIRT_MODE = "virtMode"  # "kvm" or "tcg"
LIMITS = "limits"  # {"vcpus", "memoryMib", "cpuSet"}: identical for every variant
APP_VERSION = "appVersion"
DOCKER_HOST = "dockerHost"
LIBVIRT_URI = "libvirtUri"
RECIPE_HASH = "imageRecipeHash"
LOAD_HOST = "loadHost"  # `twinlab:loadHost`: host that generates load; "": each host itself
HOSTS = "hosts"  # {host name: {HOST_DOCKER_HOST, HOST_LIBVIRT_URI, HOST_SSH, HOST_VIRT_MODE}}
THRESHOLDS = "thresholds"  # the claim thresholds in force: defaults for the mode + overrides

# Keys inside each host's output object (components/hosts.py).
HOST_DOCKER_HOST = "dockerHost"
HOST_LIBVIRT_URI = "libvirtUri"
HOST_SSH = "ssh"  # None when both daemons are local sockets, else the SSH_* keys below
HOST_VIRT_MODE = "virtMode"
SSH_USER = "user"
SSH_HOST = "host"
SSH_PORT = "port"
SSH_KEY_PATH = "keyPath"  # "" when the user's own SSH setup applies
